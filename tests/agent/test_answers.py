"""The recognisers of guided mode: what an answer, a short reply and a typed example look like."""

from __future__ import annotations

import pytest

from agent import answers, phrasing, typed_examples


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
        (
            "route support tickets to billing, bug, account or shipping",
            ("billing", "bug", "account", "shipping"),
        ),
        ("route tickets to the right team", None),
        ("forward each email to sales or support.", ("sales", "support")),
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
    ("text", "pairs", "problems", "waiting"),
    [
        ("Input: a\nOutput: b", [("a", "b")], 0, None),
        ("Input: a Output: b Input: c Output: d", [("a", "b"), ("c", "d")], 0, None),
        ("Q: a?\nA: b", [("a?", "b")], 0, None),
        ('Input: "quoted"\nLabel: x', [("quoted", "x")], 0, None),
        (
            'Input: one\nline two\n\nOutput: {\n  "k": 1\n}',
            [("one\nline two", '{\n  "k": 1\n}')],
            0,
            None,
        ),
        ("Input: a\nInput: c\nOutput: d", [("c", "d")], 1, None),
        # An input alone waits for its output, which may come in the next message.
        ("Input: only an input", [], 0, "only an input"),
        ("Input: a Output: b Input: c", [("a", "b")], 0, "c"),
        ("Input:", [], 1, None),
        # An output alone is an example's answer that lacks its input, never a statement.
        ("Output: bug", [], 1, None),
        # Sentence punctuation before an inline marker, as a new line lost on the way leaves it.
        (
            "Input: You charged my card twice.Output: billing",
            [("You charged my card twice.", "billing")],
            0,
            None,
        ),
    ],
)
def test_parse_pairs(
    text: str, pairs: list[tuple[str, str]], problems: int, waiting: str | None
) -> None:
    parsed = typed_examples.parse_pairs(text)
    assert parsed is not None
    assert list(parsed.pairs) == pairs
    assert len(parsed.problems) == problems
    assert parsed.waiting == waiting


def test_an_output_completes_the_input_held_from_an_earlier_message() -> None:
    parsed = typed_examples.parse_pairs("Output: billing\nInput: next one", held="card charged")
    assert parsed is not None
    assert parsed.pairs == (("card charged", "billing"),) and parsed.waiting == "next one"


def test_no_pairs_in_plain_statements() -> None:
    assert typed_examples.parse_pairs("The input: an email from a customer") is None
    assert typed_examples.parse_pairs("I have a question: what do you need?") is None
    assert typed_examples.parse_pairs("The output: one label") is None


@pytest.mark.parametrize(
    ("text", "example"),
    [
        ("Output: bug", True),
        ("  Input: a card charged twice", True),
        ("A: billing", True),
        ("where is my parcel? -> shipping", True),
        ("never answer with anything but a label", False),
        ("The output: one label", False),
        ("angry customers", False),
    ],
)
def test_looks_like_example(text: str, example: bool) -> None:
    assert typed_examples.looks_like_example(text) is example


def test_example_lines_are_never_cases_or_rules() -> None:
    assert answers.cases_statement("Cases: angry customers; Output: billing") == ["angry customers"]
    assert answers.rules_statement("Rules: never guess.\nOutput: bug") == ["never guess"]


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
    assert phrasing.looks_like_junk(text) is junk


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


@pytest.mark.parametrize(
    ("text", "declined"),
    [
        ("no style", ("style", "")),
        ("No style, just the label", ("style", "just the label")),
        ("no rules.", ("constraints", "")),
        ("without special cases", ("requirements", "")),
        ("no system prompt", ("system_prompt", "")),
        ("no, the labels are a, b", None),
        ("no stylist needed", None),
        ("nope", None),
    ],
)
def test_declined_part(text: str, declined: tuple[str, str] | None) -> None:
    assert phrasing.declined_part(text) == declined


def test_statements_and_small_answers() -> None:
    assert phrasing.split_correction("No, the labels are a, b") == (True, "the labels are a, b")
    assert phrasing.split_correction("Nobody knows") == (False, "Nobody knows")
    assert phrasing.is_skip("skip") and phrasing.is_skip("None.") and not phrasing.is_skip("no, x")
    assert (
        phrasing.is_yes("Yes please")
        and phrasing.is_yes("looks good!")
        and not phrasing.is_yes("yes, but")
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
    records = typed_examples.pasted_rows('[{"prompt": "a", "response": "b"}, {"x": 1}]')
    assert records is not None and len(records.examples) == 1
    assert str(records.rejected[0]).startswith("line 1: no known fields")
    assert typed_examples.pasted_rows('{"name": "Ada"}') is None
    assert typed_examples.pasted_rows("prompt\tresponse\nhi\thello") is not None
    assert typed_examples.pasted_rows("a,b\n1,2") is None


@pytest.mark.parametrize(
    ("lines", "unfinished"),
    [
        # An input and its output on separate lines are two messages: the interview pairs them.
        ("Input: a", False),
        ("Input:", True),
        ("Output:", True),
        ("Output: {", True),
        ("Output: billing", False),
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
    assert typed_examples.needs_more_lines(lines) is unfinished
