"""The Compare area: base and tuned answers side by side, the held-out evaluation, blind A/B."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Select, Static
from textual.worker import Worker, WorkerState

from store.errors import TunesmithError
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
from store.examples import ChatMessage, NewExample, add_examples
from store.projects import Project
from store.runs import Run, list_runs
from trainer.control.launch import BASE_MODEL_NAME, run_model_name
from tui.dialogs.edit_example import EditedExample, EditExampleScreen
from tui.run_text import primary_metric, result_cell
from tui.screens.area import AreaScreen
from tui.services import services
from tui.streaming import AnswerStreamed, ServerStatusChanged, stream_to
from tui.text import plain
from tui.widgets.compare.answer_pane import AnswerPane
from tui.widgets.compare.eval_table import SORTS, EvalTable, ShownItem, sort_items
from tui.widgets.compare.prompt_box import PromptBox

if TYPE_CHECKING:
    import sqlite_utils

SIDES = ("base", "tuned")
"""The two answers, left then right (unless blind mode swaps them)."""

ASK_HINT = "Type a prompt and press Enter: base and tuned answer side by side (ctrl+j: new line)."
"""What the line under the prompt box says before anything was asked."""


@dataclass
class FreeAnswer:
    """The answers to a prompt typed in the box, as they stream in."""

    request: int
    """Which ask this is; answers of an older ask are dropped."""
    prompt: str
    tuned_is_a: bool
    """In blind mode, whether the tuned answer is the left one (A)."""
    texts: dict[str, str] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)
    status: str = "Waiting for the model server…"
    voted: bool = False
    """Whether a blind vote on these answers was recorded (one per prompt)."""


def preference_summary(items: Sequence[StoredEvalItem], typed: Mapping[str, int]) -> str:
    """``you preferred tuned 3 · base 1 · tie 0 (4 of 20)``, then the votes on typed prompts
    (``typed: tuned 2 · base 0 · tie 1``); nothing before the first vote."""
    votes = [item.preference for item in items if item.preference is not None]
    parts = []
    if votes:
        counts = " · ".join(f"{side} {votes.count(side)}" for side in ("tuned", "base", "tie"))
        parts.append(f"you preferred {counts} ({len(votes)} of {len(items)})")
    if any(typed.values()):
        counts = " · ".join(f"{side} {typed.get(side, 0)}" for side in ("tuned", "base", "tie"))
        parts.append(f"typed: {counts}")
    return " · ".join(parts)


class CompareScreen(AreaScreen):
    """Ask base and tuned the same prompt; read and vote on the chosen run's evaluation."""

    AREA: ClassVar[str] = "compare"
    CSS_PATH = "compare.tcss"
    AUTO_FOCUS = "#compare-items"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "ask", "Ask", tooltip="Type a prompt for both models"),
        Binding("v", "blind", "Blind A/B", tooltip="Hide which answer is which, and vote"),
        Binding("o", "sort", "Sort", tooltip="Sort the eval rows by where tuned and base differ"),
        Binding("f", "fix", "Fix → example", tooltip="Correct the tuned answer into an example"),
        Binding("a", "vote('a')", "A better", tooltip="Record that answer A is better"),
        Binding("b", "vote('b')", "B better", tooltip="Record that answer B is better"),
        Binding("equals_sign", "vote('tie')", "Tie", key_display="=", tooltip="Record a tie"),
    ]

    runs: reactive[tuple[Run, ...]] = reactive(())
    """The project's completed runs, oldest first."""

    run_id: reactive[int | None] = reactive(None)
    """The run whose tuned model answers and whose evaluation is listed."""

    blind: reactive[bool] = reactive(False)
    """Blind A/B mode: answers are A and B, which is which hidden, and votes are recorded."""

    sort: reactive[str] = reactive(SORTS[0])
    """The order of the eval rows (one of ``SORTS``)."""

    class RunsRead(Message):
        """The project's completed runs and their evaluations were read."""

        def __init__(
            self, project: Project, runs: Sequence[Run], evaluations: dict[int, Evaluation | None]
        ) -> None:
            super().__init__()
            self.project = project
            """The project read."""
            self.runs = tuple(runs)
            """Its completed runs, oldest first."""
            self.evaluations = evaluations
            """The latest evaluation of each, by run id."""

    class EvaluationRead(Message):
        """The items of a run's latest evaluation were read."""

        def __init__(
            self, run_id: int, items: Sequence[StoredEvalItem], typed: dict[str, int]
        ) -> None:
            super().__init__()
            self.run_id = run_id
            """The run evaluated."""
            self.items = tuple(items)
            """Its eval items, in the order answered."""
            self.typed = typed
            """Blind votes on typed prompts for this run, by preference."""

    class PromptVoteSaved(Message):
        """A blind vote on the answers to a typed prompt was recorded."""

        def __init__(self, run_id: int, preference: str, typed: dict[str, int]) -> None:
            super().__init__()
            self.run_id = run_id
            self.preference = preference
            self.typed = typed
            """The run's votes on typed prompts, this one included."""

    class PreferenceSaved(Message):
        """A blind vote was recorded on an eval item."""

        def __init__(self, item_id: int, preference: str) -> None:
            super().__init__()
            self.item_id = item_id
            """The eval item voted on."""
            self.preference = preference
            """``base``, ``tuned`` or ``tie``."""

    class ExampleAdded(Message):
        """A corrected tuned answer was added to the dataset (or was already there)."""

        def __init__(self, added: bool) -> None:
            super().__init__()
            self.added = added
            """False when the same conversation was already in the dataset."""

    def __init__(self, database: sqlite_utils.Database) -> None:
        super().__init__(database)
        self._evaluations: dict[int, Evaluation | None] = {}
        self._items: tuple[StoredEvalItem, ...] = ()
        self._typed_votes: dict[str, int] = {}
        self._free: FreeAnswer | None = None
        self._showing_free = False
        self._requests = 0
        self._salt = secrets.randbits(32)
        self._read_once = False

    def compose_area(self) -> Iterable[Widget]:
        with Horizontal(id="compare-top"):
            yield Select[int]([], prompt="no run", id="compare-run", compact=True)
            yield Static(id="compare-summary", markup=False)
        yield PromptBox(id="compare-prompt", placeholder="Ask both models something…")
        yield Static(ASK_HINT, id="compare-context", markup=False)
        with Horizontal(id="compare-answers"):
            yield AnswerPane(id="compare-left", classes="answer")
            yield AnswerPane(id="compare-right", classes="answer")
        with Vertical(id="compare-eval"):
            yield Static(id="compare-eval-title", markup=False)
            yield EvalTable(id="compare-items")

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
        self.post_message(self.RunsRead(project, runs, evaluations))

    @on(RunsRead)
    def _runs_read(self, message: RunsRead) -> None:
        if self.project is None or message.project.id != self.project.id:
            return
        self._read_once = True
        self._evaluations = message.evaluations
        self.runs = message.runs
        wanted = getattr(self.app, "compare_run_id", None)
        ids = [run.id for run in message.runs]
        if wanted in ids:
            self.run_id = wanted
        elif self.run_id not in ids:
            self.run_id = ids[-1] if ids else None
        self._show_runs()
        self._show_items()
        self._show_panes()

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
        self.post_message(self.EvaluationRead(run_id, items, typed))

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
        options = [
            (f"run {run.id} {result_cell(run, self._evaluations.get(run.id))}", run.id)
            for run in reversed(self.runs)
        ]
        with select.prevent(Select.Changed):
            select.set_options(options)
            if self.run_id in [run.id for run in self.runs]:
                select.value = self.run_id
        select.display = bool(options)
        self._show_summary()

    def _show_summary(self) -> None:
        summary = self.query_one("#compare-summary", Static)
        if self.project is None:
            summary.update("No project chosen yet: press p to choose or create one.")
            return
        if not self.runs:
            summary.update(
                "No trained run yet: start one in Train (3). Meanwhile the base model answers."
                if self._read_once
                else "Reading runs…"
            )
            return
        evaluation = self._evaluations.get(self.run_id) if self.run_id is not None else None
        if evaluation is None:
            summary.update("This run has no evaluation (it had no eval rows).")
            return
        metric = primary_metric(evaluation)
        base, tuned = evaluation.base.get(metric), evaluation.tuned.get(metric)
        label = "JSON equal" if metric == "json_equal" else "exact match"
        parts = [f"{label} {base or 0:.0%} → {tuned or 0:.0%} on {evaluation.n} held-out rows"]
        preferences = preference_summary(self._items, self._typed_votes)
        if preferences:
            parts.append(preferences)
        summary.update(" · ".join(parts))

    def _shown_items(self) -> list[ShownItem]:
        evaluation = self._evaluations.get(self.run_id) if self.run_id is not None else None
        metric = primary_metric(evaluation) if evaluation is not None else "exact_match"
        shown = [
            ShownItem(
                stored,
                number,
                stored.item.base_scores.get(metric),
                stored.item.tuned_scores.get(metric),
                tuned_is_a=self._tuned_is_a(stored.id),
            )
            for number, stored in enumerate(self._items, start=1)
        ]
        return sort_items(shown, self.sort)

    def _tuned_is_a(self, key: int) -> bool:
        return bool(hash((self._salt, key)) & 1)

    def _show_items(self) -> None:
        table = self.query_one(EvalTable)
        title = self.query_one("#compare-eval-title", Static)
        evaluation = self._evaluations.get(self.run_id) if self.run_id is not None else None
        table.display = bool(self._items)
        if self.project is None or not self.runs:
            title.update("")
        elif evaluation is None:
            title.update(
                "No evaluation for this run: runs with eval examples evaluate themselves when "
                "they finish (tunesmith eval NAME --run ID does it later)."
            )
        elif self.blind:
            title.update("Blind A/B: which side is tuned is hidden; a, b or = records a vote.")
        else:
            line = Text(f"Eval rows ({self.sort}); o sorts, v votes blind, f fixes an answer")
            title.update(line)
        if self._items:
            table.show_items(self._shown_items(), blind=self.blind)
            if self.focused is None:
                table.focus()

    def _show_panes(self) -> None:
        left = self.query_one("#compare-left", AnswerPane)
        right = self.query_one("#compare-right", AnswerPane)
        item = self._shown_item()
        if item is not None and not self._showing_free:
            self._show_item(item, left, right)
            return
        free = self._free
        tuned_is_a = free.tuned_is_a if free is not None else False
        panes = {"base": left, "tuned": right}
        if self.blind and tuned_is_a:
            panes = {"base": right, "tuned": left}
        for side, pane in panes.items():
            title = self._pane_title(side, pane is left)
            if free is None:
                pane.show(title, "", note=self._idle_note(side))
            elif side in free.errors:
                pane.show(title, "", note=free.errors[side], error=True)
            else:
                note = free.status if side not in free.done else "(empty answer)"
                if side == "tuned" and self.run_id is None:
                    note = "No tuned model yet: train a run in Train (3)."
                pane.show(title, free.texts.get(side, ""), note=note)
        context = self.query_one("#compare-context", Static)
        if free is None:
            context.update(ASK_HINT)
        else:
            context.update(Text.assemble(("Your prompt: ", "bold"), plain(free.prompt, 200)))

    def _idle_note(self, side: str) -> str:
        if self.project is None:
            return ""
        if side == "tuned" and self.run_id is None:
            return "No tuned model yet: train a run in Train (3)."
        return "Its answer appears here."

    def _pane_title(self, side: str, is_left: bool) -> str:
        if self.blind:
            return "A" if is_left else "B"
        if side == "base":
            return "base"
        return f"tuned · run {self.run_id}" if self.run_id is not None else "tuned"

    def _shown_item(self) -> ShownItem | None:
        table = self.query_one(EvalTable)
        return table.item_at(table.cursor_row) if table.display else None

    def _show_item(self, shown: ShownItem, left: AnswerPane, right: AnswerPane) -> None:
        item = shown.stored.item
        sides = {"base": (item.base_output, shown.base_score)}
        sides["tuned"] = (item.tuned_output, shown.tuned_score)
        order = ("tuned", "base") if self.blind and shown.tuned_is_a else SIDES
        for pane, side in zip((left, right), order, strict=True):
            answer, score = sides[side]
            title = self._pane_title(side, pane is left)
            if not self.blind and score is not None:
                title += f" · score {score:.2f}"
            pane.show(title, answer, note="(empty answer)", follow=False)
        context = self.query_one("#compare-context", Static)
        context.update(
            Text.assemble(
                (f"Row {shown.number} prompt: ", "bold"),
                plain(item.prompt, 200),
                "\n",
                ("reference: ", "bold"),
                plain(item.reference, 200),
            )
        )

    def watch_blind(self) -> None:
        self._show_items()
        self._show_panes()
        self.refresh_bindings()

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
        self._free = FreeAnswer(self._requests, event.prompt, self._tuned_is_a(-self._requests))
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
        free.status = "Next: the server answers one model at a time."
        free.texts[message.side] = message.text
        if message.done:
            free.done.add(message.side)
            self.refresh_bindings()
        self._show_panes()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        free = self._free
        if event.state is WorkerState.ERROR and event.worker.group == "compare-ask" and free:
            error = event.worker.error
            reason = error.message if isinstance(error, TunesmithError) else repr(error)
            for side in SIDES:
                if side not in free.done:
                    free.errors[side] = f"No answer: {reason}"
            self._show_panes()

    # Acting

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        prompt_focused = self.query_one(PromptBox).has_focus
        if action == "vote":
            # The vote goes to what the panes show: a typed prompt's answers, else the eval row.
            shown = self._votable_free() if self._showing_free else self._shown_item()
            return self.blind and not prompt_focused and shown is not None
        if action == "blind":
            return bool(self._items) and not prompt_focused
        if action == "sort":
            return bool(self._items) and not self.blind and not prompt_focused
        if action == "fix":
            return not self.blind and not prompt_focused and self._fixable() is not None
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

    def action_sort(self) -> None:
        """Show the eval rows in the next order: as evaluated, tuned ahead, base ahead."""
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.query_one(EvalTable).move_cursor(row=0)
        self.notify(f"Eval rows: {self.sort}.", timeout=2, markup=False)

    def _votable_free(self) -> FreeAnswer | None:
        """The typed prompt's answers, when both are complete and not voted on yet."""
        free = self._free
        if free is None or free.voted or free.errors or self.run_id is None:
            return None
        return free if free.done >= set(SIDES) else None

    def action_vote(self, choice: str) -> None:
        """Record which answer shown is better (a, b or tie): a typed prompt's, else the
        highlighted eval row's."""
        if self._showing_free:
            free = self._votable_free()
            if free is not None and self.project is not None and self.run_id is not None:
                free.voted = True
                self.refresh_bindings()
                vote = PromptVote(
                    project_id=self.project.id,
                    run_id=self.run_id,
                    prompt=free.prompt,
                    base_output=free.texts.get("base", ""),
                    tuned_output=free.texts.get("tuned", ""),
                    preference=_preference(choice, tuned_is_a=free.tuned_is_a),
                )
                self._save_prompt_vote(vote)
            return
        shown = self._shown_item()
        if shown is None:
            return
        self._save_preference(shown.stored.id, _preference(choice, tuned_is_a=shown.tuned_is_a))

    @work(thread=True, exit_on_error=False, group="compare-vote")
    def _save_preference(self, item_id: int, preference: str) -> None:
        with services(self).database() as database:
            set_preference(database, item_id, preference)
        self.post_message(self.PreferenceSaved(item_id, preference))

    @work(thread=True, exit_on_error=False, group="compare-vote")
    def _save_prompt_vote(self, vote: PromptVote) -> None:
        with services(self).database() as database:
            add_prompt_vote(database, vote)
            typed = prompt_vote_counts(database, vote.run_id)
        self.post_message(self.PromptVoteSaved(vote.run_id, vote.preference, typed))

    @on(PromptVoteSaved)
    def _prompt_vote_saved(self, message: PromptVoteSaved) -> None:
        if message.run_id == self.run_id:
            self._typed_votes = message.typed
            self._show_summary()
        voted = "a tie" if message.preference == "tie" else f"the {message.preference} answer"
        self.notify(f"Recorded: you preferred {voted}.", timeout=2, markup=False)

    @on(PreferenceSaved)
    def _preference_saved(self, message: PreferenceSaved) -> None:
        self._items = tuple(
            replace(item, preference=message.preference) if item.id == message.item_id else item
            for item in self._items
        )
        table = self.query_one(EvalTable)
        self._show_items()
        self._show_summary()
        voted = "a tie" if message.preference == "tie" else f"the {message.preference} answer"
        self.notify(f"Recorded: you preferred {voted}.", timeout=2, markup=False)
        unvoted = [row for row, shown in enumerate(table.items) if shown.stored.preference is None]
        after = [row for row in unvoted if row > table.cursor_row]
        if after or unvoted:
            table.move_cursor(row=(after or unvoted)[0])
        else:
            self.notify("Every eval row has a vote.", timeout=3, markup=False)

    def _fixable(self) -> tuple[str, str] | None:
        """The prompt and tuned answer shown now, if there is a complete one."""
        shown = self._shown_item()
        if shown is not None and not self._showing_free:
            return shown.stored.item.prompt, shown.stored.item.tuned_output
        free = self._free
        if free is not None and "tuned" in free.done and free.texts.get("tuned", "").strip():
            return free.prompt, free.texts["tuned"]
        return None

    def action_fix(self) -> None:
        """Open the tuned answer shown in the editor; saving adds it as a new example."""
        fixable = self._fixable()
        if fixable is None or self.project is None:
            return
        prompt, answer = fixable
        project = self.project

        def save(edited: EditedExample | None) -> None:
            if edited is not None:
                self._add_example(project, edited)

        self.app.push_screen(
            EditExampleScreen(
                "New example from the tuned answer",
                (ChatMessage("user", prompt), ChatMessage("assistant", answer)),
                note="Correct the answer, then ctrl+s adds it to the dataset as an approved "
                "train example (source from-compare).",
            ),
            save,
        )

    @work(thread=True, exit_on_error=False, group="compare-add")
    def _add_example(self, project: Project, edited: EditedExample) -> None:
        with services(self).database() as database:
            result = add_examples(
                database,
                project.id,
                [NewExample(messages=edited.messages, tags=edited.tags)],
                source="from-compare",
                split_mode="train",
            )
        self.post_message(self.ExampleAdded(bool(result.added)))

    @on(ExampleAdded)
    def _example_added(self, message: ExampleAdded) -> None:
        if message.added:
            self.notify("Added to the dataset as a train example (Dataset, 2).", markup=False)
        else:
            self.notify("The dataset already has exactly this example.", markup=False)


def _preference(choice: str, *, tuned_is_a: bool) -> str:
    """What a blind vote (``a``, ``b`` or ``tie``) says was better: base, tuned or tie."""
    if choice == "tie":
        return "tie"
    return "tuned" if (choice == "a") == tuned_is_a else "base"
