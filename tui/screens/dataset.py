"""The Dataset area: review the current project's examples, edit them, import more, and label
the rows that came without an answer (the labelling queue, in place of the table)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static
from textual.worker import Worker, WorkerState

from store.errors import TunesmithError, one_line_reason
from store.example_edits import (
    ExampleUpdate,
    edit_example,
    remove_examples,
    restore_examples,
    update_examples,
)
from store.examples import ChatMessage, Example, give_answer, list_examples, unlabeled_examples
from store.projects import Project, get_project_by_id
from store.runs import latest_completed_run
from store.vocabulary import ExampleStatus
from trainer.control.labelling import LabellingJob, start_labelling
from trainer.control.labels import project_labels
from tui.dataset_checks import NO_CHECKS, DatasetChecks, TokenCounters, check_examples
from tui.dataset_events import ExamplesChanged, ExamplesLoaded, ProposalsMade
from tui.dataset_review import UNDO_DEPTH, UndoStep, describe, matches
from tui.dialogs.edit_example import EditedExample, EditExampleScreen
from tui.dialogs.import_file import ImportFileScreen, ImportOutcome
from tui.labelling_queue import LabelQueue
from tui.screens.area import AreaScreen
from tui.services import services
from tui.widgets.dataset.example_preview import ExamplePreview
from tui.widgets.dataset.examples_table import ExamplesTable
from tui.widgets.dataset.label_queue import LabelQueuePanel
from tui.widgets.dataset.summary import summary_text

if TYPE_CHECKING:
    import sqlite_utils

TABLE_ACTIONS = frozenset(
    ("approve", "reject", "select", "edit", "toggle_split", "delete", "filter", "import_file")
)
"""The actions on the table's rows, which the labelling queue's keys stand in for."""


class DatasetScreen(AreaScreen):
    """The examples of the current project: review, edit, select, filter, import, label, undo."""

    AREA: ClassVar[str] = "dataset"
    CSS_PATH = "dataset.tcss"
    AUTO_FOCUS = "#dataset-examples"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", tooltip="Approve the highlighted or selected examples"),
        Binding("r", "reject", "Reject", tooltip="Reject the highlighted or selected examples"),
        Binding("l", "label", "Label", tooltip="Label the rows without an answer, one by one"),
        # Not in the footer (it is full at 80 columns): the summary and the help name it.
        Binding(
            "g",
            "propose",
            "Propose",
            show=False,
            tooltip="Have the latest run (else the base model) propose answers; g again stops",
        ),
        # In the help, and the summary counts a selection: the footer keeps its room at 80
        # columns for the keys that act on the highlighted row.
        Binding(
            "space", "select", "Select", show=False, tooltip="Select or unselect for a bulk action"
        ),
        Binding("e", "edit", "Edit", tooltip="Edit the highlighted example's turns and tags"),
        Binding("t", "toggle_split", "Train/eval", tooltip="Move between train and eval"),
        Binding("d", "delete", "Delete", tooltip="Remove the highlighted or selected examples"),
        Binding("u", "undo", "Undo", tooltip="Take back the last change"),
        Binding("slash", "filter", "Filter", key_display="/", tooltip="Show matching rows only"),
        Binding("i", "import_file", "Import", tooltip="Import examples from a file"),
        Binding("escape", "clear", "Clear", show=False),
        Binding("ctrl+r", "reload", "Reload", show=False, tooltip="Read the examples again"),
    ]

    all_examples: reactive[tuple[Example, ...]] = reactive((), always_update=True)
    """The project's examples as last read from the store."""

    checks: reactive[DatasetChecks] = reactive(NO_CHECKS, always_update=True)
    """Token lengths, duplicate prompts and long rows of ``all_examples``."""

    selected: reactive[frozenset[int]] = reactive(frozenset())
    """Ids of the examples selected for a bulk action."""

    filter_text: reactive[str] = reactive("")
    """The words every shown example must contain; empty shows all."""

    load_error: reactive[str | None] = reactive(None)
    """Why the examples could not be read, if they could not."""

    queue: reactive[LabelQueue] = reactive(LabelQueue, always_update=True)
    """The rows without an answer, least confident first, and what this session labelled."""

    labelling: reactive[bool] = reactive(False)
    """Whether the labelling queue is shown in place of the table."""

    def __init__(self, database: sqlite_utils.Database) -> None:
        super().__init__(database)
        self._undo: list[UndoStep] = []
        self._counters = TokenCounters()
        self._label_writes: dict[Worker[None], int] = {}
        self._proposing: LabellingJob | None = None
        self._proposing_lock = threading.Lock()

    def compose_area(self) -> Iterable[Widget]:
        yield Static(id="dataset-summary", markup=False)
        yield Static(id="dataset-work", markup=False)
        yield Vertical(
            Input(
                placeholder="filter: words in the text, tags, status, split or flag (esc clears)",
                id="dataset-filter",
                compact=True,
            ),
            ExamplesTable(id="dataset-examples"),
            ExamplePreview(id="dataset-preview"),
            id="dataset-review",
        )
        yield LabelQueuePanel(id="dataset-queue").data_bind(DatasetScreen.queue)

    # Reading

    def watch_project(self, project: Project | None) -> None:
        self._stop_proposing()
        self._undo.clear()
        self._label_writes.clear()
        self.labelling = False
        self.queue = LabelQueue()
        self.selected = frozenset()
        self.filter_text = ""
        self.load_error = None
        self.all_examples = ()
        self.refresh_bindings()
        if project is not None:
            self.query_one("#dataset-summary", Static).update("Reading examples…")
            self._load_examples(project)

    def on_screen_resume(self) -> None:
        # The Chat area (and the Compare area's fixes) add examples while this one is hidden.
        if self.project is not None:
            self._load_examples(self.project)

    @work(thread=True, exclusive=True, exit_on_error=False, group="dataset-examples")
    def _load_examples(self, project: Project) -> None:
        with services(self).database() as database:
            examples = list_examples(database, project.id)
            unlabeled = unlabeled_examples(database, project.id)
            # Read afresh: the Chat area may have named the task's labels meanwhile.
            labels = project_labels(database, get_project_by_id(database, project.id))
        checks = check_examples(examples, self._counters.for_model(project.base_model))
        self.post_message(ExamplesLoaded(project, examples, checks, unlabeled, labels))

    @on(ExamplesLoaded)
    def _examples_loaded(self, message: ExamplesLoaded) -> None:
        if self.project is None or message.project.id != self.project.id:
            return
        self.load_error = None
        live = {example.id for example in message.examples}
        self.selected = self.selected & live
        self.checks = message.checks
        self.all_examples = message.examples
        self.queue = self.queue.reloaded(message.unlabeled, message.labels)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.group == "dataset-examples":
            error = event.worker.error
            self.load_error = one_line_reason(error) if error is not None else None
        finished = event.state not in (WorkerState.PENDING, WorkerState.RUNNING)
        if finished and event.worker in self._label_writes:
            # The app says why a label was refused; the row goes back into the queue.
            example_id = self._label_writes.pop(event.worker)
            if event.state is not WorkerState.SUCCESS:
                self.queue = self.queue.taken_back([example_id])

    # Showing

    def _shown_examples(self) -> list[Example]:
        terms = self.filter_text.casefold().split()
        if not terms:
            return list(self.all_examples)
        flags = self.checks.by_id
        return [
            example
            for example in self.all_examples
            if matches(example, flags[example.id].flag if example.id in flags else "", terms)
        ]

    def watch_all_examples(self) -> None:
        self._show()

    def watch_filter_text(self) -> None:
        self._show()

    def watch_load_error(self) -> None:
        self._show_summary(len(self._shown_examples()))

    def watch_selected(self, selected: frozenset[int]) -> None:
        self.query_one(ExamplesTable).mark_selected(selected)
        self._show_summary(len(self._shown_examples()))

    def _show(self) -> None:
        shown = self._shown_examples()
        table = self.query_one(ExamplesTable)
        had_focus = table.has_focus
        table.show_examples(shown, self.checks, self.selected)
        table.display = bool(shown)
        if shown and (had_focus or self.focused is None):
            table.focus()
        self._show_summary(len(shown))
        self._preview(table.example_at(table.cursor_row) if shown else None)
        self.refresh_bindings()

    def _show_summary(self, shown: int) -> None:
        summary = self.query_one("#dataset-summary", Static)
        summary.set_class(self.load_error is not None, "-error")
        summary.update(
            summary_text(
                self.project,
                self.all_examples,
                self.checks,
                load_error=self.load_error,
                shown=shown,
                selected=len(self.selected),
                filter_text=self.filter_text,
            )
        )

    def _preview(self, example: Example | None) -> None:
        preview = self.query_one(ExamplePreview)
        preview.check = self.checks.by_id.get(example.id) if example is not None else None
        preview.example = example

    @on(DataTable.RowHighlighted, "#dataset-examples")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._preview(self.query_one(ExamplesTable).example_at(event.cursor_row))

    # Acting

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.labelling and action in TABLE_ACTIONS | {"clear", "label"}:
            return False
        if action == "label":
            return self.queue.left > 0
        if action == "clear":
            return bool(self.selected) or bool(self.filter_text) or self._filter_shown()
        if action in ("approve", "reject", "select", "edit", "toggle_split", "delete"):
            return self._highlighted() is not None or (bool(self.selected) and action != "edit")
        if action == "undo":
            return bool(self._undo)
        if action in ("filter",):
            return bool(self.all_examples)
        if action in ("import_file", "reload"):
            return self.project is not None
        return True

    def _filter_shown(self) -> bool:
        return self.query_one("#dataset-filter", Input).has_class("-shown")

    def _highlighted(self) -> Example | None:
        table = self.query_one(ExamplesTable)
        if not table.display or self.labelling:
            return None
        return table.example_at(table.cursor_row)

    def _targets(self) -> list[Example]:
        """The selected examples, else the highlighted one."""
        if self.selected:
            return [example for example in self.all_examples if example.id in self.selected]
        highlighted = self._highlighted()
        return [highlighted] if highlighted is not None else []

    def _set_status(self, status: ExampleStatus, verb: str) -> None:
        targets = [example for example in self._targets() if example.status != status]
        bulk = bool(self.selected)
        if not bulk:
            self.query_one(ExamplesTable).action_cursor_down()
        if not targets:
            return
        updates = [ExampleUpdate(example.id, status=status) for example in targets]
        self._write(describe(verb, targets), targets, lambda db: update_examples(db, updates))
        if bulk:
            self.selected = frozenset()

    def action_approve(self) -> None:
        """Approve the selected examples, else the highlighted one (and move to the next)."""
        self._set_status("approved", "approved")

    def action_reject(self) -> None:
        """Reject the selected examples, else the highlighted one (and move to the next)."""
        self._set_status("rejected", "rejected")

    def action_toggle_split(self) -> None:
        """Move the selected examples, else the highlighted one, between train and eval."""
        targets = self._targets()
        if not targets:
            return
        updates = [
            ExampleUpdate(e.id, split="eval" if e.split == "train" else "train") for e in targets
        ]
        verb = f"moved to {updates[0].split}" if len(targets) == 1 else "switched the split of"
        self._write(describe(verb, targets), targets, lambda db: update_examples(db, updates))
        self.selected = frozenset()

    def action_delete(self) -> None:
        """Remove the selected examples, else the highlighted one; u brings them back."""
        targets = self._targets()
        if not targets:
            return
        ids = [example.id for example in targets]
        self._write(describe("removed", targets), targets, lambda db: remove_examples(db, ids))
        self.selected = frozenset()

    def action_select(self) -> None:
        """Select or unselect the highlighted example, then move to the next."""
        highlighted = self._highlighted()
        if highlighted is None:
            return
        self.selected = self.selected ^ {highlighted.id}
        self.query_one(ExamplesTable).action_cursor_down()

    # Proposing answers

    def action_propose(self) -> None:
        """Start the labeller on the rows without an answer; pressed again, stop it."""
        if self.project is None:
            return
        if self._proposing is not None:
            self._stop_proposing()
            return
        if not self.queue.waiting:
            self.notify("Every row has an answer: nothing to propose.", markup=False)
            return
        self._show_work("Starting the labeller (g again stops it)…")
        self._propose(self.project)

    @work(thread=True, exclusive=True, exit_on_error=False, group="dataset-propose")
    def _propose(self, project: Project) -> None:
        app_services = services(self)
        with app_services.database() as database:
            current = get_project_by_id(database, project.id)
            labels = project_labels(database, current)
            run = latest_completed_run(database, project.id)
        job = start_labelling(
            app_services.db_path,
            current.name,
            run_id=run.id if run is not None else None,
            labels=labels,
        )
        with self._proposing_lock:
            self._proposing = job
        who = f"run {run.id}" if run is not None else "the base model, few-shot"
        try:
            with job:
                for line in job.lines():
                    self.post_message(ProposalsMade(project, f"{who}: {line} (g stops)"))
                job.wait()
            ended = "Proposals done: the queue (l) is least confident first."
        except TunesmithError as error:
            ended = error.message
        finally:
            with self._proposing_lock:
                self._proposing = None
        self.post_message(ProposalsMade(project, ended, done=True))

    def _stop_proposing(self) -> None:
        with self._proposing_lock:
            job = self._proposing
        if job is not None:
            self._show_work("Stopping the labeller…")
            job.cancel()

    @on(ProposalsMade)
    def _proposals_made(self, message: ProposalsMade) -> None:
        if self.project is None or message.project.id != self.project.id:
            return
        if message.done:
            self._show_work("")
            self.notify(message.line, markup=False)
        else:
            self._show_work(message.line)
        # Each proposal is stored as it is made: read them, so the queue re-sorts.
        self._load_examples(self.project)

    def _show_work(self, text: str) -> None:
        line = self.query_one("#dataset-work", Static)
        line.update(text)
        line.display = bool(text)

    def on_unmount(self) -> None:
        self._stop_proposing()

    def action_clear(self) -> None:
        """Clear the filter (when typing in it), else the selection."""
        filter_box = self.query_one("#dataset-filter", Input)
        if filter_box.has_focus or (self._filter_shown() and not self.selected):
            filter_box.value = ""
            filter_box.remove_class("-shown")
            self.filter_text = ""
            self.query_one(ExamplesTable).focus()
        else:
            self.selected = frozenset()

    def action_filter(self) -> None:
        """Show the filter box and put the cursor in it."""
        filter_box = self.query_one("#dataset-filter", Input)
        filter_box.add_class("-shown")
        filter_box.focus()

    @on(Input.Changed, "#dataset-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()

    @on(Input.Submitted, "#dataset-filter")
    def _filter_submitted(self) -> None:
        table = self.query_one(ExamplesTable)
        if table.display:
            table.focus()

    def action_edit(self) -> None:
        """Edit the highlighted example in a dialog (a row without an answer gets one to write,
        its proposal to start from)."""
        example = self._highlighted()
        if example is None:
            return
        messages = example.messages
        if not example.answered:
            messages = (*messages, ChatMessage("assistant", example.proposed or ""))

        def save(edited: EditedExample | None) -> None:
            if edited is None or (edited.messages, edited.tags) == (example.messages, example.tags):
                return
            self._write(
                describe("edited", [example]),
                [example],
                lambda db: [
                    edit_example(db, example.id, messages=edited.messages, tags=edited.tags)
                ],
            )

        self.app.push_screen(
            EditExampleScreen(f"Edit example {example.id}", messages, example.tags), save
        )

    def action_undo(self) -> None:
        """Take back the last change (approve, reject, edit, split, removal)."""
        if not self._undo or self.project is None:
            return
        step = self._undo.pop()
        self.refresh_bindings()
        self._write_undo(self.project, step)

    def action_import_file(self) -> None:
        """Import examples from a file into the project."""
        if self.project is None:
            return
        project = self.project

        def imported(outcome: ImportOutcome | None) -> None:
            if outcome is not None:
                self.notify(outcome.summary(), title="Import", markup=False)
                self._load_examples(project)

        self.app.push_screen(ImportFileScreen(project), imported)

    def action_reload(self) -> None:
        """Read the current project's examples again."""
        if self.project is not None:
            self._load_examples(self.project)

    # Labelling

    def action_label(self) -> None:
        """Label the rows without an answer, least confident proposal first, in place of the
        table."""
        self.labelling = True

    def watch_labelling(self, labelling: bool) -> None:
        panel = self.query_one(LabelQueuePanel)
        leaving = panel.has_focus
        self.set_class(labelling, "-labelling")
        if labelling:
            panel.focus()
        elif leaving:
            self.query_one(ExamplesTable).focus()
        self.refresh_bindings()

    @on(LabelQueuePanel.Closed)
    def _queue_closed(self) -> None:
        self.labelling = False

    @on(LabelQueuePanel.Moved)
    def _queue_moved(self, message: LabelQueuePanel.Moved) -> None:
        self.queue = self.queue.moved(message.step)

    @on(LabelQueuePanel.AnswerChosen)
    def _answer_chosen(self, message: LabelQueuePanel.AnswerChosen) -> None:
        self._label(message.example, message.answer)

    def _label(self, example: Example, answer: str) -> None:
        """Make ``answer`` the row's approved answer; the queue moves on without waiting."""
        if self.project is None:
            return
        self.queue = self.queue.answered(example.id)
        worker = self._apply_change(
            self.project,
            describe("labelled", [example]),
            (example,),
            lambda db: give_answer(db, example.id, answer),
        )
        self._label_writes[worker] = example.id

    # Writing

    def _write(
        self,
        description: str,
        before: Collection[Example],
        write: Callable[[sqlite_utils.Database], object],
    ) -> None:
        if self.project is not None:
            self._apply_change(self.project, description, tuple(before), write)

    @work(thread=True, exit_on_error=False, group="dataset-change")
    def _apply_change(
        self,
        project: Project,
        description: str,
        before: tuple[Example, ...],
        write: Callable[[sqlite_utils.Database], object],
    ) -> None:
        with services(self).database() as database:
            write(database)
        step = UndoStep(description, before)
        self.post_message(ExamplesChanged(project, f"{description.capitalize()}.", step))

    @work(thread=True, exit_on_error=False, group="dataset-change")
    def _write_undo(self, project: Project, step: UndoStep) -> None:
        with services(self).database() as database:
            restore_examples(database, step.before)
        restored = [example.id for example in step.before]
        note = f"Undid: {step.description}."
        self.post_message(ExamplesChanged(project, note, None, restored))

    @on(ExamplesChanged)
    def _examples_changed(self, message: ExamplesChanged) -> None:
        if self.project is None or message.project.id != self.project.id:
            return
        self._load_examples(message.project)
        self.queue = self.queue.taken_back(message.restored)
        if message.undo is None:
            self.notify(message.note, markup=False, timeout=3)
        else:
            self._undo = [*self._undo, message.undo][-UNDO_DEPTH:]
            if message.undo.description.startswith("removed"):
                self.notify(f"{message.note} Press u to undo.", markup=False, timeout=4)
        self.refresh_bindings()
