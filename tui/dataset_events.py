"""What the Dataset area's workers report: examples read and checked, examples changed."""

from __future__ import annotations

from collections.abc import Sequence

from textual.message import Message

from store.examples import Example
from store.projects import Project
from tui.dataset_checks import DatasetChecks
from tui.dataset_review import UndoStep


class ExamplesLoaded(Message):
    """The examples of a project were read from the store and checked."""

    def __init__(
        self,
        project: Project,
        examples: Sequence[Example],
        checks: DatasetChecks,
        unlabeled: Sequence[Example],
        labels: Sequence[str],
    ) -> None:
        super().__init__()
        self.project = project
        """The project the examples belong to."""
        self.examples = tuple(examples)
        """The project's examples, oldest first."""
        self.checks = checks
        """What the checks found."""
        self.unlabeled = tuple(unlabeled)
        """The examples without an answer, least confident proposal first."""
        self.labels = tuple(labels)
        """The task's labels (the spec's, else the approved answers'); empty if none."""


class ExamplesChanged(Message):
    """Examples were changed in the store (approved, edited, removed, undone...)."""

    def __init__(
        self,
        project: Project,
        note: str,
        undo: UndoStep | None,
        restored: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.project = project
        """The project the examples belong to."""
        self.note = note
        """What happened, in one line for a notification."""
        self.undo = undo
        """How to take it back; None for an undo itself."""
        self.restored = tuple(restored)
        """The examples an undo put back as they were."""


class ProposalsMade(Message):
    """The labeller moved on (a progress line), or ended (``done``, with why when it failed)."""

    def __init__(self, project: Project, line: str, *, done: bool = False) -> None:
        super().__init__()
        self.project = project
        """The project whose rows are being labelled."""
        self.line = line
        """What the labeller is doing, or how it ended."""
        self.done = done
        """Whether the labeller has ended."""
