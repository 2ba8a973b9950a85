"""torchrun for one run.

``python -m trainer.training.torchrun TORCHRUN_ARGS --module trainer.training.run ...``

It is PyTorch's own launcher (``torch.distributed.run``, same arguments) run in this process,
plus what torchrun cannot know: which run it carries. When a rank dies, torchrun's elastic agent
stops the others; this then marks the run failed with a reason that names the dead rank, which
rank 0 may not have lived to write.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
from pathlib import Path

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure
from torch.distributed.run import parse_args, run

from store.database import open_database
from store.runs import ACTIVE_STATUSES, finish_run, get_run
from trainer.control.distributed import LAUNCHER_PID_VARIABLE


def failure_reason(failures: dict[int, ProcessFailure]) -> tuple[int, str]:
    """The rank to blame and why.

    A rank killed by a signal comes first: the others then fail on the lost connection. SIGTERM
    comes last among signals, as it is what torchrun sends the survivors. Else the rank that
    reported its error first (its error file's time) is to blame.
    """
    killed = sorted(
        (failure.exitcode == -signal.SIGTERM, rank)
        for rank, failure in failures.items()
        if failure.exitcode < 0
    )
    if killed:
        rank = killed[0][1]
        failure = failures[rank]
        return rank, (
            f"rank {rank} was killed by {failure.signal_name()} (pid {failure.pid});"
            " the others were stopped"
        )
    rank = min(failures, key=lambda rank: (_reported_at(failures[rank]), rank))
    failure = failures[rank]
    if Path(failure.error_file).is_file():
        return rank, f"rank {rank} failed: {failure.message}"
    return rank, f"rank {rank} exited with status {failure.exitcode} (pid {failure.pid})"


def _reported_at(failure: ProcessFailure) -> float:
    """When the rank wrote its error file (torch keeps only whole seconds); never: last."""
    try:
        return Path(failure.error_file).stat().st_mtime
    except OSError:
        return math.inf


def record_failure(db_path: Path, run_id: int, error: ChildFailedError) -> None:
    """Mark the run failed naming the rank to blame, unless rank 0 ended it for its own clear
    reason and no rank was killed."""
    if not db_path.is_file():
        # A node whose ranks see no database (it lives on node 0): torchrun's report is all.
        return
    db = open_database(db_path)
    run_row = get_run(db, run_id)
    rank, reason = failure_reason(error.failures)
    if run_row.status in ACTIVE_STATUSES:
        message = reason
    elif run_row.status == "failed" and error.failures[rank].exitcode < 0:
        message = f"{reason}; rank 0 then reported: {run_row.error}"
    else:
        return
    finish_run(db, run_id, "failed", error=message)


def run_arguments(script_args: list[str]) -> tuple[Path, int]:
    """The ``--db`` and ``--run-id`` that torchrun passes on to ``trainer.training.run``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--run-id", type=int, required=True)
    known, _ = parser.parse_known_args(script_args)
    return known.db, known.run_id


def main(argv: list[str] | None = None) -> int:
    """Launch the ranks; the exit status is 0 when every rank ended well."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    db_path, run_id = run_arguments(list(args.training_script_args))
    os.environ[LAUNCHER_PID_VARIABLE] = str(os.getpid())
    try:
        run(args)
    except ChildFailedError as error:
        record_failure(db_path, run_id, error)
        with contextlib.suppress(OSError):
            print(f"Launcher: {failure_reason(error.failures)[1]}", flush=True)
        return 1
    except SignalException as error:
        # A stop: the ranks have checkpointed and rank 0 has marked the run stopped.
        with contextlib.suppress(OSError):
            print(f"Launcher: {error.sigval.name} forwarded to every rank", flush=True)
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
