"""The one error hierarchy of tunesmith; the TUI and CLI edges turn these into messages."""

from __future__ import annotations


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
