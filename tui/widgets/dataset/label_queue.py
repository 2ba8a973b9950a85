"""The labelling queue: one row without an answer at a time, its proposal and the task's
labels, and the keys that answer it; in place of the examples table while it is open."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Label, Static

from store.examples import ChatMessage, Example
from trainer.control.labels import match_answer
from tui.dialogs.edit_example import EditedExample, EditExampleScreen
from tui.labelling_queue import DIGIT_LABELS, LabelQueue, counts_text, proposal_note
from tui.text import plain

if TYPE_CHECKING:
    from textual.app import ComposeResult

NO_PROPOSAL = "(none yet: g has a model propose answers)"
"""The proposal line of a row no model has proposed an answer for."""


def labels_line(queue: LabelQueue, proposed: str | None) -> Text:
    """The labels the digits pick, e.g. ``1 billing  2 bug  3 account``, the proposed one shown
    reversed."""
    chosen = match_answer(queue.labels, proposed) if proposed is not None else None
    line = Text()
    for number, label in enumerate(queue.labels[:DIGIT_LABELS], start=1):
        line.append(f"{number} " if number == 1 else f"  {number} ", style="bold")
        start = len(line)
        line.append_text(plain(label, 30))
        if label == chosen:
            line.stylize("reverse", start, len(line))
    if len(queue.labels) > DIGIT_LABELS:
        line.append(f"  (+{len(queue.labels) - DIGIT_LABELS} more: e types one)")
    return line


def keys_line(queue: LabelQueue) -> str:
    """What the keys do here, in one line of 80 columns."""
    if queue.current is None:
        return "u undo · Esc back to the table"
    picks = f"1-{min(len(queue.labels), DIGIT_LABELS)} label · " if queue.labels else ""
    return f"a/Enter accept · {picks}e correct · s skip · u undo · Esc back"


class LabelQueuePanel(Vertical, can_focus=True):
    """The row to label now: its input, the proposal and its confidence, the numbered labels.

    It changes nothing itself: each key posts what the person chose (an answer, a move), and
    the Dataset area writes it and hands the queue back down.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a,enter", "accept", "Accept", tooltip="Make the proposal the answer"),
        Binding("e", "correct", "Correct", tooltip="Write the answer in the editor"),
        Binding("s,down,j", "move(1)", "Skip", tooltip="Leave this row for later"),
        Binding("up,k", "move(-1)", "Back", show=False),
        Binding("pagedown", "scroll_input(1)", "Scroll input", show=False),
        Binding("pageup", "scroll_input(-1)", "Scroll input", show=False),
        Binding("escape", "close", "Table", tooltip="Back to the examples table"),
        # Digits pick labels here (never an area: F2-F5 still switch), so each is bound even
        # past the last label, where it says so instead of leaving the area.
        *(
            Binding(str(number), f"pick({number})", f"Label {number}", show=False)
            for number in range(1, DIGIT_LABELS + 1)
        ),
    ]

    queue: reactive[LabelQueue] = reactive(LabelQueue, always_update=True)
    """The rows to label and where the person is, handed down by the Dataset area."""

    class AnswerChosen(Message):
        """The person chose an answer for a row: its proposal, a label or one they wrote."""

        def __init__(self, example: Example, answer: str) -> None:
            super().__init__()
            self.example = example
            """The row, as the queue showed it."""
            self.answer = answer
            """Its answer."""

    class Moved(Message):
        """The person skipped a row (1) or went back to the one before (-1)."""

        def __init__(self, step: int) -> None:
            super().__init__()
            self.step = step
            """Rows to move by."""

    class Closed(Message):
        """The person went back to the examples table."""

    def compose(self) -> ComposeResult:
        yield Static(id="queue-counts", markup=False)
        yield Static(id="queue-where", markup=False)
        with Horizontal(id="queue-input-part", classes="queue-part"):
            yield Label("input", classes="preview-label")
            with VerticalScroll(id="queue-input-scroll", can_focus=False):
                yield Static(id="queue-input", classes="queue-text", markup=False)
        with Horizontal(classes="queue-part"):
            yield Label("proposal", classes="preview-label")
            yield Static(id="queue-proposal", classes="queue-text", markup=False)
        with Horizontal(id="queue-labels-part", classes="queue-part"):
            yield Label("labels", classes="preview-label")
            yield Static(id="queue-labels", classes="queue-text", markup=False)
        yield Static(id="queue-keys", markup=False)

    def watch_queue(self, queue: LabelQueue) -> None:
        self.refresh_bindings()
        current = queue.current
        self.query_one("#queue-counts", Static).update(counts_text(queue))
        self.query_one("#queue-keys", Static).update(keys_line(queue))
        for part in self.query(".queue-part"):
            part.display = current is not None
        self.query_one("#queue-labels-part").display = current is not None and bool(queue.labels)
        where = self.query_one("#queue-where", Static)
        if current is None:
            where.update("Nothing left to label.")
            return
        position = queue.waiting.index(current) + 1
        where.update(f"Example {current.id} · {position} of {queue.left}, least confident first")
        self.query_one("#queue-input", Static).update(plain(current.prompt))
        self.query_one("#queue-input-scroll", VerticalScroll).scroll_home(animate=False)
        proposal = self.query_one("#queue-proposal", Static)
        if current.proposed is None:
            proposal.update(Text(NO_PROPOSAL, style="italic"))
        else:
            note = (f"  ({proposal_note(current)})", "italic")
            proposal.update(Text.assemble(plain(current.proposed), note))
        self.query_one("#queue-labels", Static).update(labels_line(queue, current.proposed))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("accept", "correct", "move", "scroll_input"):
            return self.queue.current is not None
        return True

    def action_accept(self) -> None:
        """Make the proposal the row's answer."""
        current = self.queue.current
        if current is None:
            return
        if current.proposed is None:
            how = "pick a label with a digit or " if self.queue.labels else ""
            self.notify(
                f"Example {current.id} has no proposal yet: {how}press e to write its answer.",
                markup=False,
            )
            return
        self.post_message(self.AnswerChosen(current, current.proposed))

    def action_pick(self, number: int) -> None:
        """Make label ``number`` the row's answer."""
        current = self.queue.current
        if current is None:
            return
        label = self.queue.label_for(number)
        if label is not None:
            self.post_message(self.AnswerChosen(current, label))
        elif not self.queue.labels:
            self.notify(
                "This task's answers are not labels: a accepts the proposal, e writes one.",
                markup=False,
            )
        else:
            last = min(len(self.queue.labels), DIGIT_LABELS)
            self.notify(f"No label {number}: the labels are 1-{last}.", markup=False)

    def action_correct(self) -> None:
        """Write the row's answer in the editor, starting from its proposal."""
        current = self.queue.current
        if current is None:
            return

        def written(edited: EditedExample | None) -> None:
            if edited is not None:
                self.post_message(self.AnswerChosen(current, edited.messages[-1].content))

        draft = (*current.messages, ChatMessage("assistant", current.proposed or ""))
        editor = EditExampleScreen(
            f"Label example {current.id}",
            draft,
            current.tags,
            note="Write the answer: ctrl+s makes it this example's approved answer.",
            answer_only=True,
        )
        self.app.push_screen(editor, written)

    def action_move(self, step: int) -> None:
        """Skip the row (1) or go back to the one before (-1)."""
        if self.queue.current is not None:
            self.post_message(self.Moved(step))

    def action_scroll_input(self, pages: int) -> None:
        """Scroll a long input by a page."""
        scroll = self.query_one("#queue-input-scroll", VerticalScroll)
        if pages > 0:
            scroll.scroll_page_down()
        else:
            scroll.scroll_page_up()

    def action_close(self) -> None:
        """Go back to the examples table."""
        self.post_message(self.Closed())
