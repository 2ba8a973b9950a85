"""The Dataset area: review the current project's examples, edit them, import more, and label
the rows that came without an answer (the labelling queue, in place of the table).

A project may hold a million examples: the area reads counts and a window of rows at a time
(``store.example_pages``), and its checks over the whole project run apart, on a connection
of their own, so the first rows show at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static
from textual.worker import Worker, WorkerState, get_current_worker

from store.database import open_database
from store.errors import TunesmithError, one_line_reason
from store.example_edits import (
    ExampleUpdate,
    edit_example,
    remove_examples,
    restore_examples,
    update_examples,
)
from store.example_pages import (
    ExampleCounts,
    ExampleOrder,
    ExampleView,
    ExampleWindow,
    duplicate_count,
    example_counts,
    example_window,
    examples_by_id,
    fill_prompt_keys,
    filter_words,
    sample_examples,
    shared_prompts,
    unanswered_page,
)
from store.examples import ChatMessage, Example, count_examples, give_answer
from store.projects import Project, get_project_by_id
from store.runs import latest_completed_run
from store.vocabulary import ExampleStatus
from trainer.control.labelling import LabellingJob, start_labelling
from tui.dataset_checks import (
    NO_CHECKS,
    SAMPLE_ROWS,
    DatasetChecks,
    ProjectChecks,
    TokenCounters,
    check_project,
    check_rows,
    long_chars,
    read_labels,
)
from tui.dataset_events import ExamplesChanged, ExamplesLoaded, ProjectChecked, ProposalsMade
from tui.dataset_review import (
    UNDO_DEPTH,
    WINDOW_ROWS,
    Cursor,
    UndoStep,
    describe,
    next_order,
    window_offset,
)
from tui.dialogs.edit_example import EditedExample, EditExampleScreen
from tui.dialogs.import_file import ImportFileScreen, ImportOutcome
from tui.labelling_queue import QUEUE_ROWS, LabelQueue
from tui.screens.area import AreaScreen
from tui.services import services
from tui.widgets.dataset.example_preview import ExamplePreview
from tui.widgets.dataset.examples_table import ExamplesTable
from tui.widgets.dataset.label_queue import LabelQueuePanel
from tui.widgets.dataset.summary import Showing, summary_text

if TYPE_CHECKING:
    import sqlite_utils

Change = Callable[["sqlite_utils.Database", list[Example]], tuple[str, list[Example]]]
"""A write to some examples, handed them as they are now: it returns what it did (a verb for
``describe``) and the examples it changed, as they were before, for the undo."""

NO_WINDOW = ExampleWindow(0, (), 0)
"""The window of a project not read yet."""

TABLE_ACTIONS = frozenset(
    (
        "approve",
        "reject",
        "select",
        "edit",
        "toggle_split",
        "delete",
        "filter",
        "sort",
        "import_file",
    )
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
        # Not in the footer either: the summary names a chosen order, with its key.
        Binding(
            "o",
            "sort",
            "Sort",
            show=False,
            tooltip="Order the rows: oldest, newest, last changed or longest first",
        ),
        Binding("i", "import_file", "Import", tooltip="Import examples from a file"),
        Binding("escape", "clear", "Clear", show=False),
        Binding("ctrl+r", "reload", "Reload", show=False, tooltip="Read the examples again"),
    ]

    counts: reactive[ExampleCounts | None] = reactive(None, always_update=True)
    """The project's live examples counted, as last read; None before the first read."""

    window: reactive[ExampleWindow] = reactive(NO_WINDOW, always_update=True)
    """The rows of the view the table holds, as last read."""

    checks: reactive[DatasetChecks] = reactive(NO_CHECKS, always_update=True)
    """Token lengths, shared prompts and long rows of the rows in ``window``."""

    project_checks: reactive[ProjectChecks | None] = reactive(None, always_update=True)
    """What the checks found over the whole project (shared prompts, lengths, the shared
    start, the labels); None until they ended once."""

    checking: reactive[str] = reactive("")
    """What the checks over the project are doing, while they run."""

    selected: reactive[frozenset[int]] = reactive(frozenset())
    """Ids of the examples selected for a bulk action."""

    filter_text: reactive[str] = reactive("")
    """The words every shown example must contain; empty shows all."""

    order: reactive[ExampleOrder] = reactive("oldest")
    """The order of the rows shown."""

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
        # Where the cursor goes once the read asked for last is shown: a read asked for
        # meanwhile (a change while a window is read) must not put it back where it was.
        self._wanted: Cursor | None = None
        self._wanted_offset = 0
        # One read and one check at a time: one asked for meanwhile waits for it and then
        # runs once, with what is wanted by then (a worker is never cancelled under way).
        self._reading = False
        self._read_again = False
        self._checking_project = False
        self._check_again = False
        self._checks_wanted = False

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
        self.set_reactive(DatasetScreen.filter_text, "")
        self.set_reactive(DatasetScreen.order, "oldest")
        self.load_error = None
        self.counts = None
        self.window = NO_WINDOW
        self.project_checks = None
        self.checking = ""
        self._show()
        if project is not None:
            self.query_one("#dataset-summary", Static).update("Reading examples…")
            self._read(Cursor(0), offset=0)
            # The checks over the whole project start once the first rows are shown: on a
            # million rows they would slow the first read down.
            self._checks_wanted = True

    def on_screen_resume(self) -> None:
        # The Chat area (and the Compare area's fixes) add examples while this one is hidden.
        if self.project is not None:
            self._read()
            self._check()

    def _read(self, cursor: Cursor | None = None, *, offset: int | None = None) -> None:
        """Read the counts and a window of the view again: from ``offset``, the cursor on
        ``cursor``; by default where the table is (or was sent last, while that is read)."""
        if cursor is not None:
            self._wanted = cursor
            self._wanted_offset = offset if offset is not None else self._wanted_offset
        elif offset is not None and self._wanted is not None:
            self._wanted_offset = offset
        if self._reading:
            self._read_again = True
        else:
            self._start_read()

    def _start_read(self) -> None:
        if self.project is None:
            return
        table = self.query_one(ExamplesTable)
        cursor = self._wanted or table.cursor_here()
        offset = self._wanted_offset if self._wanted is not None else table.window_start
        self._reading = True
        self._read_again = False
        self._load_examples(
            self.project,
            filter_words(self.filter_text),
            self.order,
            offset,
            cursor,
            self.project_checks,
        )

    def _check(self) -> None:
        """Run the checks over the whole project again (after the one under way, if any)."""
        if self._checking_project:
            self._check_again = True
        elif self.project is not None:
            self._checking_project = True
            self._check_again = False
            self._check_project(self.project)

    @work(thread=True, exit_on_error=False, group="dataset-examples")
    def _load_examples(
        self,
        project: Project,
        words: tuple[str, ...],
        order: ExampleOrder,
        offset: int,
        cursor: Cursor,
        checked: ProjectChecks | None,
    ) -> None:
        counter = self._counters.for_model(project.base_model)
        view = ExampleView(words, order, long_chars(checked, counter.context))
        with services(self).database() as database:
            counts = example_counts(database, project.id)
            every_row = counts.total if not view.words else None
            window = example_window(
                database, project.id, view, offset, WINDOW_ROWS, matching=every_row
            )
            shared = shared_prompts(database, [row.id for row in window.rows])
            unanswered = unanswered_page(database, project.id, QUEUE_ROWS)
        checks = check_rows(window.rows, counter, checked, shared)
        self.post_message(
            ExamplesLoaded(project, counts, view, window, checks, unanswered, cursor, checked)
        )

    @work(thread=True, exit_on_error=False, group="dataset-checks")
    def _check_project(self, project: Project) -> None:
        worker = get_current_worker()
        counter = self._counters.for_model(project.base_model)
        # A connection of its own: keying a million prompts must not hold the shared one, which
        # the table reads its windows through.
        database = open_database(services(self).db_path)
        try:
            current = get_project_by_id(database, project.id)
            for done, missing in fill_prompt_keys(database, project.id):
                if worker.is_cancelled:
                    return
                line = f"finding shared prompts {done * 100 // missing}%…"
                self.post_message(ProjectChecked(project, line=line))
            if worker.is_cancelled:
                return
            duplicates = duplicate_count(database, project.id)
            total = count_examples(database, project.id)
            sample = sample_examples(database, project.id, SAMPLE_ROWS)
            labels = read_labels(database, current)
        finally:
            database.close()
        checks = check_project(sample, counter, duplicates=duplicates, total=total, labels=labels)
        self.post_message(ProjectChecked(project, checks=checks))

    @on(ExamplesLoaded)
    def _examples_loaded(self, message: ExamplesLoaded) -> None:
        if self.project is None or message.project.id != self.project.id:
            return
        if message.view.words != filter_words(self.filter_text) or message.view.order != self.order:
            # Read for a filter or an order since changed: the read for the new one is on its way.
            return
        if message.cursor is self._wanted:
            self._wanted = None
        self.load_error = None
        self.counts = message.counts
        self.checks = message.checks
        self.window = message.window
        self.queue = self.queue.reloaded(message.unanswered)
        self._show(message.cursor)
        if self._checks_wanted:
            self._checks_wanted = False
            self._check()
        if message.checked is not self.project_checks:
            # The project's checks ended while these rows were read: flag them by those.
            self._read()

    @on(ProjectChecked)
    def _project_checked(self, message: ProjectChecked) -> None:
        if self.project is None or message.project.id != self.project.id:
            return
        if message.checks is None:
            self.checking = message.line
            return
        self.checking = ""
        self.project_checks = message.checks
        self.queue = self.queue.with_labels(message.checks.labels)
        if self.window.rows:
            # The rows shown are measured against the project's median, and lose its shared
            # start; rows still being read are read again once they come.
            self._read()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        finished = event.state not in (WorkerState.PENDING, WorkerState.RUNNING)
        if finished and event.worker.group == "dataset-examples":
            if event.state is WorkerState.ERROR:
                error = event.worker.error
                self.load_error = one_line_reason(error) if error is not None else None
            self._reading = False
            if self._read_again:
                self._start_read()
        if finished and event.worker.group == "dataset-checks":
            self._checking_project = False
            self.checking = ""
            if self._check_again:
                self._check()
        if finished and event.worker in self._label_writes:
            # The app says why a label was refused; the row goes back into the queue.
            example_id = self._label_writes.pop(event.worker)
            if event.state is not WorkerState.SUCCESS:
                self.queue = self.queue.taken_back([example_id])

    # Showing

    def on_mount(self) -> None:
        self._show()

    def watch_filter_text(self) -> None:
        self._read_from_start()

    def watch_order(self) -> None:
        self._read_from_start()

    def _read_from_start(self) -> None:
        """Read the first window of a new filter or order, the cursor staying on its example
        when that is in it."""
        self._read(Cursor(0, self.query_one(ExamplesTable).cursor_here().example_id), offset=0)

    def watch_load_error(self) -> None:
        self._show_summary()

    def watch_checking(self) -> None:
        self._show_summary()

    def watch_selected(self, selected: frozenset[int]) -> None:
        self.query_one(ExamplesTable).mark_selected(selected)
        self._show_summary()

    def _show(self, cursor: Cursor | None = None) -> None:
        table = self.query_one(ExamplesTable)
        had_focus = table.has_focus
        table.show_window(self.window, self.checks, self.selected, cursor)
        shown = bool(self.window.rows)
        table.display = shown
        if shown and (had_focus or self.focused is None):
            table.focus()
        self._show_summary()
        self._preview(table.example_at(table.cursor_row) if shown else None)
        self.refresh_bindings()

    def _show_summary(self) -> None:
        summary = self.query_one("#dataset-summary", Static)
        summary.set_class(self.load_error is not None, "-error")
        if self.project is not None and self.counts is None and self.load_error is None:
            return
        table = self.query_one(ExamplesTable)
        showing = Showing(
            matching=self.window.matching,
            position=table.window_start + table.cursor_row,
            window_rows=len(self.window.rows),
            selected=len(self.selected),
            filter_text=self.filter_text,
            order=self.order,
        )
        summary.update(
            summary_text(
                self.project,
                self.counts,
                self.project_checks,
                showing,
                load_error=self.load_error,
                checking=self.checking,
            )
        )

    def _preview(self, example: Example | None) -> None:
        preview = self.query_one(ExamplePreview)
        preview.check = self.checks.by_id.get(example.id) if example is not None else None
        preview.example = example

    @on(DataTable.RowHighlighted, "#dataset-examples")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._preview(self.query_one(ExamplesTable).example_at(event.cursor_row))
        if self.window.matching > len(self.window.rows):
            # The summary says which row of a long list the cursor is on.
            self._show_summary()

    @on(ExamplesTable.WindowWanted)
    def _window_wanted(self, message: ExamplesTable.WindowWanted) -> None:
        self._read(Cursor(message.position), offset=window_offset(message.position))

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
        if action in ("filter", "sort"):
            return self.counts is not None and self.counts.total > 0
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

    def _targets(self) -> list[int]:
        """The ids of the selected examples, else of the highlighted one."""
        if self.selected:
            return sorted(self.selected)
        highlighted = self._highlighted()
        return [highlighted.id] if highlighted is not None else []

    def _set_status(self, status: ExampleStatus, verb: str) -> None:
        ids = self._targets()
        bulk = bool(self.selected)
        if not bulk:
            self.query_one(ExamplesTable).action_cursor_down()
        if not ids:
            return

        def change(db: sqlite_utils.Database, now: list[Example]) -> tuple[str, list[Example]]:
            targets = [example for example in now if example.status != status]
            if targets:
                update_examples(db, [ExampleUpdate(e.id, status=status) for e in targets])
            return verb, targets

        self._write(ids, change)
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
        ids = self._targets()
        if not ids:
            return

        def change(db: sqlite_utils.Database, now: list[Example]) -> tuple[str, list[Example]]:
            updates = [
                ExampleUpdate(e.id, split="eval" if e.split == "train" else "train") for e in now
            ]
            update_examples(db, updates)
            verb = f"moved to {updates[0].split}" if len(now) == 1 else "switched the split of"
            return verb, now

        self._write(ids, change)
        self.selected = frozenset()

    def action_delete(self) -> None:
        """Remove the selected examples, else the highlighted one; u brings them back."""
        ids = self._targets()
        if not ids:
            return

        def change(db: sqlite_utils.Database, now: list[Example]) -> tuple[str, list[Example]]:
            remove_examples(db, [example.id for example in now])
            return "removed", now

        self._write(ids, change)
        self.selected = frozenset()

    def action_select(self) -> None:
        """Select or unselect the highlighted example, then move to the next."""
        highlighted = self._highlighted()
        if highlighted is None:
            return
        self.selected = self.selected ^ {highlighted.id}
        self.query_one(ExamplesTable).action_cursor_down()

    def action_sort(self) -> None:
        """Order the rows by the next order: oldest, newest, last changed, longest first."""
        self.order = next_order(self.order)

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
            labels = read_labels(database, current)
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
        self._read()

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

            def change(db: sqlite_utils.Database, now: list[Example]) -> tuple[str, list[Example]]:
                edit_example(db, example.id, messages=edited.messages, tags=edited.tags)
                return "edited", now

            self._write([example.id], change)

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
            if outcome is not None and self.project is not None:
                self.notify(outcome.summary(), title="Import", markup=False)
                if self.project.id == project.id:
                    self._read()
                    self._check()

        self.app.push_screen(ImportFileScreen(project), imported)

    def action_reload(self) -> None:
        """Read the current project's examples again."""
        if self.project is not None:
            self._read()
            self._check()

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

        def change(db: sqlite_utils.Database, now: list[Example]) -> tuple[str, list[Example]]:
            give_answer(db, example.id, answer)
            return "labelled", now

        worker = self._apply_change(self.project, [example.id], change)
        self._label_writes[worker] = example.id

    # Writing

    def _write(self, example_ids: Sequence[int], change: Change) -> None:
        if self.project is not None:
            self._apply_change(self.project, example_ids, change)

    @work(thread=True, exit_on_error=False, group="dataset-change")
    def _apply_change(self, project: Project, example_ids: Sequence[int], change: Change) -> None:
        with services(self).database() as database:
            # As they are now, not as the table last read them: that is what an undo restores.
            verb, before = change(database, examples_by_id(database, example_ids))
        if before:
            description = describe(verb, before)
            step = UndoStep(description, tuple(before))
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
        self._read()
        self._check()
        self.queue = self.queue.taken_back(message.restored)
        if message.undo is None:
            self.notify(message.note, markup=False, timeout=3)
        else:
            self._undo = [*self._undo, message.undo][-UNDO_DEPTH:]
            if message.undo.description.startswith("removed"):
                self.notify(f"{message.note} Press u to undo.", markup=False, timeout=4)
        self.refresh_bindings()
