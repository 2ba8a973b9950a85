"""Start the labeller (``python -m trainer.labelling``), follow its progress, cancel it.

The labeller proposes an answer with a confidence for each unlabeled row of a project and
stores each one as soon as it is made. It prints one progress line on stdout per row
(``labelled 3/40: example 17 -> billing (0.93)``); its warnings, tracebacks and its one
``error:`` line go to a private temporary file, read back when it fails. The CLI uses this
now, and the app's Dataset area can drive it the same way from a worker thread:

    job = start_labelling(db_path, "support", run_id=None, labels=("billing", "bug"))
    for line in job.lines():   # blocks until the next line; ends when the labeller does
        show(line)
    job.wait()                 # raises CancelledError after cancel(), TunesmithError on failure

``cancel()`` may be called from any thread at any time; it returns at once.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from store.errors import CancelledError, TunesmithError
from trainer.control.process import child_command, child_environment, failure_message

LABELLING_MODULE = "trainer.labelling"
"""The child process that loads the model and writes the proposals."""

STOPPED_EXIT_STATUS = 3
"""The labeller's exit status when it stopped on request, with its proposals so far stored."""

PROGRESS_PREFIX = "labelled "
"""Starts the line the labeller prints after each row (``labelled 3/40: ...``)."""

CANCEL_GRACE_SECONDS = 10.0
"""How long a cancelled labeller may take to finish its row before it is killed."""


def labelling_arguments(
    db_path: Path,
    project: str,
    *,
    run_id: int | None,
    labels: Sequence[str],
    limit: int | None = None,
    again: bool = False,
) -> list[str]:
    """The labeller's command-line arguments (``--run-id`` absent: the base model few-shot)."""
    arguments = ["--db", str(db_path), "--project", project, "--exit-on-stdin-eof"]
    if run_id is not None:
        arguments.append(f"--run-id={run_id}")
    # The ``=`` form, so a label that starts with a dash is not read as an option.
    arguments += [f"--label={label}" for label in labels]
    if limit is not None:
        arguments.append(f"--limit={limit}")
    if again:
        arguments.append("--again")
    return arguments


class LabellingJob:
    """A running labeller: its progress lines, a cancel, and how it ended."""

    def __init__(self, process: subprocess.Popen[str], error_log: IO[bytes]) -> None:
        self.process = process
        self._error_log = error_log
        self._cancel_requested = threading.Event()
        self._killer: threading.Timer | None = None

    @property
    def pid(self) -> int:
        """The labeller's process id."""
        return self.process.pid

    def lines(self) -> Iterator[str]:
        """Each line the labeller prints, as it prints it; ends when the labeller exits.

        Calling it again after a break goes on from the next line.
        """
        assert self.process.stdout is not None
        for line in self.process.stdout:
            text = line.rstrip("\r\n")
            if text.strip():
                yield text

    def cancel(self, grace: float = CANCEL_GRACE_SECONDS) -> None:
        """Ask the labeller to stop after its current row (SIGTERM); kill it if it has not
        exited ``grace`` seconds later. Returns at once; what was stored stays."""
        if self._cancel_requested.is_set() or self.process.poll() is not None:
            self._cancel_requested.set()
            return
        self._cancel_requested.set()
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        self._killer = threading.Timer(grace, self._kill_if_running)
        self._killer.daemon = True
        self._killer.start()

    def wait(self) -> None:
        """Wait for the labeller to exit; CancelledError if it was cancelled (or stopped on a
        signal from elsewhere), TunesmithError with its one-line reason if it failed."""
        if self.process.stdout is not None and not self.process.stdout.closed:
            # Unread progress must not fill the pipe and block the labeller.
            self.process.stdout.read()
        returncode = self.process.wait()
        self._release()
        if returncode == 0:
            return
        if returncode == STOPPED_EXIT_STATUS or self._cancel_requested.is_set():
            raise CancelledError("labelling stopped; the proposals made so far are stored")
        self._error_log.seek(0)
        errors = self._error_log.read().decode("utf-8", errors="replace")
        raise TunesmithError(failure_message(LABELLING_MODULE, errors, returncode))

    def close(self) -> None:
        """Stop the labeller if it still runs (at once, without a grace period) and free its
        files; safe to call more than once."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._release()
        self._error_log.close()

    def _release(self) -> None:
        """Stop the kill timer and close the pipes of an exited labeller."""
        if self._killer is not None:
            self._killer.cancel()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()

    def _kill_if_running(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def start_labelling(
    db_path: Path,
    project: str,
    run_id: int | None,
    labels: Sequence[str],
    limit: int | None = None,
    *,
    again: bool = False,
) -> LabellingJob:
    """Start proposing answers for the unlabeled rows of ``project`` that have no proposal yet
    (every unlabeled row with ``again``), at most ``limit`` of them, least confident first.

    ``run_id`` names the completed run whose model proposes; None proposes with the base
    model shown the approved examples. ``labels`` are the task's labels (empty: a free-text
    task, answered greedily). The labeller runs in a session of its own, so a Ctrl-C reaches
    only this process, which decides whether to cancel; it exits when this process dies.
    """
    # The job owns the file and closes it (close(), or leaving its ``with`` block).
    error_log = tempfile.TemporaryFile()  # noqa: SIM115
    arguments = labelling_arguments(
        db_path, project, run_id=run_id, labels=labels, limit=limit, again=again
    )
    try:
        process = subprocess.Popen(
            child_command(LABELLING_MODULE, arguments),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=error_log,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=child_environment(),
            start_new_session=True,
        )
    except OSError as error:
        error_log.close()
        raise TunesmithError(f"cannot start the labeller: {error}") from error
    return LabellingJob(process, error_log)
