"""The project picker: choose a project to work on, or create one from a name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Label, Static
from textual.worker import Worker

from store.errors import InputError
from store.examples import count_examples
from store.projects import Project, create_project, list_projects
from tui.screens.area import forward_worker_state
from tui.services import services
from tui.text import plain
from tui.widgets.key_table import KeyTable

if TYPE_CHECKING:
    import sqlite_utils
    from textual.app import ComposeResult

NO_PROJECTS = (
    "No projects yet. Type a name below and press Enter to create one.\n"
    "Or, from a shell: tunesmith project new NAME,\n"
    "then tunesmith examples import NAME FILE (JSONL or CSV)."
)
"""What the picker says when the database has no project."""

HOW_TO_CHOOSE = "↑↓ or j/k to move, Enter to open. Tab goes to the new project box."
"""What the picker says above a list of projects."""


@dataclass(frozen=True)
class ProjectSummary:
    """A project as the picker lists it: the project and how many examples it has."""

    project: Project
    example_count: int


class ProjectPickerScreen(ModalScreen[str | None]):
    """A dialog listing the projects; dismissed with the chosen or created name, or None."""

    CSS_PATH = "project_picker.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Close"),
        # App bindings other than priority ones stop at a modal screen; these repeat them.
        Binding("f1", "app.help", "Help", key_display="F1"),
        Binding("ctrl+q", "app.quit", "Quit"),
        Binding("ctrl+c", "app.help_quit", show=False, system=True),
    ]

    class ProjectsLoaded(Message):
        """The projects and their example counts were read from the store."""

        def __init__(self, summaries: Sequence[ProjectSummary]) -> None:
            super().__init__()
            self.summaries = tuple(summaries)
            """Every project with its example count, oldest first."""

    class ProjectCreated(Message):
        """A new project was created from the name typed in the picker."""

        def __init__(self, project: Project) -> None:
            super().__init__()
            self.project = project
            """The project just created."""

    class ProjectNameRejected(Message):
        """The store refused the typed name (invalid or already taken)."""

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason
            """Why, in one line."""

    def __init__(
        self, database: sqlite_utils.Database, base_model: str, current: str | None = None
    ) -> None:
        super().__init__()
        self.database = database
        """The open tunesmith database, shared with the app."""
        self.base_model = base_model
        """The base model of a project created here (the configured default)."""
        self.current = current
        """The name of the project open now, highlighted first; None if there is none."""

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-dialog") as dialog:
            dialog.border_title = "Projects"
            yield Static("Reading projects…", id="picker-status", markup=False)
            yield KeyTable(id="picker-projects")
            yield Label(
                f"New project (base model {self.base_model}):",
                id="picker-new-label",
                markup=False,
            )
            yield Input(placeholder="a name, e.g. review-to-json", id="picker-new-name")
            yield Static(id="picker-error", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#picker-projects", KeyTable)
        table.add_column("project", key="name")
        table.add_column("base model", key="base_model")
        table.add_column("examples", key="examples")
        table.display = False
        self._load_projects()

    @work(thread=True, exclusive=True, exit_on_error=False, group="picker-projects")
    def _load_projects(self) -> None:
        with services(self).database() as database:
            summaries = [
                ProjectSummary(project, count_examples(database, project.id))
                for project in list_projects(database)
            ]
        self.post_message(self.ProjectsLoaded(summaries))

    @on(ProjectsLoaded)
    def _show_projects(self, message: ProjectsLoaded) -> None:
        table = self.query_one("#picker-projects", KeyTable)
        status = self.query_one("#picker-status", Static)
        table.clear()
        if not message.summaries:
            status.update(NO_PROJECTS)
            table.display = False
            self.query_one("#picker-new-name", Input).focus()
            return
        status.update(HOW_TO_CHOOSE)
        for summary in message.summaries:
            table.add_row(
                plain(summary.project.name, 32),
                plain(summary.project.base_model, 32),
                Text(str(summary.example_count), justify="right"),
                key=summary.project.name,
            )
        table.display = True
        names = [summary.project.name for summary in message.summaries]
        if self.current in names:
            table.move_cursor(row=names.index(self.current))
        table.focus()

    @on(DataTable.RowSelected, "#picker-projects")
    def _project_selected(self, event: DataTable.RowSelected) -> None:
        self.dismiss(event.row_key.value)

    @on(Input.Submitted, "#picker-new-name")
    def _name_submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        error = self.query_one("#picker-error", Static)
        error.update("" if name else "Type a name for the new project first.")
        if name:
            self._create_project(name)

    @on(Input.Changed, "#picker-new-name")
    def _name_changed(self) -> None:
        self.query_one("#picker-error", Static).update("")

    @work(thread=True, exclusive=True, exit_on_error=False, group="picker-create")
    def _create_project(self, name: str) -> None:
        try:
            with services(self).database() as database:
                project = create_project(database, name, base_model=self.base_model)
        except InputError as error:
            self.post_message(self.ProjectNameRejected(error.message))
            return
        self.post_message(self.ProjectCreated(project))

    @on(ProjectCreated)
    def _project_created(self, message: ProjectCreated) -> None:
        self.dismiss(message.project.name)

    @on(ProjectNameRejected)
    def _name_rejected(self, message: ProjectNameRejected) -> None:
        self.query_one("#picker-error", Static).update(plain(message.reason))

    def action_cancel(self) -> None:
        """Close the picker without changing the project."""
        self.dismiss(None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        forward_worker_state(self, event)
