"""Long agent work (drafting, labelling): the progress it reports and the cancel it obeys.

The caller owns both ends: the CLI prints each progress line, the app shows it in a status
line and sets ``cancel`` on esc. The work checks ``cancel`` between steps (one model call
each), so a cancel takes effect within one call, and what was stored before it stays.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from store.errors import CancelledError


def _ignore(text: str) -> None:
    """The progress report of work nobody watches."""


@dataclass(frozen=True)
class Work:
    """How long work says what it is doing and learns that it should stop."""

    report: Callable[[str], None] = _ignore
    """Called with a short line ("drafted 4/10") each time the work moves on."""
    cancel: threading.Event = field(default_factory=threading.Event)
    """Set by the caller to stop the work at its next step."""

    @property
    def cancelled(self) -> bool:
        """Whether the caller asked the work to stop."""
        return self.cancel.is_set()

    def check(self) -> None:
        """Raise CancelledError when the caller asked the work to stop."""
        if self.cancel.is_set():
            raise CancelledError()
