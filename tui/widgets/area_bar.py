"""The tab line on top of every area: the areas with their keys, and the current project."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Label, Static

from store.projects import Project
from tui.text import plain

if TYPE_CHECKING:
    from textual import events
    from textual.app import ComposeResult

NO_PROJECT = "p choose a project"
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


class BarKey(Static):
    """A key that works in every area, shown on the tab line; clicking it does the same."""

    def __init__(self, key: str, label: str, action: str, *, id: str) -> None:
        super().__init__(Text.assemble((key, "bold"), " ", label), id=id, classes="bar-key")
        self.action = action
        """The action the key runs, e.g. ``app.help``."""

    async def on_click(self, event: events.Click) -> None:
        await self.run_action(self.action)


class AreaBar(Horizontal):
    """A one-line bar: app name, the area tabs (current one highlighted), project, help, quit."""

    project: reactive[Project | None] = reactive(None, always_update=True)
    """The project shown on the right; set by the screen."""

    def __init__(self, areas: Sequence[Area], current_mode: str, *, typing: bool = False) -> None:
        super().__init__()
        self.areas = tuple(areas)
        """The areas to show as tabs, in order."""
        self.current_mode = current_mode
        """The mode of the screen this bar sits on."""
        self.typing = typing
        """Whether the area's text box usually has the focus: then letters and digits type,
        so the bar shows the keys that work while typing (F2-F5, ctrl+o, F1)."""
        self.set_class(typing, "-typing")

    def compose(self) -> ComposeResult:
        yield Label("tunesmith", id="area-bar-brand")
        for area in self.areas:
            key = area.function_key.upper() if self.typing else area.key
            yield AreaTab(area.mode, area.title, key, current=area.mode == self.current_mode)
        yield Label(NO_PROJECT, id="area-bar-project", markup=False)
        yield BarKey("F1" if self.typing else "?", "help", "app.help", id="area-bar-help")
        yield BarKey("^q", "quit", "app.quit", id="area-bar-quit")

    def watch_project(self, project: Project | None) -> None:
        label = self.query_one("#area-bar-project", Label)
        if project is None:
            label.update(NO_PROJECT.replace("p ", "^o ", 1) if self.typing else NO_PROJECT)
        else:
            key = "^o " if self.typing else "p "
            label.update(Text.assemble((key, "not bold"), plain(project.name)))
        label.set_class(project is None, "-none")
