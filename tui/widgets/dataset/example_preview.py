"""Below the examples table: the highlighted example's prompt and response (or what a model
proposed for it), and its flags."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Label, Static

from store.examples import Example
from tui.dataset_checks import ExampleCheck
from tui.labelling_queue import proposal_note
from tui.text import plain

if TYPE_CHECKING:
    from textual.app import ComposeResult


def response_text(example: Example) -> Text:
    """The answer; for a row without one, that it has none and what a model proposed."""
    if example.answered:
        return plain(example.response)
    if example.proposed is None:
        return Text("(no answer yet: l labels the rows without one)", style="italic")
    return Text.assemble(
        ("(no answer yet) proposed: ", "italic"),
        plain(example.proposed),
        (f" ({proposal_note(example)})", "italic"),
    )


def check_line(example: Example, check: ExampleCheck | None) -> Text:
    """Where it comes from and what is wrong with it, e.g. ``#4 · imported · same prompt as #9``."""
    line = Text.assemble(f"#{example.id} · {example.source} · v{example.version}")
    if example.tags:
        line.append(" · tags ")
        line.append_text(plain(", ".join(example.tags)))
    if check is None:
        return line
    if check.exact:
        line.append(f" · {check.tokens} tokens")
    else:
        line.append(f" · ~{check.tokens} tokens (estimated until the base model is on disk)")
    if check.same_prompt_as:
        others = ", ".join(f"#{other}" for other in check.same_prompt_as[:5])
        line.append(f" · same prompt as {others}", style="bold")
    if check.too_long:
        line.append(f" · {check.too_long}", style="bold")
    return line


class ExamplePreview(Vertical):
    """The prompt and response of one example, as much as fits in a few lines, and its flags."""

    example: reactive[Example | None] = reactive(None)
    """The example shown; None shows nothing."""

    check: reactive[ExampleCheck | None] = reactive(None)
    """What the checks found about it."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="preview-part"):
            yield Label("prompt", classes="preview-label")
            yield Static(id="preview-prompt", classes="preview-text", markup=False)
        with Horizontal(classes="preview-part"):
            yield Label("response", classes="preview-label")
            yield Static(id="preview-response", classes="preview-text", markup=False)
        yield Static(id="preview-checks", markup=False)

    def watch_example(self, example: Example | None) -> None:
        self.display = example is not None
        if example is not None:
            self.query_one("#preview-prompt", Static).update(plain(example.prompt))
            self.query_one("#preview-response", Static).update(response_text(example))
        self._show_checks()

    def watch_check(self) -> None:
        self._show_checks()

    def _show_checks(self) -> None:
        if self.example is not None:
            line = check_line(self.example, self.check)
            line.no_wrap = True
            line.overflow = "ellipsis"
            self.query_one("#preview-checks", Static).update(line)
