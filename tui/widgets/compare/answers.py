"""Both answers of the Compare area side by side: base and tuned, or, blind, A and B."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.containers import Horizontal

from tui.compare_answers import NO_TUNED_MODEL, FreeAnswer, pane_title
from tui.widgets.compare.answer_pane import AnswerPane
from tui.widgets.compare.eval_table import ShownItem

if TYPE_CHECKING:
    from textual.app import ComposeResult


class AnswerPanes(Horizontal):
    """The left and right answer panes, filled from a typed prompt's answers or an eval row."""

    def compose(self) -> ComposeResult:
        yield AnswerPane(id="compare-left", classes="answer")
        yield AnswerPane(id="compare-right", classes="answer")

    def _panes(self) -> tuple[AnswerPane, AnswerPane]:
        return (
            self.query_one("#compare-left", AnswerPane),
            self.query_one("#compare-right", AnswerPane),
        )

    def show_free(
        self, free: FreeAnswer | None, *, blind: bool, run_id: int | None, project_chosen: bool
    ) -> None:
        """Show a typed prompt's answers as they stand, or, before any, what will appear."""
        left, right = self._panes()
        panes = {"base": left, "tuned": right}
        if blind and free is not None and free.tuned_is_a:
            panes = {"base": right, "tuned": left}
        for side, pane in panes.items():
            title = pane_title(side, is_left=pane is left, blind=blind, run_id=run_id)
            if free is None:
                pane.show(title, "", note=_idle_note(side, run_id, project_chosen))
            elif side in free.errors:
                pane.show(title, "", note=free.errors[side], error=True)
            else:
                note = free.status if side not in free.done else "(empty answer)"
                if side == "tuned" and run_id is None:
                    note = NO_TUNED_MODEL
                pane.show(title, free.texts.get(side, ""), note=note)

    def show_item(
        self, shown: ShownItem, *, blind: bool, run_id: int | None, few_shot: bool = False
    ) -> None:
        """Show an eval row's two answers, with their scores unless blind; ``few_shot``: the
        base model's few-shot answer in place of its zero-shot one, where it has one."""
        item = shown.stored.item
        base_side = (
            "few_shot" if few_shot and not blind and item.few_shot_output is not None else "base"
        )
        sides = {
            "base": (item.base_output, shown.base_score),
            "few_shot": (item.few_shot_output or "", shown.few_shot_score),
            "tuned": (item.tuned_output, shown.tuned_score),
        }
        order = ("tuned", base_side) if blind and shown.tuned_is_a else (base_side, "tuned")
        left, right = self._panes()
        for pane, side in zip((left, right), order, strict=True):
            answer, score = sides[side]
            title = pane_title(side, is_left=pane is left, blind=blind, run_id=run_id)
            if not blind and score is not None:
                title += f" · score {score:.2f}"
            pane.show(title, answer, note="(empty answer)", follow=False)


def _idle_note(side: str, run_id: int | None, project_chosen: bool) -> str:
    if not project_chosen:
        return ""
    if side == "tuned" and run_id is None:
        return NO_TUNED_MODEL
    return "Its answer appears here."
