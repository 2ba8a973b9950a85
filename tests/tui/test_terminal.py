"""The app in a real pseudo-terminal: it closes when the terminal goes, signalled or not."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui.terminal import TerminalOutput, terminal_gone

APP = "from tui.cli.main import main; main()"
"""The ``tunesmith`` command, run from this checkout."""

LIKE_MAKE = (
    "import signal, subprocess, sys\n"
    "signal.signal(signal.SIGHUP, lambda *_: None)\n"
    f"sys.exit(subprocess.call([sys.executable, '-c', {APP!r}, '--db', sys.argv[1]]))\n"
)
"""A parent that, as make does under ``make run``, catches the hang-up and waits for the app."""

DRAWN = b"No project chosen yet"
"""What the app draws once it is up."""

STARTUP_SECONDS = 60.0
"""How long the app may take to come up on a busy machine."""

CLOSE_SECONDS = 20.0
"""How long the app may take to close once its terminal went."""


def _read_until(master: int, wanted: bytes, seconds: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{wanted!r} not drawn; the terminal showed {seen[-500:]!r}")
        if select.select([master], [], [], left)[0]:
            seen += os.read(master, 65536)
    return seen


def _wait(pid: int, seconds: float) -> int | None:
    """The wait status of ``pid`` once it ends within ``seconds``, else None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ended, status = os.waitpid(pid, os.WNOHANG)
        if ended:
            return status
        time.sleep(0.1)
    return None


def _in_a_terminal(arguments: list[str]) -> tuple[int, int]:
    """Start ``arguments`` as the session leader of a new 80x24 pseudo-terminal."""
    pid, master = pty.fork()
    if pid == 0:
        os.environ.update(TERM="xterm-256color", COLUMNS="80", LINES="24")
        os.execv(sys.executable, [sys.executable, *arguments])
    return pid, master


@pytest.fixture
def closing() -> Iterator[list[int]]:
    """Process groups to kill at the test's end, should one outlive its terminal."""
    groups: list[int] = []
    yield groups
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


@pytest.mark.parametrize("leader", ["app", "a parent like make"])
def test_the_app_closes_when_its_terminal_goes(
    leader: str, tmp_path: Path, closing: list[int]
) -> None:
    db = str(tmp_path / "tunesmith.db")
    arguments = ["-c", APP, "--db", db] if leader == "app" else ["-c", LIKE_MAKE, db]
    pid, master = _in_a_terminal(arguments)
    closing.append(pid)
    _read_until(master, DRAWN, STARTUP_SECONDS)
    # As a killed tmux pane or a dropped SSH connection: the terminal hangs up.
    os.close(master)
    status = _wait(pid, CLOSE_SECONDS)
    assert status is not None, "the app kept running after its terminal went"
    # Closed as on Ctrl-Q, not killed by the signal.
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_terminal_is_gone_once_it_hung_up() -> None:
    master, follower = os.openpty()
    try:
        assert not terminal_gone(follower)
        os.close(master)
        assert terminal_gone(follower)
    finally:
        os.close(follower)


def test_writes_to_a_terminal_that_hung_up_are_dropped() -> None:
    master, follower = os.openpty()
    stream = os.fdopen(follower, "w", encoding="utf-8")
    try:
        output = TerminalOutput(stream)
        output.write("drawn\n")
        output.flush()
        assert os.read(master, 100) == b"drawn\r\n"
        os.close(master)
        with pytest.raises(OSError):
            stream.write("x" * 100_000)
            stream.flush()
        # Textual's writer thread would die here, and the app block on its queue.
        assert output.write("more") == len("more")
        output.flush()
        assert output.fileno() == follower
    finally:
        # Closing flushes what the gone terminal could not take.
        with contextlib.suppress(OSError):
            stream.close()
