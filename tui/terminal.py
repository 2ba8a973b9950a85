"""The terminal the app draws on: whether it is still there, and a driver that closes quietly
once it is not.

When a terminal closes (a tmux pane killed, an SSH connection dropped) the kernel sends SIGHUP
to its session leader alone. Where the app is not that leader, as under ``make run`` (make
catches the signal and waits for its child), no signal reaches the app; its input is then a
hung-up terminal that reads as endless end-of-file, and Textual's input thread spins on it at
full speed. So the app also looks: a hung-up terminal is no longer a terminal to ``isatty``.

Closing must then not write to the terminal for real. Textual's writer thread dies on the first
write that fails, after which the app blocks on its full queue of writes; and the SIGCONT the
kernel sends with SIGHUP would have Textual set the gone terminal up again. ``TerminalDriver``
drops what cannot be written and ignores that SIGCONT.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from textual.drivers.linux_driver import LinuxDriver

WATCH_SECONDS = 1.0
"""How often the app looks whether its terminal is gone."""


def terminal_input() -> int | None:
    """The file descriptor of the app's terminal input, or None where it reads no terminal
    (the tests' headless apps, a browser tab's pipe)."""
    stream = sys.__stdin__
    if stream is None:
        return None
    try:
        descriptor = stream.fileno()
    except (OSError, ValueError):
        return None
    return descriptor if os.isatty(descriptor) else None


def terminal_gone(descriptor: int) -> bool:
    """Whether the terminal at ``descriptor`` hung up (or was closed)."""
    return not os.isatty(descriptor)


class TerminalOutput:
    """A terminal's output stream whose writes, once the terminal is gone, are dropped."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            return

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class TerminalDriver(LinuxDriver):
    """Textual's driver for a Linux or macOS terminal, made to close quietly once the terminal
    has gone."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Typed by Textual as the standard error stream it wraps.
        stream: Any = self._file
        output: Any = TerminalOutput(stream)
        self._file = output

    def _sigcont_application(self, *args: Any) -> None:
        if not terminal_gone(self.fileno):
            super()._sigcont_application(*args)
