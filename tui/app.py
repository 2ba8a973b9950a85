"""The tunesmith Textual app: four areas as modes over one database, one project at a time."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.worker import Worker, WorkerState

from store.database import open_database
from store.errors import TunesmithError
from store.projects import Project, get_project
from tui.safe_text import terminal_safe
from tui.screens.area import AREAS, AreaScreen
from tui.screens.chat import ChatScreen
from tui.screens.compare import CompareScreen
from tui.screens.dataset import DatasetScreen
from tui.screens.help import HelpScreen
from tui.screens.project_picker import ProjectPickerScreen
from tui.screens.train import TrainScreen

if TYPE_CHECKING:
    import sqlite_utils
    from textual.screen import Screen

AREA_SCREENS: dict[str, type[AreaScreen]] = {
    screen.AREA: screen for screen in (ChatScreen, DatasetScreen, TrainScreen, CompareScreen)
}
"""The screen class of each area, by mode name."""


class TunesmithApp(App[None]):
    """Chat, Dataset, Train and Compare areas over one tunesmith database."""

    TITLE = "tunesmith"
    CSS_PATH = "app.tcss"
    DEFAULT_MODE = "dataset"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True, tooltip="Quit tunesmith"),
        Binding("f1", "help", "Help", show=False),
    ]

    current_project: reactive[Project | None] = reactive(None, always_update=True)
    """The project every area shows; None until one is chosen in the picker."""

    class ProjectChosen(Message):
        """A project was chosen (or created) and read from the store."""

        def __init__(self, project: Project) -> None:
            super().__init__()
            self.project = project
            """The chosen project."""

    def __init__(self, db_path: Path) -> None:
        """Open (creating if needed) the database at ``db_path``; raises TunesmithError."""
        super().__init__()
        self.db_path = db_path
        """The database file this app works on."""
        self.database: sqlite_utils.Database = open_database(db_path)
        """The open database; screens get it from here, workers read and write through it."""
        for area in AREAS:
            self.add_mode(area.mode, partial(AREA_SCREENS[area.mode], self.database))

    def on_mount(self) -> None:
        self.action_pick_project()

    def on_unmount(self) -> None:
        self.database.close()

    def action_pick_project(self) -> None:
        """Open the project picker (unless it is already open)."""
        if isinstance(self.screen, ProjectPickerScreen):
            return
        current = self.current_project.name if self.current_project is not None else None
        self.push_screen(ProjectPickerScreen(self.database, current), self._project_picked)

    def _project_picked(self, name: str | None) -> None:
        if name is not None:
            self._open_project(self.database, name)

    @work(thread=True, exclusive=True, exit_on_error=False, group="open-project")
    def _open_project(self, database: sqlite_utils.Database, name: str) -> None:
        self.post_message(self.ProjectChosen(get_project(database, name)))

    def on_tunesmith_app_project_chosen(self, message: ProjectChosen) -> None:
        self.current_project = message.project

    def action_help(self) -> None:
        """Show the keys (unless the help is already open)."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Turn a failed worker, the app's or a screen's, into an error notification."""
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, TunesmithError):
            self.notify(
                terminal_safe(error.message), title=error.title, severity="error", markup=False
            )
        else:
            self.log.error(f"worker {event.worker.name!r} failed", error)
            self.notify(
                terminal_safe(f"{type(error).__name__}: {error}"),
                title="Something went wrong",
                severity="error",
                markup=False,
            )

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        if isinstance(screen, AreaScreen):
            for area in AREAS:
                yield SystemCommand(
                    f"{area.title} area",
                    f"Switch to the {area.title} area ({area.key} or {area.function_key.upper()})",
                    partial(self.switch_mode, area.mode),
                )
            yield SystemCommand(
                "Project", "Choose or create the project to work on (p)", self.action_pick_project
            )
        yield SystemCommand("Help", "List the keys (? or F1)", self.action_help)
        yield from super().get_system_commands(screen)


def run_app(db_path: Path) -> None:
    """Run the app on the database at ``db_path`` until the person quits.

    A database that cannot be opened ends the program with a one-line message.
    """
    try:
        app = TunesmithApp(db_path)
    except TunesmithError as error:
        raise SystemExit(f"tunesmith: {terminal_safe(error.message)}") from None
    app.run()
