"""The Compare area's bookkeeping without Textual: typed-prompt answers, blind votes, summaries."""

from __future__ import annotations

from store.evals import EvalItem, StoredEvalItem
from store.vocabulary import Preference
from tui.compare_answers import (
    FreeAnswer,
    blind_preference,
    preference_summary,
    vote_notice,
    with_preference,
)


def _item(item_id: int, preference: Preference | None) -> StoredEvalItem:
    item = EvalItem(None, f"p{item_id}", "ref", "base", "tuned", {}, {})
    return StoredEvalItem(item_id, 1, item, preference)


def test_a_blind_vote_names_the_side_it_was_for() -> None:
    assert blind_preference("a", tuned_is_a=True) == "tuned"
    assert blind_preference("a", tuned_is_a=False) == "base"
    assert blind_preference("b", tuned_is_a=True) == "base"
    assert blind_preference("tie", tuned_is_a=True) == "tie"
    assert vote_notice("tie") == "Recorded: you preferred a tie."
    assert vote_notice("tuned") == "Recorded: you preferred the tuned answer."


def test_typed_answers_are_votable_once_both_are_complete() -> None:
    free = FreeAnswer(1, "hello", tuned_is_a=False)
    free.streamed("tuned", "hi", done=True)
    assert not free.votable(3)
    assert free.fixable() == ("hello", "hi")
    free.streamed("base", "hey", done=True)
    assert free.votable(3) and not free.votable(None)
    vote = free.vote(1, 3, "a")
    assert (vote.preference, vote.base_output, vote.tuned_output) == ("base", "hey", "hi")
    assert not free.votable(3)


def test_a_failed_ask_marks_only_the_unanswered_side() -> None:
    free = FreeAnswer(1, "hello", tuned_is_a=True)
    free.streamed("tuned", "  ", done=True)
    free.fail("the server exited")
    assert free.errors == {"base": "No answer: the server exited"}
    assert free.fixable() is None and not free.votable(3)


def test_votes_add_up_with_the_typed_ones() -> None:
    items = [_item(1, "tuned"), _item(2, None), _item(3, "base")]
    assert preference_summary([_item(1, None)], {}) == ""
    assert preference_summary(items, {"tuned": 2}) == (
        "you preferred tuned 1 · base 1 · tie 0 (2 of 3) · typed: tuned 2 · base 0 · tie 0"
    )
    voted = with_preference(items, 2, "tie")
    assert [item.preference for item in voted] == ["tuned", "tie", "base"]
