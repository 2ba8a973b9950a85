"""The Compare area: base and tuned answers side by side, the held-out evaluation, blind A/B."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Select, Static
from textual.worker import Worker, WorkerState

from agent.work import Work
from store.errors import CancelledError, one_line_reason
from store.evals import (
    Evaluation,
    PromptVote,
    StoredEvalItem,
    add_prompt_vote,
    latest_evaluation,
    prompt_vote_counts,
    set_preference,
)
from store.evals import stored_evaluation_items as read_eval_items
from store.examples import NewExample, add_examples
from store.projects import Project
from store.runs import Run, list_runs
from store.vocabulary import Preference
from trainer.control.eval_report import report_lines
from trainer.control.jobs import evaluating_runs
from trainer.control.launch import BASE_MODEL_NAME, run_model_name
from tui.compare_answers import (
    BlindSides,
    FreeAnswer,
    blind_preference,
    vote_notice,
    with_preference,
)
from tui.compare_events import (
    EvaluationJudged,
    EvaluationRead,
    ExampleAdded,
    JudgingProgressed,
    PreferenceSaved,
    PromptVoteSaved,
    RunsRead,
)
from tui.compare_text import (
    ASK_HINT,
    eval_title,
    judged_notice,
    prompt_context,
    row_context,
    run_choices,
    run_summary,
)
from tui.dialogs.edit_example import EditedExample, tuned_answer_editor
from tui.screens.area import AreaScreen
from tui.services import services
from tui.streaming import AnswerStreamed, ServerStatusChanged, stream_to
from tui.widgets.compare.answers import AnswerPanes
from tui.widgets.compare.eval_table import SORTS, EvalTable, ShownItem, shown_items
from tui.widgets.compare.prompt_box import PromptBox

if TYPE_CHECKING:
    import sqlite_utils

EVALUATING_POLL_SECONDS = 1.0
"""How often the area reads again while the shown run evaluates itself."""
FINISHED_STATES = (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED)


class CompareScreen(AreaScreen):
    """Ask base and tuned the same prompt; read and vote on the chosen run's evaluation."""

    AREA: ClassVar[str] = "compare"
    CSS_PATH = "compare.tcss"
    AUTO_FOCUS = "#compare-items"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "ask", "Ask", tooltip="Type a prompt for both models"),
        Binding("v", "blind", "Blind A/B", tooltip="Hide which answer is which, and vote"),
        Binding("o", "sort", "Sort", tooltip="Sort the eval rows by where tuned and base differ"),
        Binding(
            "e",
            "few_shot",
            "Few-shot",
            tooltip="Set the base model's few-shot answer against tuned's, or its zero-shot one",
        ),
        Binding("f", "fix", "Fix → example", tooltip="Correct the tuned answer into an example"),
        Binding(
            "m",
            "report",
            "Report",
            tooltip="The whole evaluation: leads with intervals, per-label or per-field tables",
        ),
        Binding("a", "vote('a')", "A better", tooltip="Record that answer A is better"),
        Binding("b", "vote('b')", "B better", tooltip="Record that answer B is better"),
        Binding("equals_sign", "vote('tie')", "Tie", key_display="=", tooltip="Record a tie"),
        # j moves down the rows.
        Binding(
            "J",
            "judge",
            "Judge",
            tooltip="Grade every answer of the evaluation with the agent's model",
        ),
        Binding("escape", "stop_judging", "Stop judging", tooltip="Stop the judge; keep nothing"),
    ]

    runs: reactive[tuple[Run, ...]] = reactive(())
    """The project's completed runs, oldest first."""

    run_id: reactive[int | None] = reactive(None)
    """The run whose tuned model answers and whose evaluation is listed."""

    blind: reactive[bool] = reactive(False)
    """Blind A/B mode: answers are A and B, which is which hidden, and votes are recorded."""

    few_shot: reactive[bool] = reactive(False)
    """Whether an eval row's base pane shows the base model's few-shot answer, not its
    zero-shot one (blind votes stay between tuned and zero-shot base)."""

    sort: reactive[str] = reactive(SORTS[0])
    """The order of the eval rows (one of ``SORTS``)."""

    report: reactive[bool] = reactive(False)
    """Whether the lower part shows the evaluation's report instead of its rows."""

    def __init__(self, database: sqlite_utils.Database) -> None:
        super().__init__(database)
        self._evaluations: dict[int, Evaluation | None] = {}
        self._items: tuple[StoredEvalItem, ...] = ()
        self._typed_votes: dict[str, int] = {}
        self._free: FreeAnswer | None = None
        self._showing_free = False
        self._requests = 0
        self._blind_sides = BlindSides()
        self._read_once = False
        self._evaluating: frozenset[int] = frozenset()
        self._judging: Work | None = None
        """The judge at work on an evaluation, which esc cancels."""
        self._judged_run = 0
        """The run whose evaluation the judge is at work on."""
        self._judge_line = ""
        """What the judge last said it was doing."""

    def compose_area(self) -> Iterable[Widget]:
        with Horizontal(id="compare-top"):
            yield Select[int]([], prompt="no run", id="compare-run", compact=True)
            yield Static(id="compare-summary", markup=False)
        yield PromptBox(id="compare-prompt", placeholder="Ask both models something…")
        yield Static(ASK_HINT, id="compare-context", markup=False)
        yield AnswerPanes(id="compare-answers")
        with Vertical(id="compare-eval"):
            yield Static(id="compare-eval-title", markup=False)
            yield EvalTable(id="compare-items")
            with VerticalScroll(id="compare-report"):
                yield Static(id="compare-report-text", markup=False)

    def on_mount(self) -> None:
        self.watch(self.app, "compare_run_id", self._run_requested)
        self._show_panes()

    def _run_requested(self, run_id: int | None) -> None:
        if run_id is not None and any(run.id == run_id for run in self.runs):
            self.run_id = run_id
        elif run_id is not None and self.project is not None:
            self._read_runs(self.project)

    # Reading

    def watch_project(self, project: Project | None) -> None:
        self.runs = ()
        self._evaluations = {}
        self._items = ()
        self._free = None
        self._showing_free = False
        self._read_once = False
        self.run_id = None
        self._show_runs()
        if project is not None:
            self._read_runs(project)
        self._show_panes()
        self._show_items()

    def on_screen_resume(self) -> None:
        # A run may have completed while the person was in another area.
        if self.project is not None:
            self._read_runs(self.project)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-runs")
    def _read_runs(self, project: Project) -> None:
        with services(self).database() as database:
            runs = [run for run in list_runs(database, project.id) if run.status == "completed"]
            evaluations = {run.id: latest_evaluation(database, run.id) for run in runs}
        self.post_message(RunsRead(project, runs, evaluations, evaluating_runs(runs, evaluations)))

    @on(RunsRead)
    def _runs_read(self, message: RunsRead) -> None:
        if self.project is None or message.project.id != self.project.id:
            return
        self._read_once = True
        self._evaluations = message.evaluations
        self._evaluating = message.evaluating
        if message.evaluating:
            # Opened while a run evaluates itself: read again until its evaluation lands.
            self.set_timer(EVALUATING_POLL_SECONDS, lambda: self._read_again(message.project))
        self.runs = message.runs
        wanted = getattr(self.app, "compare_run_id", None)
        ids = [run.id for run in message.runs]
        shown = self.run_id
        if wanted in ids:
            self.run_id = wanted
        elif self.run_id not in ids:
            self.run_id = ids[-1] if ids else None
        evaluation = self._evaluations.get(shown) if shown is not None else None
        if self.run_id == shown and shown is not None and evaluation and not self._items:
            # An evaluation that landed since the last read: the run is the same one, so
            # watch_run_id, which reads a newly chosen run's rows, did not run.
            self._read_items(shown, evaluation.id)
        self._show_runs()
        self._show_items()
        self._show_panes()

    def _read_again(self, project: Project) -> None:
        if self.project is not None and self.project.id == project.id and self.is_active:
            self._read_runs(project)

    def watch_run_id(self, run_id: int | None) -> None:
        self._items = ()
        self._typed_votes = {}
        self._show_runs()
        evaluation = self._evaluations.get(run_id) if run_id is not None else None
        if evaluation is not None:
            self._read_items(run_id or 0, evaluation.id)
        self._show_summary()
        self._show_items()
        self.refresh_bindings()

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-eval")
    def _read_items(self, run_id: int, eval_id: int) -> None:
        with services(self).database() as database:
            items = read_eval_items(database, eval_id)
            typed = prompt_vote_counts(database, run_id)
        self.post_message(EvaluationRead(run_id, items, typed))

    @on(EvaluationRead)
    def _evaluation_read(self, message: EvaluationRead) -> None:
        if message.run_id != self.run_id:
            return
        self._items = message.items
        self._typed_votes = message.typed
        self._show_summary()
        self._show_items()
        self.refresh_bindings()

    @on(Select.Changed, "#compare-run")
    def _run_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, int):
            self.run_id = event.value

    # Showing

    def _show_runs(self) -> None:
        select = self.query_one("#compare-run", Select)
        options = run_choices(self.runs, self._evaluations)
        with select.prevent(Select.Changed):
            select.set_options(options)
            if self.run_id in [run.id for run in self.runs]:
                select.value = self.run_id
        select.display = bool(options)
        self._show_summary()

    def _show_summary(self) -> None:
        evaluation = self._evaluations.get(self.run_id) if self.run_id is not None else None
        line = run_summary(
            evaluation,
            self._items,
            self._typed_votes,
            project_chosen=self.project is not None,
            has_runs=bool(self.runs),
            read_once=self._read_once,
            evaluating=self.run_id in self._evaluating,
        )
        self.query_one("#compare-summary", Static).update(line)

    def _show_items(self) -> None:
        table = self.query_one(EvalTable)
        title = self.query_one("#compare-eval-title", Static)
        evaluation = self._evaluations.get(self.run_id) if self.run_id is not None else None
        report = self.query_one("#compare-report")
        report.display = self.report and evaluation is not None and not self.blind
        if report.display and evaluation is not None:
            title.update(f"Evaluation of run {self.run_id}; m shows its rows again")
            # Text: labels and field names come from the dataset.
            lines = report_lines(evaluation)
            self.query_one("#compare-report-text", Static).update(Text("\n".join(lines)))
            table.display = False
            return
        table.display = bool(self._items)
        shown = self.project is not None and bool(self.runs)
        title.update(
            f"Judging run {self._judged_run}: {self._judge_line} · esc stops"
            if self._judging is not None
            else eval_title(
                evaluation,
                shown=shown,
                blind=self.blind,
                sort=self.sort,
                evaluating=self.run_id in self._evaluating,
            )
        )
        if self._items:
            items = shown_items(self._items, evaluation, self.sort, self._blind_sides.tuned_is_a)
            table.show_items(items, blind=self.blind)
            if self.focused is None:
                table.focus()

    def _show_panes(self) -> None:
        panes = self.query_one(AnswerPanes)
        context = self.query_one("#compare-context", Static)
        item = self._shown_item()
        free = self._free
        if item is not None and not self._showing_free:
            panes.show_item(item, blind=self.blind, run_id=self.run_id, few_shot=self.few_shot)
            context.update(row_context(item))
            return
        panes.show_free(
            free, blind=self.blind, run_id=self.run_id, project_chosen=self.project is not None
        )
        context.update(prompt_context(free))

    def _shown_item(self) -> ShownItem | None:
        table = self.query_one(EvalTable)
        return table.item_at(table.cursor_row) if table.display else None

    def watch_blind(self) -> None:
        self._show_items()
        self._show_panes()
        self.refresh_bindings()

    def watch_few_shot(self) -> None:
        self._show_panes()

    def watch_sort(self) -> None:
        self._show_items()

    @on(DataTable.RowHighlighted, "#compare-items")
    def _item_highlighted(self) -> None:
        # Moving in the table shows its rows; until then the answers to a typed prompt stay.
        if self.query_one(EvalTable).has_focus:
            self._showing_free = False
        self._show_panes()

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()

    # Asking

    @on(PromptBox.Submitted)
    def _prompt_submitted(self, event: PromptBox.Submitted) -> None:
        if self.project is None:
            self.notify("Choose a project first (p).", markup=False)
            return
        self._requests += 1
        self._showing_free = True
        tuned_is_a = self._blind_sides.tuned_is_a(-self._requests)
        self._free = FreeAnswer(self._requests, event.prompt, tuned_is_a)
        self._show_panes()
        # The tuned answer first: it is the one being judged, and it usually stops sooner.
        models = {"tuned": run_model_name(self.run_id)} if self.run_id is not None else {}
        models["base"] = BASE_MODEL_NAME
        self._ask(self.project, models, event.prompt, self._requests)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-ask")
    def _ask(self, project: Project, models: dict[str, str], prompt: str, request: int) -> None:
        conversations = {side: [{"role": "user", "content": prompt}] for side in models}
        stream_to(self, project, models, conversations, request)

    @on(ServerStatusChanged)
    def _server_status(self, message: ServerStatusChanged) -> None:
        if self._free is not None and self._free.request == message.request:
            self._free.status = f"Starting the model server: {message.status}"
            self._show_panes()

    @on(AnswerStreamed)
    def _answer_streamed(self, message: AnswerStreamed) -> None:
        free = self._free
        if free is None or free.request != message.request:
            return
        free.streamed(message.side, message.text, done=message.done)
        if message.done:
            self.refresh_bindings()
        self._show_panes()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "compare-judge" and event.state in FINISHED_STATES:
            # Judged, stopped or failed (the app shows a failure): the judge is done.
            self._judging = None
            self._judge_line = ""
            self._show_items()
            self.refresh_bindings()
        free = self._free
        if event.state is WorkerState.ERROR and event.worker.group == "compare-ask" and free:
            if event.worker.error is not None:
                free.fail(one_line_reason(event.worker.error))
            self._show_panes()

    # Acting

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        prompt_focused = self.query_one(PromptBox).has_focus
        if action == "vote":
            # The vote goes to what the panes show: a typed prompt's answers, else the eval row.
            return self.blind and not prompt_focused and self._vote_target() is not None
        if action == "blind":
            return bool(self._items) and not prompt_focused
        if action == "few_shot":
            has_few_shot = any(stored.item.few_shot_output is not None for stored in self._items)
            return has_few_shot and not self.blind and not prompt_focused
        if action == "sort":
            return bool(self._items) and not self.blind and not prompt_focused
        if action == "report":
            has_evaluation = self.run_id is not None and bool(self._evaluations.get(self.run_id))
            return has_evaluation and not self.blind and not prompt_focused
        if action == "fix":
            return not self.blind and not prompt_focused and self._fixable() is not None
        if action == "judge":
            evaluation = self._evaluations.get(self.run_id) if self.run_id is not None else None
            unjudged = evaluation is not None and evaluation.judge is None
            return unjudged and self._judging is None and not self.blind and not prompt_focused
        if action == "stop_judging":
            return self._judging is not None
        return True

    def action_ask(self) -> None:
        """Put the cursor in the prompt box."""
        self.query_one(PromptBox).focus()

    def action_leave_prompt(self) -> None:
        """Move from the prompt box to the eval rows (or the next control)."""
        table = self.query_one(EvalTable)
        if table.display:
            table.focus()
        else:
            self.focus_next()

    def action_blind(self) -> None:
        """Switch blind A/B voting on or off."""
        self.blind = not self.blind
        if self.blind:
            self.query_one(EvalTable).focus()

    def action_few_shot(self) -> None:
        """Show the base model's few-shot answers in the base pane, or its zero-shot ones."""
        self.few_shot = not self.few_shot

    def action_report(self) -> None:
        """Show the whole evaluation instead of its rows, or the rows again."""
        self.report = not self.report
        self._show_items()
        target = self.query_one("#compare-report") if self.report else self.query_one(EvalTable)
        if target.display:
            target.focus()

    def action_sort(self) -> None:
        """Show the eval rows in the next order: as evaluated, tuned ahead, base ahead."""
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.query_one(EvalTable).move_cursor(row=0)
        self.notify(f"Eval rows: {self.sort}.", timeout=2, markup=False)

    def action_vote(self, choice: str) -> None:
        """Record which answer shown is better (a, b or tie): a typed prompt's, else the
        highlighted eval row's."""
        target = self._vote_target()
        if isinstance(target, ShownItem):
            preference = blind_preference(choice, tuned_is_a=target.tuned_is_a)
            self._save_preference(target.stored.id, preference)
        elif target is not None and self.project is not None and self.run_id is not None:
            vote = target.vote(self.project.id, self.run_id, choice)
            self.refresh_bindings()
            self._save_prompt_vote(vote)

    def _vote_target(self) -> FreeAnswer | ShownItem | None:
        """What a vote goes to: the typed prompt's answers once both are complete and not voted
        on yet, else the highlighted eval row."""
        if not self._showing_free:
            return self._shown_item()
        free = self._free
        return free if free is not None and free.votable(self.run_id) else None

    @work(thread=True, exit_on_error=False, group="compare-vote")
    def _save_preference(self, item_id: int, preference: Preference) -> None:
        with services(self).database() as database:
            set_preference(database, item_id, preference)
        self.post_message(PreferenceSaved(item_id, preference))

    @work(thread=True, exit_on_error=False, group="compare-vote")
    def _save_prompt_vote(self, vote: PromptVote) -> None:
        with services(self).database() as database:
            add_prompt_vote(database, vote)
            typed = prompt_vote_counts(database, vote.run_id)
        self.post_message(PromptVoteSaved(vote.run_id, vote.preference, typed))

    @on(PromptVoteSaved)
    def _prompt_vote_saved(self, message: PromptVoteSaved) -> None:
        if message.run_id == self.run_id:
            self._typed_votes = message.typed
            self._show_summary()
        self.notify(vote_notice(message.preference), timeout=2, markup=False)

    @on(PreferenceSaved)
    def _preference_saved(self, message: PreferenceSaved) -> None:
        self._items = with_preference(self._items, message.item_id, message.preference)
        table = self.query_one(EvalTable)
        self._show_items()
        self._show_summary()
        self.notify(vote_notice(message.preference), timeout=2, markup=False)
        row = table.next_unvoted_row()
        if row is not None:
            table.move_cursor(row=row)
        else:
            self.notify("Every eval row has a vote.", timeout=3, markup=False)

    def action_judge(self) -> None:
        """Grade every answer of the shown run's evaluation with the agent's model."""
        evaluation = self._evaluations.get(self.run_id) if self.run_id is not None else None
        if evaluation is None or self.project is None or self._judging is not None:
            return
        run_id = self._judged_run = evaluation.run_id

        def report(line: str) -> None:
            self.post_message(JudgingProgressed(run_id, line))

        self._judging = Work(report=report)
        self._judge_line = "starting…"
        self._show_items()
        self.refresh_bindings()
        self._judge(self.project, evaluation, self._judging)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-judge")
    def _judge(self, project: Project, evaluation: Evaluation, judging: Work) -> None:
        from agent.spec import load_spec
        from tui.judging import judge_evaluation, required_judge

        source = required_judge()
        judging.report(f"{source.name} reads the answers")
        try:
            judged = judge_evaluation(
                services(self).database, evaluation, load_spec(project), source, judging
            )
        except CancelledError:
            self.post_message(EvaluationJudged(evaluation.run_id, None))
            return
        self.post_message(EvaluationJudged(evaluation.run_id, judged))

    def action_stop_judging(self) -> None:
        """Stop the judge after its current answer; nothing it judged is stored."""
        if self._judging is not None:
            self._judging.cancel.set()
            self._judge_line = "stopping after the current answer…"
            self._show_items()

    @on(JudgingProgressed)
    def _judging_progressed(self, message: JudgingProgressed) -> None:
        judging = self._judging
        if judging is not None and not judging.cancelled and message.run_id == self._judged_run:
            self._judge_line = message.line
            self._show_items()

    @on(EvaluationJudged)
    def _evaluation_judged(self, message: EvaluationJudged) -> None:
        judged = message.evaluation
        if judged is None:
            self.notify("Judging stopped; nothing was stored.", markup=False)
            return
        self._evaluations[message.run_id] = judged
        if message.run_id == self.run_id:
            self._read_items(message.run_id, judged.id)
        self.notify(judged_notice(judged), title="Judged", markup=False)

    def _fixable(self) -> tuple[str, str] | None:
        """The prompt and tuned answer shown now, if there is a complete one."""
        shown = self._shown_item()
        if shown is not None and not self._showing_free:
            return shown.stored.item.prompt, shown.stored.item.tuned_output
        return self._free.fixable() if self._free is not None else None

    def action_fix(self) -> None:
        """Open the tuned answer shown in the editor; saving adds it as a new example."""
        fixable = self._fixable()
        if fixable is None or self.project is None:
            return
        project = self.project

        def save(edited: EditedExample | None) -> None:
            if edited is not None:
                self._add_example(project, edited)

        self.app.push_screen(tuned_answer_editor(*fixable), save)

    @work(thread=True, exit_on_error=False, group="compare-add")
    def _add_example(self, project: Project, edited: EditedExample) -> None:
        example = NewExample(messages=edited.messages, tags=edited.tags)
        with services(self).database() as database:
            result = add_examples(
                database, project.id, [example], source="from-compare", split_mode="train"
            )
        self.post_message(ExampleAdded(bool(result.added)))

    @on(ExampleAdded)
    def _example_added(self, message: ExampleAdded) -> None:
        if message.added:
            self.notify("Added to the dataset as a train example (Dataset, 2).", markup=False)
        else:
            self.notify("The dataset already has exactly this example.", markup=False)
