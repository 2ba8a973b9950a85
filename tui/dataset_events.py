"""What the Dataset area's workers report: a window of examples read, the project checked,
examples changed, proposals made."""

from __future__ import annotations

from collections.abc import Sequence

from textual.message import Message

from store.example_pages import ExampleCounts, ExampleView, ExampleWindow, UnansweredPage
from store.projects import Project
from tui.dataset_checks import DatasetChecks, ProjectChecks
from tui.dataset_review import Cursor, UndoStep


class ExamplesLoaded(Message):
    """The counts of a project and a window of its examples were read from the store."""

    def __init__(
        self,
        project: Project,
        counts: ExampleCounts,
        view: ExampleView,
        window: ExampleWindow,
        checks: DatasetChecks,
        unanswered: UnansweredPage,
        cursor: Cursor,
        checked: ProjectChecks | None,
    ) -> None:
        super().__init__()
        self.project = project
        """The project the examples belong to."""
        self.counts = counts
        """Its live examples counted."""
        self.view = view
        """The filter and order the window was read with."""
        self.window = window
        """The rows of the view the table shows."""
        self.checks = checks
        """What the checks found about those rows."""
        self.unanswered = unanswered
        """The first examples without an answer, least confident proposal first."""
        self.cursor = cursor
        """Where the table's cursor goes."""
        self.checked = checked
        """The project's checks the rows were checked against (None: none yet)."""


class ProjectChecked(Message):
    """The checks over a whole project moved on (``line``) or ended (``checks``)."""

    def __init__(
        self, project: Project, *, line: str = "", checks: ProjectChecks | None = None
    ) -> None:
        super().__init__()
        self.project = project
        """The project checked."""
        self.line = line
        """What the checks are doing, while they run."""
        self.checks = checks
        """What they found, once they ended."""


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
