"""What the four areas share: their keys, the tab line, the footer and the current project."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer
from textual.worker import Worker

from store.projects import Project
from tui.widgets.area_bar import Area, AreaBar

if TYPE_CHECKING:
    import sqlite_utils
    from textual.app import ComposeResult


AREAS: tuple[Area, ...] = (
    Area("chat", "Chat", "1", "f2"),
    Area("dataset", "Dataset", "2", "f3"),
    Area("train", "Train", "3", "f4"),
    Area("compare", "Compare", "4", "f5"),
)
"""The areas in tab order; digits work where no text box has focus, function keys everywhere."""


_AREA_KEYS = Binding.Group("Areas")


def _area_bindings() -> Iterable[BindingType]:
    for area in AREAS:
        action = f"app.switch_mode('{area.mode}')"
        yield Binding(area.key, action, area.title, group=_AREA_KEYS)
        yield Binding(area.function_key, action, area.title, show=False)


def forward_worker_state(node: DOMNode, event: Worker.StateChanged) -> None:
    """Pass a worker's state change on to the app, which reports every failure in one place.

    ``Worker.StateChanged`` does not bubble, so without this a failing screen worker is silent.
    """
    node.app.post_message(Worker.StateChanged(event.worker, event.state))


class AreaScreen(Screen[None]):
    """An area: the tab line on top, the area's own widgets, the keys at the bottom."""

    AREA: ClassVar[str]
    """The mode name of this area (one of ``AREAS``)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *_area_bindings(),
        Binding("p", "app.pick_project", "Project", tooltip="Choose or create a project"),
        Binding("question_mark", "app.help", "Help", key_display="?"),
    ]

    project: reactive[Project | None] = reactive(None, always_update=True)
    """The project this area shows: the app's current project, handed down on every change."""

    def __init__(self, database: sqlite_utils.Database) -> None:
        super().__init__()
        self.database = database
        """The open tunesmith database, shared with the app."""

    def compose(self) -> ComposeResult:
        yield AreaBar(AREAS, self.AREA).data_bind(AreaScreen.project)
        yield from self.compose_area()
        yield Footer()

    def compose_area(self) -> Iterable[Widget]:
        """The widgets between the tab line and the footer."""
        return ()

    def on_mount(self) -> None:
        self.watch(self.app, "current_project", self._current_project_changed)

    def _current_project_changed(self, project: Project | None) -> None:
        self.project = project

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        forward_worker_state(self, event)
