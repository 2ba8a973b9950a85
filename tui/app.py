"""The tunesmith Textual app: four areas as modes over one database, one project at a time."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message
from textual.reactive import reactive
from textual.worker import Worker, WorkerState

from store.config import DEFAULT_SETTINGS, load_settings
from store.database import open_database
from store.errors import TunesmithError, one_line_reason
from store.examples import count_examples
from store.projects import (
    Project,
    get_project,
    get_project_by_id,
    list_projects,
)
from store.runs import ACTIVE_STATUSES, Run, get_run, list_runs
from trainer.control.jobs import refresh_runs
from tui.dialogs.help import HelpScreen
from tui.dialogs.project_picker import ProjectPickerScreen
from tui.run_text import run_outcome
from tui.safe_text import terminal_safe
from tui.screens.area import AREAS, AreaScreen
from tui.screens.chat import ChatScreen
from tui.screens.compare import CompareScreen
from tui.screens.dataset import DatasetScreen
from tui.screens.train import TrainScreen
from tui.services import (
    AppServices,
    ModelServers,
    ProvidesServices,
    ServerStarter,
    start_project_server,
)
from tui.terminal import WATCH_SECONDS, TerminalDriver, terminal_gone, terminal_input

if TYPE_CHECKING:
    import sqlite_utils
    from textual.screen import Screen

AREA_SCREENS: dict[str, type[AreaScreen]] = {
    screen.AREA: screen for screen in (ChatScreen, DatasetScreen, TrainScreen, CompareScreen)
}
"""The screen class of each area, by mode name."""

RUN_WATCH_SECONDS = 2.0
"""How often the app looks for runs that ended, to say so wherever the person is."""

_PALETTE_SKIPS = {"app.help", "app.quit", "app.pick_project", "app.command_palette"}
"""Actions the palette lists once, as app commands, rather than once per area."""


class TunesmithApp(ProvidesServices, App[None]):
    """Chat, Dataset, Train and Compare areas over one tunesmith database."""

    TITLE = "tunesmith"
    CSS_PATH = "app.tcss"
    DEFAULT_MODE = "dataset"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True, show=False, tooltip="Quit tunesmith"),
        Binding("f1", "help", "Help", show=False),
    ]

    current_project: reactive[Project | None] = reactive(None, always_update=True)
    """The project every area shows; None until one is chosen in the picker."""

    active_runs: reactive[tuple[Run, ...]] = reactive(())
    """Runs of any project still queued or training, as last seen."""

    compare_run_id: reactive[int | None] = reactive(None)
    """The run the Compare area shows; set by Train's compare key, else Compare picks."""

    class ProjectChosen(Message):
        """A project was chosen (or created) and read from the store."""

        def __init__(self, project: Project, *, has_examples: bool) -> None:
            super().__init__()
            self.project = project
            """The chosen project."""
            self.has_examples = has_examples
            """Whether it has any example yet (else the app opens on the Chat area)."""

    class RunsChecked(Message):
        """The runs still training, and those that ended since the last look, were read."""

        def __init__(self, active: Sequence[Run], ended: Sequence[tuple[Run, str]]) -> None:
            super().__init__()
            self.active = tuple(active)
            """Runs still queued or training."""
            self.ended = tuple(ended)
            """Runs that were training at the last look and have ended, with their project."""

    def __init__(
        self, db_path: Path, *, server_starter: ServerStarter = start_project_server
    ) -> None:
        """Open (creating if needed) the database at ``db_path``; raises TunesmithError."""
        super().__init__()
        self.db_path = db_path
        """The database file this app works on."""
        self.database: sqlite_utils.Database = open_database(db_path)
        """The open database; workers use it through ``services.database()``."""
        self.services = AppServices(self.database, db_path, ModelServers(server_starter))
        """The database (one thread at a time) and the model server, for the screens' workers."""
        self._settings_problem = ""
        try:
            settings = load_settings()
        except TunesmithError as error:
            # The app goes on with the defaults; a notification says why.
            settings, self._settings_problem = DEFAULT_SETTINGS, one_line_reason(error)
        self.settings = settings
        """The config file's settings, each overridden by its environment variable."""
        self._watched_runs: set[int] = set()
        self._looked = False
        self.terminal_lost = False
        """Whether the app closed because its terminal went (nothing can be written there)."""
        for area in AREAS:
            self.add_mode(area.mode, partial(AREA_SCREENS[area.mode], self.database))

    def get_driver_class(self) -> type[Driver]:
        chosen = super().get_driver_class()
        # The browser's driver (TEXTUAL_DRIVER) and Windows' are kept.
        return TerminalDriver if chosen is LinuxDriver else chosen

    def on_mount(self) -> None:
        self._apply_settings()
        self.action_pick_project()
        self._check_runs(frozenset())
        self.set_interval(RUN_WATCH_SECONDS, self._watch_runs)
        self._watch_terminal()

    def on_unmount(self) -> None:
        # The areas froze their widgets out of the collector's reach; give them back, so a
        # process that makes several apps (the tests) can free them.
        gc.unfreeze()
        self.services.servers.stop()
        with self.services.database() as database:
            database.close()

    def _watch_terminal(self) -> None:
        """Close, as on Ctrl-Q, when the terminal goes: on SIGHUP, or once it has hung up."""
        descriptor = None if self.is_headless else terminal_input()
        if descriptor is None:
            return
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._terminal_went)

        def look() -> None:
            if terminal_gone(descriptor):
                self._terminal_went()

        self.set_interval(WATCH_SECONDS, look)

    def _terminal_went(self) -> None:
        self.terminal_lost = True
        self.exit()

    def _apply_settings(self) -> None:
        """Use the configured theme; say in one line why a setting could not be used."""
        problem = self._settings_problem
        theme = self.settings.theme
        if theme is not None and theme in self.available_themes:
            self.theme = theme
        elif theme is not None:
            kept = self.theme
            problem = f"Unknown theme {theme!r} in ui.theme / TUNESMITH_THEME; keeping {kept}."
        if problem:
            self.notify(terminal_safe(problem), title="Settings", severity="warning", markup=False)

    def action_pick_project(self) -> None:
        """Open the project picker (unless it is already open)."""
        if isinstance(self.screen, ProjectPickerScreen):
            return
        current = self.current_project.name if self.current_project is not None else None
        picker = ProjectPickerScreen(self.database, self.settings.base_model, current)
        self.push_screen(picker, self._project_picked)

    def _project_picked(self, name: str | None) -> None:
        if name is not None:
            self._open_project(name)

    @work(thread=True, exclusive=True, exit_on_error=False, group="open-project")
    def _open_project(self, name: str) -> None:
        with self.services.database() as database:
            project = get_project(database, name)
            has_examples = count_examples(database, project.id) > 0
        self.post_message(self.ProjectChosen(project, has_examples=has_examples))

    async def on_tunesmith_app_project_chosen(self, message: ProjectChosen) -> None:
        self.current_project = message.project
        if not message.has_examples:
            # With nothing to review yet, the way on is to describe the task.
            await self.switch_mode("chat")

    def action_help(self) -> None:
        """Show the keys (unless the help is already open)."""
        if not isinstance(self.screen, HelpScreen):
            area = self.screen.AREA if isinstance(self.screen, AreaScreen) else None
            self.push_screen(HelpScreen(area))

    # Runs train in their own processes; the app looks at them to say when one ends.

    def _watch_runs(self) -> None:
        if not any(worker.group == "run-watch" and worker.is_running for worker in self.workers):
            self._check_runs(frozenset(self._watched_runs))

    @work(thread=True, exit_on_error=False, group="run-watch")
    def _check_runs(self, watched: frozenset[int]) -> None:
        with self.services.database() as database:
            refresh_runs(database)
            active = [
                run
                for project in list_projects(database)
                for run in list_runs(database, project.id)
                if run.status in ACTIVE_STATUSES
            ]
            active_ids = {run.id for run in active}
            ended = []
            for run_id in sorted(watched - active_ids):
                run = get_run(database, run_id)
                ended.append((run, get_project_by_id(database, run.project_id).name))
        self.post_message(self.RunsChecked(active, ended))

    def on_tunesmith_app_runs_checked(self, message: RunsChecked) -> None:
        active_ids = {run.id for run in message.active}
        from_before = active_ids - self._watched_runs if not self._looked else set()
        self._looked = True
        ended_ids = {run.id for run, _ in message.ended}
        self._watched_runs = (self._watched_runs - ended_ids) | active_ids
        self.active_runs = message.active
        if from_before:
            ids = ", ".join(str(run_id) for run_id in sorted(from_before))
            self.notify(
                f"Still training from before: run {ids}. The Train area (3) follows it.",
                title="Training",
                markup=False,
            )
        for run, project_name in message.ended:
            title, line, failed = run_outcome(run, project_name)
            self.bell()
            self.notify(
                terminal_safe(line),
                title=title,
                severity="error" if failed else "information",
                timeout=10,
                markup=False,
            )

    @on(TrainScreen.RunLaunched)
    def _run_launched(self, message: TrainScreen.RunLaunched) -> None:
        self._watched_runs.add(message.run.id)

    @on(TrainScreen.CompareRequested)
    async def _compare_requested(self, message: TrainScreen.CompareRequested) -> None:
        self.compare_run_id = message.run_id
        await self.switch_mode("compare")

    # Errors and commands

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Turn a failed worker, the app's or a screen's, into an error notification."""
        error = event.worker.error
        if event.state is not WorkerState.ERROR or error is None:
            return
        if isinstance(error, TunesmithError):
            self.notify(
                terminal_safe(error.message), title=error.title, severity="error", markup=False
            )
        else:
            self.log.error(f"worker {event.worker.name!r} failed", error)
            self.notify(
                terminal_safe(one_line_reason(error)),
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
            yield from self._screen_commands(screen)
        yield SystemCommand("Help", "List the keys (? or F1)", self.action_help)
        yield from super().get_system_commands(screen)

    def _screen_commands(self, screen: AreaScreen) -> Iterable[SystemCommand]:
        """One command per action the area offers now, named as in its footer."""
        seen: set[str] = set()
        for key, active in screen.active_bindings.items():
            binding = active.binding
            action = binding.action
            if (
                not active.enabled
                or not binding.description
                or action in seen
                or action in _PALETTE_SKIPS
                or action.startswith("app.switch_mode")
                or binding.system
            ):
                continue
            seen.add(action)
            shown_key = binding.key_display or key
            explanation = binding.tooltip or binding.description
            yield SystemCommand(
                f"{screen.AREA.capitalize()}: {binding.description}",
                f"{explanation} ({shown_key})",
                partial(self.run_action, action, active.node),
            )


def run_app(db_path: Path) -> None:
    """Run the app on the database at ``db_path`` until the person quits.

    A database that cannot be opened ends the program with a one-line message. Runs still
    training when the app closes keep going; a line says how to follow them.
    """
    try:
        app = TunesmithApp(db_path)
    except TunesmithError as error:
        raise SystemExit(f"tunesmith: {terminal_safe(error.message)}") from None
    app.run()
    if app.terminal_lost:
        return
    for run in app.active_runs:
        print(
            f"tunesmith: run {run.id} keeps training; follow it: tunesmith runs follow {run.id}",
            file=sys.stderr,
        )
