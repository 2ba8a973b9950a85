"""The import dialog: a file (or ``save_to_disk`` folder) of examples into the current project."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static
from textual.worker import Worker

from store.errors import TunesmithError
from store.examples import AddResult, SplitMode, add_examples
from store.imports import RejectedRow, read_examples
from store.projects import Project
from tui.screens.area import forward_worker_state
from tui.services import services
from tui.text import plain

if TYPE_CHECKING:
    from textual.app import ComposeResult

SPLIT_MODES: tuple[tuple[SplitMode, str], ...] = (
    ("auto", "auto: a row's own split, else ~15% held out for eval"),
    ("train", "all train"),
    ("eval", "all eval"),
)
"""The split choices, as the CLI's ``--split`` takes them, with what each does."""

SHOWN_REJECTIONS = 50
"""Rejected rows listed in the dialog; the rest are counted."""


@dataclass(frozen=True)
class ImportOutcome:
    """What an import did: the file, the rows added and skipped, and the rows refused."""

    path: Path
    added: AddResult
    rejected: tuple[RejectedRow, ...]

    def summary(self) -> str:
        """One line, e.g. ``Imported 12 from a.jsonl (10 train, 2 eval); 3 already there.``."""
        line = f"Imported {self.added.added} from {self.path.name}"
        line += f" ({self.added.train} train, {self.added.eval} eval)"
        if self.added.duplicates:
            line += f"; {self.added.duplicates} already there"
        if self.rejected:
            line += f"; {rows(len(self.rejected))} refused"
        return line + "."


class PathSuggester(Suggester):
    """Completes the last part of a typed path from what is on disk."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        typed = Path(value).expanduser()
        folder, stem = (typed, "") if value.endswith("/") else (typed.parent, typed.name)
        try:
            names = sorted(entry.name for entry in folder.iterdir())
        except OSError:
            return None
        for name in names:
            if name.startswith(stem) and name != stem and not name.startswith("."):
                return value + name[len(stem) :]
        return None


class PathInput(Input):
    """A path box where Tab takes the suggested completion, and moves on when there is none."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "complete", "Complete", show=False),
    ]

    def action_complete(self) -> None:
        """Take the suggested completion, or go to the next control."""
        if self._suggestion and self.cursor_at_end:
            self.value = self._suggestion
            self.cursor_position = len(self.value)
        else:
            self.screen.focus_next()


class ImportFileScreen(ModalScreen[ImportOutcome | None]):
    """Ask for a path and a split, import, and list any refused rows before closing."""

    CSS_PATH = "import_file.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
    ]

    class ImportFinished(Message):
        """The file was read and its valid rows stored."""

        def __init__(self, outcome: ImportOutcome) -> None:
            super().__init__()
            self.outcome = outcome
            """What the import did."""

    def __init__(self, project: Project, start_folder: Path | None = None) -> None:
        super().__init__()
        self.project = project
        """The project the rows go into."""
        self.start_folder = start_folder or Path.cwd()
        """Where a relative path is read from."""
        self._outcome: ImportOutcome | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="import-dialog") as dialog:
            dialog.border_title = f"Import into {self.project.name}"
            dialog.border_subtitle = "Enter import · esc close"
            yield Label(
                "File: .jsonl, .json, .csv, .tsv or a save_to_disk folder (tab completes)",
                id="import-path-label",
                markup=False,
            )
            yield PathInput(
                placeholder="e.g. examples/support_emails.jsonl",
                id="import-path",
                suggester=PathSuggester(),
            )
            with RadioSet(id="import-split"):
                for index, (_, label) in enumerate(SPLIT_MODES):
                    yield RadioButton(label, value=index == 0)
            with VerticalScroll(id="import-result-box"):
                yield Static(id="import-result", markup=False)
            with Horizontal(id="import-buttons"):
                yield Button("Import", variant="primary", id="import-go", compact=True)
                yield Button("Close", id="import-close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#import-path", Input).focus()

    @on(Input.Submitted, "#import-path")
    @on(Button.Pressed, "#import-go")
    def _import_requested(self) -> None:
        typed = self.query_one("#import-path", Input).value.strip()
        result = self.query_one("#import-result", Static)
        if not typed:
            result.update("Type the path of a file first.")
            result.set_class(True, "-error")
            return
        path = Path(typed).expanduser()
        if not path.is_absolute():
            path = self.start_folder / path
        result.update(Text.assemble("Reading ", plain(str(path)), "…"))
        result.set_class(False, "-error")
        self._import(path, self._split_mode())

    def _split_mode(self) -> SplitMode:
        index = self.query_one("#import-split", RadioSet).pressed_index
        return SPLIT_MODES[max(index, 0)][0]

    @work(thread=True, exclusive=True, exit_on_error=False, group="import")
    def _import(self, path: Path, split_mode: SplitMode) -> None:
        parsed = read_examples(path)
        with services(self).database() as database:
            added = add_examples(
                database, self.project.id, parsed.examples, source="imported", split_mode=split_mode
            )
        self.post_message(self.ImportFinished(ImportOutcome(path, added, tuple(parsed.rejected))))

    @on(ImportFinished)
    def _import_finished(self, message: ImportFinished) -> None:
        outcome = message.outcome
        if not outcome.rejected:
            self.dismiss(outcome)
            return
        self._outcome = outcome
        self.query_one("#import-result", Static).update(rejection_report(outcome.rejected))
        self.query_one("#import-result-box").set_class(True, "-shown")
        self.query_one("#import-path-label", Label).update(plain(outcome.summary()))
        self.query_one("#import-close", Button).focus()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        error = event.worker.error
        if isinstance(error, TunesmithError):
            # A bad path or file is said here, where the person is typing, not in a toast.
            result = self.query_one("#import-result", Static)
            result.update(plain(f"Not imported: {error.message}"))
            result.set_class(True, "-error")
        else:
            forward_worker_state(self, event)

    @on(Button.Pressed, "#import-close")
    def action_close(self) -> None:
        """Close the dialog (after an import, with what it did)."""
        self.dismiss(self._outcome)


def rows(count: int) -> str:
    """``1 row`` or ``3 rows``."""
    return f"{count} row" if count == 1 else f"{count} rows"


def rejection_report(rejected: Sequence[RejectedRow]) -> Text:
    """The refused rows, one ``FILE:LINE: reason`` each, the first fifty of them."""
    lines = [Text(f"{rows(len(rejected))} refused (the others were imported):", style="bold")]
    lines += [plain(str(row)) for row in rejected[:SHOWN_REJECTIONS]]
    if len(rejected) > SHOWN_REJECTIONS:
        lines.append(Text(f"… and {len(rejected) - SHOWN_REJECTIONS} more"))
    return Text("\n").join(lines)
