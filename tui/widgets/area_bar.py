"""The tab line on top of every area: the areas with their keys, and the current project."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Label, Static

from store.projects import Project
from tui.text import plain

if TYPE_CHECKING:
    from textual import events
    from textual.app import ComposeResult

NO_PROJECT = "no project · p to choose"
"""What the tab line says before a project is chosen."""


@dataclass(frozen=True)
class Area:
    """One area of the app: its mode name, its title and the keys that switch to it."""

    mode: str
    title: str
    key: str
    function_key: str


class AreaTab(Static):
    """One area's tab: its key and title; clicking it switches to the area."""

    def __init__(self, mode: str, title: str, key: str, *, current: bool) -> None:
        super().__init__(
            f"{key} {title}",
            markup=False,
            id=f"area-tab-{mode}",
            classes="-current" if current else "",
        )
        self.mode = mode
        """The mode this tab switches to."""

    async def on_click(self, event: events.Click) -> None:
        await self.run_action(f"app.switch_mode('{self.mode}')")


class AreaBar(Horizontal):
    """A one-line bar: app name, the four area tabs (current one highlighted), project name."""

    project: reactive[Project | None] = reactive(None, always_update=True)
    """The project shown on the right; set by the screen."""

    def __init__(self, areas: Sequence[Area], current_mode: str) -> None:
        super().__init__()
        self.areas = tuple(areas)
        """The areas to show as tabs, in order."""
        self.current_mode = current_mode
        """The mode of the screen this bar sits on."""

    def compose(self) -> ComposeResult:
        yield Label("tunesmith", id="area-bar-brand")
        for area in self.areas:
            yield AreaTab(area.mode, area.title, area.key, current=area.mode == self.current_mode)
        yield Label(NO_PROJECT, id="area-bar-project", markup=False)

    def watch_project(self, project: Project | None) -> None:
        label = self.query_one("#area-bar-project", Label)
        label.update(plain(project.name) if project is not None else NO_PROJECT)
        label.set_class(project is None, "-none")
