"""The task spec, its edits, its coverage and description, and the transcript rows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.coverage import coverage
from agent.spec import (
    Requirement,
    TaskSpec,
    label_of,
    load_spec,
    missing_parts,
    output_problem,
    save_spec,
)
from agent.spec_edits import with_requirements
from agent.spec_text import describe_spec, proposed_system_prompt, spec_record
from store.database import open_database
from store.errors import InputError
from store.examples import NewExample, add_examples, list_examples, prompt_response
from store.messages import add_message, count_messages, list_messages
from store.projects import create_project, get_project, set_system_prompt

TICKETS = TaskSpec(
    goal="classify support tickets",
    input_description="the text of one ticket",
    output_kind="labels",
    labels=("billing", "technical"),
    requirements=(Requirement("R1", "angry customers"), Requirement("R2", "tickets in German")),
    constraints=("never invent labels",),
)


def tagged(prompt: str, response: str, *tags: str) -> NewExample:
    example = prompt_response(prompt, response)
    return NewExample(messages=example.messages, tags=tags)


def test_spec_round_trips_through_the_project(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "tickets")
    assert load_spec(project) == TaskSpec()
    spec = TaskSpec(**{**TICKETS.__dict__, "system_prompt": "Sort tickets.", "skipped": ("style",)})
    save_spec(db, project.id, spec)
    stored = get_project(db, "tickets")
    assert stored.system_prompt == "Sort tickets."
    assert "system_prompt" not in stored.task_spec
    assert stored.task_spec["version"] == 1
    assert load_spec(stored) == spec
    assert set_system_prompt(db, project.id, "  ").system_prompt is None


def test_unknown_or_ill_typed_json_reads_as_unset() -> None:
    spec = TaskSpec.from_json(
        {"goal": 3, "output": {"kind": "poem", "labels": ["a", 2, " "]}, "target_examples": -1}
    )
    assert spec == TaskSpec(labels=("a",))
    assert spec.judging == "free_text"
    assert spec.example_target == 50


def test_judging_and_target_follow_the_output() -> None:
    assert TICKETS.judging == "exact_label"
    assert TaskSpec(output_kind="json").judging == "json_fields"
    many_labels = TaskSpec(output_kind="labels", labels=tuple(f"l{i}" for i in range(8)))
    assert many_labels.example_target == 80
    assert TaskSpec(target_examples=7).example_target == 7


def test_missing_parts_in_interview_order() -> None:
    assert missing_parts(TaskSpec(), 0)[:3] == ["goal", "input", "output"]
    assert "style" not in missing_parts(TICKETS, 0)
    assert missing_parts(TICKETS, 0) == ["system_prompt", "examples"]
    assert missing_parts(TaskSpec(output_kind="free_text"), 0).count("style") == 1
    skipped = TaskSpec(skipped=("goal", "input"))
    assert missing_parts(skipped, 5)[:2] == ["goal", "output"]


def test_coverage_counts_labels_requirements_and_off_spec(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "tickets")
    add_examples(
        db,
        project.id,
        [tagged("a", "billing", "R1"), tagged("b", "Billing.", "R1", "R2"), tagged("c", "refund")],
        source="typed",
    )
    add_examples(
        db, project.id, [tagged("d", "technical", "R2")], source="drafted", status="pending"
    )
    add_examples(db, project.id, [tagged("e", "technical")], source="drafted", status="rejected")
    counts = coverage(TICKETS, list_examples(db, project.id))
    assert (counts.approved, counts.pending, counts.rejected, counts.off_spec) == (3, 1, 1, 1)
    by_label = {label: (c.approved, c.pending) for label, c in counts.by_label}
    assert by_label == {"billing": (2, 0), "technical": (0, 1)}
    by_requirement = {r.id: (c.approved, c.pending) for r, c in counts.by_requirement}
    assert by_requirement == {"R1": (2, 0), "R2": (1, 1)}
    text = describe_spec("tickets", TICKETS, counts)
    assert re.search(r"\n  technical +0  \(\+1 pending\)\n", text)
    assert "R2 tickets in German" in text
    record = spec_record(TICKETS, counts, 4)
    assert record["coverage"]["labels"]["billing"] == {"approved": 2, "pending": 0}
    assert record["missing"] == ["system_prompt"]


def test_labels_inside_json_answers_and_output_problems() -> None:
    spec = TaskSpec(output_kind="json", json_fields=("category", "urgent"), labels=("billing",))
    assert label_of(spec, '{"category": "BILLING", "urgent": true}') == "billing"
    assert output_problem(spec, '{"category": "billing", "urgent": true}') is None
    assert output_problem(spec, '{"category": "billing"}') == "the answer lacks the key urgent"
    assert output_problem(spec, "billing") == "the answer is not valid JSON"
    extra = output_problem(spec, '{"category": 1, "urgent": 2, "x": 3}')
    assert extra == "the answer has unexpected key x"
    assert (
        output_problem(TICKETS, "refund")
        == "'refund' is not one of the labels (billing, technical)"
    )


def test_proposed_system_prompt_reads_as_instructions() -> None:
    prompt = proposed_system_prompt(TICKETS)
    assert prompt == (
        "Classify support tickets. The input is the text of one ticket. Answer with exactly one"
        " of these labels and nothing else: billing, technical. Never invent labels."
    )
    json_prompt = proposed_system_prompt(
        TaskSpec(output_kind="json", json_fields=("a", "b"), json_sample='{"a": 1, "b": 2}')
    )
    assert 'keys a, b. Example of the format: {"a": 1, "b": 2}' in json_prompt


def test_requirements_keep_their_ids() -> None:
    spec = with_requirements(TICKETS, ["tickets in German", "refund requests"], replace_all=True)
    assert [(r.id, r.text) for r in spec.requirements] == [
        ("R2", "tickets in German"),
        ("R3", "refund requests"),
    ]
    appended = with_requirements(TICKETS, ["spam"], replace_all=False)
    assert [r.id for r in appended.requirements] == ["R1", "R2", "R3"]


def test_transcript_rows(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "tickets")
    for index in range(5):
        add_message(db, project.id, "user" if index % 2 else "assistant", f"turn {index}")
    assert count_messages(db, project.id) == 5
    assert [m.content for m in list_messages(db, project.id, last=2)] == ["turn 3", "turn 4"]
    with pytest.raises(InputError, match="role"):
        add_message(db, project.id, "system", "nope")
