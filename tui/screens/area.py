"""What the four areas share: their keys, the tab line, the footer and the current project."""

from __future__ import annotations

import gc
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
        # The tab line shows these keys; the footer keeps its room for the area's own.
        yield Binding(area.key, action, area.title, group=_AREA_KEYS, show=False)
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

    TYPING: ClassVar[bool] = False
    """Whether a text box usually has the focus here (the tab line then shows F-keys)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *_area_bindings(),
        Binding(
            "p", "app.pick_project", "Project", show=False, tooltip="Choose or create a project"
        ),
        # Also while typing in a box, as the function keys of the areas work (F6, the next
        # one, selects a line in a text box).
        Binding("ctrl+o", "app.pick_project", "Project", show=False),
        Binding("question_mark", "app.help", "Help", key_display="?", show=False),
    ]

    project: reactive[Project | None] = reactive(None, always_update=True)
    """The project this area shows: the app's current project, handed down on every change."""

    def __init__(self, database: sqlite_utils.Database) -> None:
        super().__init__()
        self.database = database
        """The open tunesmith database, shared with the app."""

    def compose(self) -> ComposeResult:
        yield AreaBar(AREAS, self.AREA, typing=self.TYPING).data_bind(AreaScreen.project)
        yield from self.compose_area()
        # Help, quit and the palette are on the tab line and in the help; the footer keeps its
        # room for the keys of the area and of the focused widget.
        yield Footer(compact=True, show_command_palette=False)

    def compose_area(self) -> Iterable[Widget]:
        """The widgets between the tab line and the footer."""
        return ()

    def on_mount(self) -> None:
        self.watch(self.app, "current_project", self._current_project_changed)
        # The widgets just built live as long as the app: moved out of the collector's reach,
        # a full collection no longer walks them all, which paused the loop for up to 200 ms
        # when a training run left the app little CPU.
        self.call_after_refresh(gc.freeze)

    def _current_project_changed(self, project: Project | None) -> None:
        self.project = project

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        forward_worker_state(self, event)
