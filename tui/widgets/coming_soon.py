"""The body of an area that is not built yet: what it will do and what to use meanwhile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from store.projects import Project

if TYPE_CHECKING:
    from textual.app import ComposeResult


class ComingSoon(VerticalScroll):
    """A placeholder that says what the area will hold and lists the CLI commands to use meanwhile.

    Commands are templates: ``{project}`` becomes the current project's name, else ``NAME``.
    """

    project: reactive[Project | None] = reactive(None, always_update=True)
    """The project whose name fills the command templates; set by the screen."""

    def __init__(self, title: str, description: str, commands: Sequence[tuple[str, str]]) -> None:
        super().__init__(classes="coming-soon")
        self.title = title
        """What the area is called, shown as a heading."""
        self.description = description
        """What the area will let a person do."""
        self.commands = tuple(commands)
        """(command template, what it does) pairs to run from a shell until the area exists."""

    def compose(self) -> ComposeResult:
        yield Static(self.title, classes="coming-soon-title", markup=False)
        yield Static(self.description, classes="coming-soon-description", markup=False)
        yield Static(
            "Not in the app yet. Meanwhile, from a shell:",
            classes="coming-soon-meanwhile",
            markup=False,
        )
        for index, (_, purpose) in enumerate(self.commands):
            yield Static(classes="coming-soon-command", id=f"coming-soon-command-{index}")
            yield Static(purpose, classes="coming-soon-purpose", markup=False)
        yield Static(id="coming-soon-project", classes="coming-soon-project")

    def watch_project(self, project: Project | None) -> None:
        name = project.name if project is not None else "NAME"
        for index, (template, _) in enumerate(self.commands):
            command = self.query_one(f"#coming-soon-command-{index}", Static)
            command.update(Text("$ " + template.format(project=name)))
        note = self.query_one("#coming-soon-project", Static)
        if project is None:
            note.update("No project chosen yet: press p to choose or create one.")
        else:
            note.update(Text.assemble("Current project: ", (name, "bold")))
