"""One new input at a time from a weak teacher: the few-shot chat that asks for it, and the
checks its answer must pass before it becomes a draft.

A small model cannot write whole examples as JSON lines, but shown a few approved inputs it
writes another one on a line. The draft's answer then comes from a labeller, not from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from agent.jsontext import JsonTextError, loads_lenient
from agent.spec import Requirement, TaskSpec, label_of
from store.errors import InputError
from store.examples import Example, validate_text

INPUT_SHOTS = 8
"""Approved inputs shown to a weak teacher before it writes another."""

MIN_INPUT_WORDS = 3
"""Fewest words a drafted input has; shorter lines are fragments, bare labels or echoes."""

MAX_INPUT_TOKENS = 60
"""Longest answer asked of a weak teacher: one short input."""

INPUT_TEMPERATURE = 0.9
"""Sampling temperature for new inputs: varied, yet still on the task."""

INPUT_TOP_P = 0.95
"""Nucleus sampling cut-off, so a rare token does not derail a short line."""

END_OF_LINE = "\n"
"""Where a weak teacher's answer stops: one input is one line."""

_INPUT_KEYS = ("input", "prompt", "question", "text")
_ARTICLE = re.compile(r"^(?:a|an|the|one|each|some)\s+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.):])\s+")
_QUOTE_PAIRS = ('""', "''", "``", "“”", "‘’", "«»")


@dataclass(frozen=True)
class InputShot:
    """An approved input shown to the teacher, with what it was asked to be."""

    text: str
    label: str | None = None
    requirement: Requirement | None = None


def input_noun(spec: TaskSpec) -> str:
    """What one input is called, from the spec ("one support ticket" -> "support ticket")."""
    description = " ".join((spec.input_description or "").split()).rstrip(".")
    return _ARTICLE.sub("", description) or "input"


def input_shots(spec: TaskSpec, examples: Sequence[Example]) -> list[InputShot]:
    """Up to INPUT_SHOTS approved, answered inputs (typed ones first), each with its label
    and the first case it is tagged with."""
    approved = [e for e in examples if e.status == "approved" and e.answered and e.prompt.strip()]
    typed_first = sorted(approved, key=lambda e: (e.source != "typed", e.id))
    requirements = {r.id: r for r in spec.requirements}
    shots = []
    for example in typed_first[:INPUT_SHOTS]:
        requirement = next((requirements[t] for t in example.tags if t in requirements), None)
        shots.append(
            InputShot(
                text=" ".join(example.prompt.split()),
                label=label_of(spec, example.response) if spec.output_kind == "labels" else None,
                requirement=requirement,
            )
        )
    return shots


def input_request(spec: TaskSpec, label: str | None, requirement: Requirement | None) -> str:
    """What the teacher is asked for one input: a new one, with its label and case if any."""
    request = f"Write a new {input_noun(spec)}"
    if label:
        request += f" whose answer is {label}"
    request += "."
    if requirement is not None:
        request += f" It is about: {requirement.text}."
    return request


def input_messages(
    spec: TaskSpec,
    shots: Sequence[InputShot],
    label: str | None,
    requirement: Requirement | None,
) -> list[BaseMessage]:
    """The few-shot chat: each shot asked for and written, then the request for a new input."""
    noun = input_noun(spec)
    goal = f" for this task: {spec.goal}" if spec.goal else ""
    messages: list[BaseMessage] = [
        SystemMessage(
            f"You write one realistic {noun} at a time{goal}."
            f" Answer with the {noun} alone, on one line."
        )
    ]
    for shot in shots:
        messages.append(HumanMessage(input_request(spec, shot.label, shot.requirement)))
        messages.append(AIMessage(shot.text))
    messages.append(HumanMessage(input_request(spec, label, requirement)))
    return messages


def clean_input(answer: str, spec: TaskSpec, *, cut_short: bool = False) -> str:
    """The input a weak teacher wrote: its first line, without list marks, quotes or a leading
    "Input:", and, when it ran out of tokens (``cut_short``), without its unfinished last
    sentence; raises InputError saying why the answer is no input."""
    line = next((text.strip() for text in answer.splitlines() if text.strip()), "")
    if line.startswith("{"):
        line = _input_of_record(line)
    if cut_short:
        ends = [match.end() for match in _SENTENCE_END.finditer(line)]
        if not ends:
            raise InputError("the answer was cut off before its first sentence ended")
        line = line[: ends[-1]]
    line = _LIST_MARK.sub("", line)
    prefix = re.compile(rf"^(?:input|new input|{re.escape(input_noun(spec))})\s*:\s*", re.I)
    line = _unquoted(prefix.sub("", line)).strip()
    if not line:
        raise InputError("the answer is empty")
    if line.casefold().startswith("write a new"):
        raise InputError("the answer repeats the request")
    if len(line.split()) < MIN_INPUT_WORDS:
        raise InputError(f"{json.dumps(line, ensure_ascii=False)} is too short to be an input")
    return validate_text(line, "input")


def _input_of_record(line: str) -> str:
    """The input of a JSON line, as a teacher that imitates JSON examples writes it."""
    try:
        record = loads_lenient(line)
    except JsonTextError:
        return line
    if isinstance(record, dict):
        text = next((record[key] for key in _INPUT_KEYS if key in record), None)
        if isinstance(text, str):
            return text
    return line


def _unquoted(text: str) -> str:
    """``text`` without one pair of quotes around it."""
    stripped = text.strip()
    for pair in _QUOTE_PAIRS:
        if len(stripped) > 1 and stripped[0] == pair[0] and stripped[-1] == pair[1]:
            return stripped[1:-1]
    return stripped
