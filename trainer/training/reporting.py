"""How a run reports: lines in its log (its stdout), and the error line that ends it."""

from __future__ import annotations

import contextlib

from store.errors import TunesmithError
from trainer.control.distributed import current_rank
from trainer.control.process import report_error


class TrainingFailed(TunesmithError):
    """The run cannot go on (diverged, or its data does not fit the model)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, title="Training failed")


def log(message: str) -> None:
    """Print a line to the run's log; a log that cannot be written (a full disk) is skipped."""
    with contextlib.suppress(OSError):
        print(f"{_rank_tag()}{message}", flush=True)


def log_failure(message: str) -> None:
    """Print the run's one ``error:`` line; a log that cannot be written is skipped."""
    with contextlib.suppress(OSError):
        report_error(f"{_rank_tag()}{message}")


def _rank_tag() -> str:
    """``[rank N] `` where several ranks share one log, else nothing."""
    rank = current_rank()
    return f"[rank {rank.rank}] " if rank.world_size > 1 else ""
