"""The labelling queue's order, moves and counts, and the labels its digits pick, without
Textual, over rows read back from a real database."""

from __future__ import annotations

from pathlib import Path

from store.database import open_database
from store.example_pages import UnansweredPage
from store.examples import (
    Example,
    add_examples,
    list_examples,
    prompt_response,
    set_proposal,
    unlabeled_example,
    unlabeled_examples,
)
from store.projects import create_project
from tui.labelling_queue import LabelQueue, counts_text, proposal_note


def _rows(tmp_path: Path) -> tuple[list[Example], list[Example]]:
    """Four unanswered rows (proposals at 0.9, 0.35 and 0.6, one without) and the project's
    examples, four of them approved with the answers billing and bug, twice each."""
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "tickets")
    add_examples(
        db,
        project.id,
        [
            prompt_response(text, answer)
            for text, answer in (("Charged", "billing"), ("Crash", "bug"), ("Refund", "billing"))
        ]
        + [prompt_response("Frozen", "bug")],
        source="typed",
    )
    add_examples(
        db,
        project.id,
        [unlabeled_example(text) for text in ("refund?", "it crashes", "login fails", "hi")],
        source="imported",
        status="pending",
    )
    for example_id, answer, confidence in ((5, "billing", 0.9), (6, "bug", 0.35), (7, "x", 0.6)):
        set_proposal(db, example_id, answer, confidence, "base")
    rows = unlabeled_examples(db, project.id)
    examples = list_examples(db, project.id)
    db.close()
    return rows, examples


def _queue(rows: list[Example], labels: tuple[str, ...] = ()) -> LabelQueue:
    """A queue read from ``rows``, all the rows there are, with ``labels``."""
    return LabelQueue().reloaded(UnansweredPage(tuple(rows), len(rows))).with_labels(labels)


def test_least_confident_first_and_answered_rows_leave_at_once(tmp_path: Path) -> None:
    rows, _ = _rows(tmp_path)
    queue = _queue(rows, ("billing", "bug"))
    assert [row.id for row in queue.waiting] == [6, 7, 5, 8]
    assert queue.current is not None and queue.current.id == 6
    assert counts_text(queue) == "4 left to label · 0 labelled this session"

    queue = queue.answered(6)
    assert queue.current is not None and queue.current.id == 7
    assert (queue.left, queue.labelled) == (3, 1)
    # A reload that still holds the row (read before its write) does not bring it back.
    queue = queue.reloaded(UnansweredPage(tuple(rows), len(rows)))
    assert queue.current is not None and queue.current.id == 7 and queue.left == 3


def test_skip_and_back_wrap_around_and_answering_the_last_row_goes_to_the_first(
    tmp_path: Path,
) -> None:
    rows, _ = _rows(tmp_path)
    queue = _queue(rows)
    assert [queue.moved(step).current_id for step in (1, 2, 3, 4, -1)] == [7, 5, 8, 6, 8]
    at_last = queue.moved(-1)
    after = at_last.answered(8)
    assert after.current is not None and after.current.id == 6
    done = _queue(rows[:1]).answered(rows[0].id)
    assert done.current is None and done.left == 0 and done.labelled == 1
    assert done.moved(1) == done


def test_an_undone_or_refused_answer_comes_back_as_the_current_row(tmp_path: Path) -> None:
    rows, _ = _rows(tmp_path)
    queue = _queue(rows).answered(6).answered(7)
    assert queue.current is not None and queue.current.id == 5
    back = queue.taken_back([6])
    assert back.current is not None and back.current.id == 6
    assert (back.left, back.labelled) == (3, 1)
    # Ids it did not answer (an undo of another change) leave it as it was.
    assert queue.taken_back([1, 2]) is queue


def test_digits_pick_the_labels_in_order_and_nothing_past_the_ninth(tmp_path: Path) -> None:
    rows, _ = _rows(tmp_path)
    queue = _queue(rows, ("billing", "bug"))
    assert queue.label_for(1) == "billing" and queue.label_for(2) == "bug"
    assert queue.label_for(3) is None and queue.label_for(0) is None
    assert LabelQueue().label_for(1) is None
    many = LabelQueue(labels=tuple(f"l{n}" for n in range(12)))
    assert many.label_for(9) == "l8" and many.label_for(10) is None


def test_a_proposal_says_who_made_it_and_how_sure_it_was(tmp_path: Path) -> None:
    rows, _ = _rows(tmp_path)
    assert proposal_note(rows[0]) == "base, 35% sure"


def test_a_long_queue_counts_the_rows_it_did_not_read(tmp_path: Path) -> None:
    rows, _ = _rows(tmp_path)
    # The first two of 40,000 rows without an answer.
    queue = LabelQueue().reloaded(UnansweredPage(tuple(rows[:2]), 40_000))
    assert counts_text(queue) == "40000 left to label · 0 labelled this session"
    queue = queue.answered(rows[0].id)
    assert (queue.left, queue.labelled) == (39_999, 1)
    assert [row.id for row in queue.waiting] == [rows[1].id]
    # Read back: the row answered is gone from the store's rows and from its count.
    queue = queue.reloaded(UnansweredPage(tuple(rows[1:3]), 39_999))
    assert queue.left == 39_999 and queue.current is not None
