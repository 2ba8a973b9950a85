"""The task spec, its coverage, the transcript rows, and the recognisers of guided mode."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent import answers
from agent.spec import (
    Requirement,
    TaskSpec,
    coverage,
    describe_spec,
    label_of,
    load_spec,
    missing_parts,
    output_problem,
    proposed_system_prompt,
    save_spec,
    spec_record,
    with_requirements,
)
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "The labels are billing, technical, account and shipping.",
            ("billing", "technical", "account", "shipping"),
        ),
        ("labels: a1, b2, c3", ("a1", "b2", "c3")),
        ("Categories should be one of: spam / ham", ("spam", "ham")),
        ("classify tickets into urgent or not urgent", ("urgent", "not urgent")),
        ("It answers with one of positive, negative, neutral", ("positive", "negative", "neutral")),
        ("the labels should be short", None),
        ("sort emails into folders", None),
        ("I need a model that classifies customer support tickets.", None),
    ],
)
def test_labels_statement(text: str, expected: tuple[str, ...] | None) -> None:
    assert answers.labels_statement(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("billing, technical and account", ("billing", "technical", "account")),
        ("- billing\n- technical\n- account", ("billing", "technical", "account")),
        ('"yes", "no"', ("yes", "no")),
        ("a short reply that thanks the customer", None),
        ("the subject, the body", None),
        ("one", None),
    ],
)
def test_bare_label_list(text: str, expected: tuple[str, ...] | None) -> None:
    assert answers.parse_label_list(text) == expected


@pytest.mark.parametrize(
    ("text", "pairs", "problems"),
    [
        ("Input: a\nOutput: b", [("a", "b")], 0),
        ("Input: a Output: b Input: c Output: d", [("a", "b"), ("c", "d")], 0),
        ("Q: a?\nA: b", [("a?", "b")], 0),
        ('Input: "quoted"\nLabel: x', [("quoted", "x")], 0),
        (
            'Input: one\nline two\n\nOutput: {\n  "k": 1\n}',
            [("one\nline two", '{\n  "k": 1\n}')],
            0,
        ),
        ("Input: a\nInput: c\nOutput: d", [("c", "d")], 1),
        ("Input: only an input", [], 1),
    ],
)
def test_parse_pairs(text: str, pairs: list[tuple[str, str]], problems: int) -> None:
    parsed = answers.parse_pairs(text)
    assert parsed is not None
    assert list(parsed.pairs) == pairs
    assert len(parsed.problems) == problems


def test_no_pairs_in_plain_statements() -> None:
    assert answers.parse_pairs("The input: an email from a customer") is None
    assert answers.parse_pairs("I have a question: what do you need?") is None


@pytest.mark.parametrize(
    ("text", "junk"),
    [
        ("asdf", False),
        ("%%% ###", True),
        ("sdfghjk", True),
        ("aaaaaaa", True),
        ("", True),
        ("the text of one email", False),
        ("SQL queries", False),
    ],
)
def test_junk(text: str, junk: bool) -> None:
    assert answers.looks_like_junk(text) is junk


@pytest.mark.parametrize(
    ("text", "goal"),
    [
        (
            "I need a model that classifies customer support tickets.",
            "classify customer support tickets",
        ),
        ("Hi! I'd like to build a small classifier that sorts emails", "sort emails"),
        ("The goal is to summarize meeting notes", "summarize meeting notes"),
        ("I want to translate menus", "translate menus"),
        ("Summaries please", None),
    ],
)
def test_goal_statement(text: str, goal: str | None) -> None:
    assert answers.goal_statement(text) == goal


def test_statements_and_small_answers() -> None:
    assert answers.split_correction("No, the labels are a, b") == (True, "the labels are a, b")
    assert answers.split_correction("Nobody knows") == (False, "Nobody knows")
    assert answers.is_skip("skip") and answers.is_skip("None.") and not answers.is_skip("no, x")
    assert (
        answers.is_yes("Yes please")
        and answers.is_yes("looks good!")
        and not answers.is_yes("yes, but")
    )
    assert answers.input_statement("The input is one support email") == "one support email"
    assert answers.output_statement("It should answer with a JSON object") == "a JSON object"
    assert answers.json_fields_statement("JSON with the keys name, email and order number") == (
        "name",
        "email",
        "order_number",
    )
    assert answers.rules_statement("Never guess. Always be polite.") == [
        "Never guess",
        "Always be polite",
    ]
    assert answers.rules_statement("use null when unknown") is None
    assert answers.rules_statement("use null when unknown", imperatives=True) == [
        "use null when unknown"
    ]
    assert answers.cases_statement("cases: angry customers, refunds and returns") == [
        "angry customers",
        "refunds and returns",
    ]
    assert answers.target_statement("let's aim for 200 examples") == 200
    assert answers.system_prompt_statement("System prompt: You are terse.") == "You are terse."


def test_json_sample_and_pasted_rows() -> None:
    sample = answers.parse_json_sample('```json\n{"a": 1, "b": [1, 2],}\n```')
    assert isinstance(sample, answers.JsonSample) and sample.fields == ("a", "b")
    assert str(answers.parse_json_sample('{"a": ')) == "the JSON object is not closed"
    assert answers.parse_json_sample("no json here") is None
    assert answers.parse_json_sample("this {is} prose") is None
    records = answers.parse_pasted_records('[{"prompt": "a", "response": "b"}, {"x": 1}]')
    assert records is not None and len(records.examples) == 1
    assert str(records.rejected[0]).startswith("item 2: no known fields")
    assert answers.parse_pasted_records('{"name": "Ada"}') is None
    assert answers.parse_pasted_csv("prompt\tresponse\nhi\thello") is not None
    assert answers.parse_pasted_csv("a,b\n1,2") is None


@pytest.mark.parametrize(
    ("lines", "unfinished"),
    [
        ("Input: a", True),
        ("Input: a\nOutput:", True),
        ("Input: a\nOutput: {", True),
        ("Input: a\nOutput: b", False),
        ("The input: an email", False),
        ("```\nx", True),
        ("{", True),
        ("line one \\", True),
        ("plain", False),
        ("input,output", True),
        ("input,output\nhi,greeting", True),
        ("input,output\nhi,greeting\n", False),
    ],
)
def test_needs_more_lines(lines: str, unfinished: bool) -> None:
    assert answers.needs_more_lines(lines) is unfinished
