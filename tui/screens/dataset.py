"""The Dataset area: the current project's examples, read-only for now."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Static

from store.examples import Example, list_examples
from store.projects import Project
from tui.screens.area import AreaScreen
from tui.widgets.dataset.example_preview import ExamplePreview
from tui.widgets.dataset.examples_table import ExamplesTable
from tui.widgets.dataset.summary import counts_line

if TYPE_CHECKING:
    import sqlite_utils


class DatasetScreen(AreaScreen):
    """Lists the examples of the current project with their counts by status and split."""

    AREA: ClassVar[str] = "dataset"
    CSS_PATH = "dataset.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "Reload", tooltip="Read the examples again (after a CLI import)"),
    ]

    class ExamplesLoaded(Message):
        """The examples of a project were read from the store."""

        def __init__(self, project: Project, examples: Sequence[Example]) -> None:
            super().__init__()
            self.project = project
            """The project the examples belong to."""
            self.examples = tuple(examples)
            """The project's examples, oldest first."""

    def compose_area(self) -> Iterable[Widget]:
        yield Static(id="dataset-summary", markup=False)
        yield ExamplesTable(id="dataset-examples")
        yield ExamplePreview(id="dataset-preview")

    def watch_project(self, project: Project | None) -> None:
        self.refresh_bindings()
        summary = self.query_one("#dataset-summary", Static)
        if project is None:
            summary.update("No project chosen yet: press p to choose or create one.")
            self._show_table(())
            return
        summary.update("Reading examples…")
        self._load_examples(self.database, project)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "reload":
            return self.project is not None
        return True

    def action_reload(self) -> None:
        """Read the current project's examples again."""
        if self.project is not None:
            self._load_examples(self.database, self.project)

    @work(thread=True, exclusive=True, exit_on_error=False, group="dataset-examples")
    def _load_examples(self, database: sqlite_utils.Database, project: Project) -> None:
        self.post_message(self.ExamplesLoaded(project, list_examples(database, project.id)))

    @on(ExamplesLoaded)
    def _show_examples(self, message: ExamplesLoaded) -> None:
        if self.project is None or message.project.id != self.project.id:
            return
        summary = self.query_one("#dataset-summary", Static)
        if message.examples:
            summary.update(counts_line(message.examples))
        else:
            summary.update(
                Text(
                    f"No examples in {message.project.name} yet. From a shell:\n"
                    f"  tunesmith examples import {message.project.name} FILE"
                )
            )
        self._show_table(message.examples)

    def _show_table(self, examples: Sequence[Example]) -> None:
        table = self.query_one(ExamplesTable)
        table.show_examples(examples)
        table.display = bool(examples)
        if examples:
            table.focus()
        else:
            self.query_one(ExamplePreview).example = None

    @on(DataTable.RowHighlighted, "#dataset-examples")
    def _preview_example(self, event: DataTable.RowHighlighted) -> None:
        self.query_one(ExamplePreview).example = self.query_one(ExamplesTable).example_at(
            event.cursor_row
        )
