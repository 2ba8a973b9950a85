"""Example intake: storing the examples a message holds (pairs, pasted rows, a file) and saying
what was saved and which answers do not fit the spec."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent import answers, typed_examples
from agent.phrasing import clip
from agent.spec import output_problem
from agent.spec_edits import with_json_sample
from store.errors import TunesmithError
from store.examples import AddResult, ChatMessage, NewExample, add_examples, validate_text
from store.imports import ParsedFile, read_examples
from store.vocabulary import ExampleSource

if TYPE_CHECKING:
    from agent.spec_session import SpecSession


MAX_REPORTED_PROBLEMS = 5
"""Rejected rows or notes listed in one reply; the rest are counted."""


def examples_in(session: SpecSession, body: str) -> str | None:
    """Store the examples ``body`` holds (pairs, pasted rows, a file); None if it holds none."""
    path = typed_examples.importable_path(body, session.cwd)
    if path is not None:
        return store_parsed(session, read_examples(path), source="imported", origin=str(path))
    records = typed_examples.pasted_rows(body)
    if records is not None:
        return store_parsed(session, records, source="imported", origin="the pasted rows")
    parsed = typed_examples.parse_pairs(body)
    if parsed is not None:
        pairs: list[NewExample] = []
        problems = list(parsed.problems)
        for prompt, response in parsed.pairs:
            try:
                pairs.append(typed_example(prompt, response))
            except TunesmithError as error:
                problems.append(error.message)
        if not pairs:
            return (
                f"I could not read that as an example: {'; '.join(problems)}. "
                'Type it as "Input: ... Output: ..."'
            )
        result = store_examples(session, pairs, source="typed")
        text = saved_line(session, result) + fit_notes(session, pairs)
        if problems:
            text += "\nNot saved: " + "; ".join(problems[:MAX_REPORTED_PROBLEMS])
        return text + "\n" + session.next_question()
    if session.spec.output_kind is not None:
        arrows = typed_examples.parse_arrow_pairs(body)
        if arrows:
            try:
                new_pairs = [typed_example(prompt, response) for prompt, response in arrows]
            except TunesmithError as error:
                return f"I could not read that as examples: {error.message}"
            result = store_examples(session, new_pairs, source="typed")
            return (
                saved_line(session, result)
                + fit_notes(session, new_pairs)
                + "\n"
                + session.next_question()
            )
    return None


def store_parsed(
    session: SpecSession, parsed: ParsedFile, *, source: ExampleSource, origin: str
) -> str:
    """Store the valid rows of ``parsed`` and say what was saved and which rows were not usable."""
    if not parsed.examples:
        reasons = "; ".join(str(r) for r in parsed.rejected[:MAX_REPORTED_PROBLEMS])
        return f"No usable examples in {origin}" + (f": {reasons}" if reasons else ".")
    result = store_examples(session, parsed.examples, source=source)
    text = saved_line(session, result, origin=origin) + fit_notes(session, parsed.examples)
    if parsed.rejected:
        text += f"\n{len(parsed.rejected)} rows were not usable:" + "".join(
            f"\n  {r}" for r in parsed.rejected[:MAX_REPORTED_PROBLEMS]
        )
        if len(parsed.rejected) > MAX_REPORTED_PROBLEMS:
            text += f"\n  ... and {len(parsed.rejected) - MAX_REPORTED_PROBLEMS} more"
    return text + "\n" + session.next_question()


def store_examples(
    session: SpecSession, examples: Sequence[NewExample], *, source: ExampleSource
) -> AddResult:
    """Add ``examples`` to the project, and take the answer format from them when none is known."""
    result = add_examples(session.db, session.project_id, examples, source=source)
    _infer_output_from(session, examples)
    return result


def _infer_output_from(session: SpecSession, examples: Sequence[NewExample]) -> None:
    """With no answer format yet (or JSON without its keys), answers that are all JSON
    objects with one key set set it."""
    json_without_keys = session.spec.output_kind == "json" and not session.spec.json_fields
    if (session.spec.output_kind is not None and not json_without_keys) or not examples:
        return
    key_sets = set()
    first: dict[str, object] | None = None
    for example in examples:
        try:
            value = json.loads(example.messages[-1].content)
        except (json.JSONDecodeError, RecursionError):
            return
        if not isinstance(value, dict) or not value:
            return
        key_sets.add(tuple(value))
        first = first or value
    if len(key_sets) == 1 and first is not None:
        sample = answers.JsonSample(
            tuple(first), json.dumps(first, ensure_ascii=False), dict(first)
        )
        session.save(with_json_sample(session.spec, sample), ["output"])


def saved_line(session: SpecSession, result: AddResult, origin: str | None = None) -> str:
    """How many examples were saved (and where from), against the target."""
    total = session.example_count()
    where = f" from {origin}" if origin else ""
    noun = "example" if result.added == 1 else "examples"
    text = f"Saved {result.added} {noun}{where}"
    if result.duplicates:
        text += f" ({result.duplicates} already there)"
    return text + f"; you have {total} of the {session.spec.example_target} to aim for."


def fit_notes(session: SpecSession, examples: Sequence[NewExample]) -> str:
    """Lines naming the answers that do not fit the spec's output format; empty when all fit."""
    notes = []
    for example in examples:
        problem = output_problem(session.spec, example.messages[-1].content)
        if problem is not None:
            notes.append(f"{clip(_prompt_of(example), 30)}: {problem}")
    if not notes:
        return ""
    shown = "".join(f"\n  {note}" for note in notes[:MAX_REPORTED_PROBLEMS])
    more = len(notes) - MAX_REPORTED_PROBLEMS
    return "\nCheck these answers:" + shown + (f"\n  ... and {more} more" if more > 0 else "")


def typed_example(prompt: str, response: str) -> NewExample:
    """A typed example from an input and an answer; InputError when either is unusable."""
    return NewExample(
        messages=(
            ChatMessage("user", validate_text(prompt.strip(), "input")),
            ChatMessage("assistant", validate_text(response.strip(), "output")),
        )
    )


def _prompt_of(example: NewExample) -> str:
    return next((m.content for m in example.messages if m.role == "user"), "")
