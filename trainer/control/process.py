"""Child processes: how tunesmith starts one, how a child reports failure, how that is read.

Every torch process (a run, the model server, an evaluation, an export) is ``python -m MODULE``
started by ``child_command``/``child_environment``, runs its work inside ``child_main``, and on
failure prints one ``error: ...`` line on stderr, which ``reported_error`` reads back.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

from store.errors import TunesmithError, one_line_reason

ERROR_PREFIX = "error: "
"""Starts the one line on stderr that says why a child process failed."""

SOURCE_ROOT = Path(__file__).resolve().parents[2]
"""The checkout whose packages a child imports, whatever the working directory."""

QUIET_LIBRARIES = {
    "PYTHONUNBUFFERED": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # Progress bars are carriage-return noise in a log; status lines say what is happening.
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
}


def child_command(module: str, arguments: list[str]) -> list[str]:
    """The command line that runs ``python -m module`` with this interpreter."""
    return [sys.executable, "-m", module, *arguments]


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a child: this checkout first on the path, libraries quiet."""
    environment = {**os.environ, **QUIET_LIBRARIES, **(extra or {})}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")])
    )
    return environment


def child_main(work: Callable[[], int | None], *, failure_status: int = 1) -> int:
    """Run a child's ``work``; a failure becomes one ``error:`` line on stderr and an exit status.

    A tunesmith error prints its message alone; anything else prints its traceback first (for a
    bug report) and then its type and first line.
    """
    try:
        status = work()
    except TunesmithError as error:
        report_error(one_line_reason(error))
        return failure_status
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        traceback.print_exc()
        report_error(one_line_reason(error))
        return failure_status
    return 0 if status is None else status


def report_error(message: str) -> None:
    """Print the one line that says why this child failed."""
    print(f"{ERROR_PREFIX}{message}", file=sys.stderr, flush=True)


def reported_error(line: str) -> str | None:
    """The reason in a child's ``error:`` line, or None for any other line."""
    text = line.strip()
    return text[len(ERROR_PREFIX) :].strip() if text.startswith(ERROR_PREFIX) else None


def failure_message(module: str, stderr_text: str, returncode: int) -> str:
    """Why ``python -m module`` failed: its last ``error:`` line, else its exit and last line."""
    lines = [line.strip() for line in stderr_text.splitlines() if line.strip()]
    for line in reversed(lines):
        reason = reported_error(line)
        if reason is not None:
            return reason
    if returncode < 0:
        return f"{module} was killed by signal {-returncode}"
    last = " ".join(lines[-1].split())[:200] if lines else "no message"
    return f"{module} failed (exit status {returncode}): {last}"
