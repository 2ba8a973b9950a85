"""The one error hierarchy of tunesmith; the TUI and CLI edges turn these into messages."""

from __future__ import annotations

import errno


class TunesmithError(Exception):
    """An error a person can act on, with a one-line message and a short title."""

    def __init__(self, message: str, title: str = "tunesmith") -> None:
        super().__init__(message)
        self.message = message
        self.title = title


class NotFoundError(TunesmithError):
    """A project, example, run or file that was named does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(message, title="Not found")


class InputError(TunesmithError):
    """Input from the user (a file, a field, a flag) cannot be used as given."""

    def __init__(self, message: str) -> None:
        super().__init__(message, title="Invalid input")


class ModelError(TunesmithError):
    """A base model cannot be found, converted, loaded or served."""

    def __init__(self, message: str) -> None:
        super().__init__(message, title="Model")


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""No space left on the device, or the user's disk quota is used up."""

_DISK_FULL_TEXTS = ("no space left on device", "os error 28", "database or disk is full")
"""How libraries that lose the errno (safetensors, SQLite) say the disk is full."""


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(current).lower() for text in _DISK_FULL_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def one_line_reason(error: BaseException, limit: int = 300) -> str:
    """An exception as one short line: a tunesmith error's message, else the type and the first
    line of its text (a traceback is for a bug report; this line is what a person reads)."""
    if isinstance(error, TunesmithError):
        text = " ".join(error.message.split())
    else:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CancelledError(TunesmithError):
    """Long work (drafting, labelling) was cancelled by the person; what it saved stays."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message, title="Cancelled")
