"""Below the examples table: the highlighted example's prompt and response, a few lines each."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Label, Static

from store.examples import Example
from tui.text import plain

if TYPE_CHECKING:
    from textual.app import ComposeResult


class ExamplePreview(Vertical):
    """The prompt and response of one example, as much as fits in a few lines."""

    example: reactive[Example | None] = reactive(None)
    """The example shown; None shows nothing."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="preview-part"):
            yield Label("prompt", classes="preview-label")
            yield Static(id="preview-prompt", classes="preview-text", markup=False)
        with Horizontal(classes="preview-part"):
            yield Label("response", classes="preview-label")
            yield Static(id="preview-response", classes="preview-text", markup=False)

    def watch_example(self, example: Example | None) -> None:
        self.display = example is not None
        if example is not None:
            self.query_one("#preview-prompt", Static).update(plain(example.prompt))
            self.query_one("#preview-response", Static).update(plain(example.response))
