"""Example intake: storing the examples a message holds (pairs, pasted rows, a file), saying
what was saved and which answers do not fit the spec, and the input that waits for its output.

An "Input:" message without its output is held until the output comes in a later message, and
so is a bare message where examples are asked for, when a bare answer can follow it (a label, a
JSON object). The transcript is the record of it: every session of the project (the app,
``tunesmith chat``) reads the same held input back from the person's latest messages and the
replies that said they were held.

Lines after an "Input:" are more of that input (a message typed line by line). After a bare
input, a message that is no answer is read as the next input: one review after another without
its label is likelier than one review over two messages, and merging two inputs into one row is
the worse mistake. The input whose output did not come is kept as a row without an answer, to
label later, so nothing typed is lost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from agent import answers, phrasing, typed_examples
from agent.phrasing import clip, short
from agent.spec import TaskSpec, match_label, output_known, output_problem
from agent.spec_edits import with_json_sample
from store.errors import TunesmithError
from store.examples import (
    AddResult,
    ChatMessage,
    Example,
    NewExample,
    add_examples,
    content_hash,
    list_examples,
    unlabeled_example,
    validate_text,
)
from store.imports import ParsedFile, read_examples
from store.messages import TranscriptMessage
from store.vocabulary import ExampleSource

if TYPE_CHECKING:
    from agent.spec_session import SpecSession


MAX_REPORTED_PROBLEMS = 5
"""Rejected rows or notes listed in one reply; the rest are counted."""


SAVED_OUTPUT_CHARS = 30
"""How much of a saved example's output the reply quotes."""


HELD_INPUT = "Got the input"
"""How the reply that holds an input for its output begins."""


NOT_AN_OUTPUT = "Not an output:"
"""How the reply begins that refuses a short message as the held input's output (a mistyped
label): the input stays as it was."""


HeldStep = Literal["output", "drop", "new", "more"]
"""What a message does to a held input: gives its output, drops it, starts something new
(which drops it too), or adds lines to it."""


@dataclass(frozen=True)
class HeldInput:
    """An input waiting for its output, and whether it came bare (without an "Input:" marker):
    after a bare input, a message that is no answer is the next input, not more of its lines."""

    text: str
    bare: bool


@dataclass(frozen=True)
class Stored:
    """What adding examples did: the counts, and the rows it added, oldest first."""

    result: AddResult
    added: tuple[Example, ...]


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
        return _store_pairs(session, parsed)
    lines = typed_examples.parse_arrow_pairs(body) or _labelled_lines(session, body)
    if lines:
        try:
            new_pairs = [typed_example(prompt, response) for prompt, response in lines]
        except TunesmithError as error:
            return f"I could not read that as examples: {error.message}"
        stored = store_examples(session, new_pairs, source="typed")
        return (
            saved_line(session, stored)
            + fit_notes(session, new_pairs)
            + "\n"
            + session.next_question()
        )
    return _raw_messages_offer(session, body)


def _labelled_lines(session: SpecSession, body: str) -> list[tuple[str, str]] | None:
    """The "input - label" lines of ``body`` once a classifier's labels are known and the
    questions before the examples are answered (before that, a line may be about the task)."""
    spec = session.spec
    if spec.output_kind != "labels" or len(spec.labels) < 2:
        return None
    pairs = typed_examples.parse_labelled_lines(body, lambda text: match_label(spec, text))
    return pairs if pairs and session.pending() in ("examples", None) else None


MIN_PASTED_MESSAGES = 3
"""Lines a paste needs before it is read as a list of messages without answers."""


def _raw_messages_offer(session: SpecSession, body: str) -> str | None:
    """Offer to store a pasted list of messages as unlabeled inputs; None when ``body`` is no
    such list. Only once the task is described: before that, lines are its description."""
    lines = [line for line in body.splitlines() if line.strip()]
    if len(lines) < MIN_PASTED_MESSAGES or not session.spec.goal or not output_known(session.spec):
        return None
    return (
        f"Those look like {len(lines)} messages without answers. Send /unlabeled to store them"
        " as inputs to label: a model proposes each answer and you accept or correct it"
        " (the Dataset area's queue, key l)."
    )


def store_unlabeled(session: SpecSession, parsed: ParsedFile, *, origin: str) -> str:
    """Store the inputs of ``parsed`` as pending rows without an answer, and say what was saved
    and how to label them."""
    if not parsed.examples:
        reasons = "; ".join(str(r) for r in parsed.rejected[:MAX_REPORTED_PROBLEMS])
        return f"No usable inputs in {origin}" + (f": {reasons}" if reasons else ".")
    result = add_examples(
        session.db, session.project_id, parsed.examples, source="imported", status="pending"
    )
    noun = "input" if result.added == 1 else "inputs"
    text = f"Stored {result.added} {noun} without answers from {origin}"
    if result.duplicates:
        text += f" ({result.duplicates} already there)"
    text += ". " + _where_to_label(session, "them")
    if parsed.rejected:
        text += f"\n{len(parsed.rejected)} lines were not usable:" + "".join(
            f"\n  {r}" for r in parsed.rejected[:MAX_REPORTED_PROBLEMS]
        )
    return text


def _where_to_label(session: SpecSession, rows: str) -> str:
    """Where the person labels stored inputs, ``rows`` naming them ("it", "them")."""
    return (
        f"Label {rows} in the Dataset area (F3, then l; g has a model propose answers), or:"
        f" tunesmith label {session.project_name}"
    )


def held_input(session: SpecSession, transcript: Sequence[TranscriptMessage]) -> HeldInput | None:
    """The input the person typed without its output and has neither completed nor dropped
    since, read back from ``transcript`` (oldest first), with any lines added to it."""
    added_lines: list[str] = []
    reply = ""
    for message in reversed(transcript):
        body = message.content.strip()
        if message.role != "user":
            reply = body
            continue
        if not body:
            continue
        if body.startswith("/"):
            if _is_skip_command(body):
                return None
            continue
        if reply.startswith(NOT_AN_OUTPUT):
            continue
        if _held_step(session, body) != "more":
            parsed = typed_examples.parse_pairs(body)
            waiting = parsed.waiting if parsed is not None else None
            if waiting is None:
                return None
            return HeldInput("\n".join([waiting, *reversed(added_lines)]), bare=False)
        if any(line.startswith(HELD_INPUT) for line in reply.splitlines()):
            # A bare input, held as its reply said.
            return HeldInput("\n".join([body, *reversed(added_lines)]), bare=True)
        added_lines.append(body)
    return None


def hold_input(session: SpecSession, body: str) -> str | None:
    """Hold ``body``, a bare message where examples are asked for, as an input waiting for its
    output; None where no bare answer could be told from more lines of it (free text)."""
    if session.spec.output_kind not in ("labels", "json"):
        return None
    if phrasing.is_junk_answer(body, min_words=2):
        return None
    return f"{HELD_INPUT} {short(body)}. " + waiting_hint(session)


def continue_held(session: SpecSession, held: HeldInput, body: str) -> str | None:
    """Read ``body`` as the next part of the example whose input ``held`` waits: its output
    (after an output marker, or a bare label or JSON answer), a skip that drops it, more lines
    of a marked input, or the input after a bare one. None when ``body`` starts something new:
    the caller keeps ``held`` to label later (``keep_unlabeled``)."""
    step = _held_step(session, body)
    if step == "new":
        return None
    if step == "drop":
        return skip_held(session, held.text)
    if step == "more":
        if held.bare:
            return _next_input(session, held, body)
        lines = len(f"{held.text}\n{body}".splitlines())
        return f"Added that to the input ({lines} lines now). " + waiting_hint(session)
    parsed = typed_examples.parse_pairs(body, held=held.text)
    return _store_pairs(session, parsed or typed_examples.PairParse(((held.text, body),)))


def _next_input(session: SpecSession, held: HeldInput, body: str) -> str:
    """After a bare input, ``body`` that is no answer: the next input, which keeps the first to
    label later; or, too short to be an input, a mistyped answer the first still waits for."""
    next_held = hold_input(session, body)
    if next_held is None:
        problem = output_problem(session.spec, body) or f"{short(body)} is not an answer"
        return (
            f"{NOT_AN_OUTPUT} {problem}. The input {short(held.text)} still waits for it. "
            + waiting_hint(session)
        )
    return keep_unlabeled(session, held.text) + "\n" + next_held


def keep_unlabeled(session: SpecSession, held: str) -> str:
    """Keep an input whose output did not come as a row without an answer, and say where to
    label it; a held input that cannot be stored is dropped, with the reason."""
    try:
        example = unlabeled_example(held.strip())
    except TunesmithError as error:
        return f"Dropped the input {short(held)}: {error.message}."
    result = add_examples(
        session.db, session.project_id, [example], source="typed", status="pending"
    )
    kept = "is stored already" if result.duplicates else "is kept without its output"
    return (
        f"The input {short(held)} {kept}, as its output did not come next. "
        + _where_to_label(session, "it")
        + "."
    )


def skip_held(session: SpecSession, held: str) -> str:
    """Drop the held input at the person's word ("skip", ``/skip``), and ask the next question."""
    return f"Dropped the input {short(held)}.\n" + session.next_question()


def still_waiting(held: str) -> str:
    """The reminder, after a command, that an input still waits for its output."""
    return f"(The input {short(held)} still waits for its Output.)"


def waiting_hint(session: SpecSession) -> str:
    """What to type now that an input waits for its output."""
    bare = " or just the label" if session.spec.output_kind == "labels" else ""
    return f'Now its Output: type "Output: ..."{bare}, or /skip to drop the input.'


def _held_step(session: SpecSession, body: str) -> HeldStep:
    marker = typed_examples.leading_marker(body)
    if marker == "output" or _bare_output(session.spec, body):
        return "output"
    if phrasing.is_skip(body):
        return "drop"
    if (
        typed_examples.looks_like_example(body)
        or _labelled_lines(session, body) is not None
        or typed_examples.parse_pairs(body) is not None
        or typed_examples.pasted_rows(body) is not None
        or typed_examples.importable_path(body, session.cwd) is not None
    ):
        return "new"
    return "more"


def _bare_output(spec: TaskSpec, body: str) -> bool:
    """Whether ``body``, sent right after an input, is plainly its answer: one of the labels,
    or a JSON object when answers are JSON (or not yet known)."""
    if spec.output_kind == "labels":
        return match_label(spec, body) is not None
    return spec.output_kind in (None, "json") and body.startswith("{")


def _is_skip_command(body: str) -> bool:
    return body.split(maxsplit=1)[0].lower() == "/skip"


def _store_pairs(session: SpecSession, parsed: typed_examples.PairParse) -> str:
    """Store the pairs of ``parsed``; say what was saved, what was not, and what comes next."""
    pairs: list[NewExample] = []
    problems = list(parsed.problems)
    for prompt, response in parsed.pairs:
        try:
            pairs.append(typed_example(prompt, response))
        except TunesmithError as error:
            problems.append(error.message)
    parts: list[str] = []
    if pairs:
        stored = store_examples(session, pairs, source="typed")
        parts.append(saved_line(session, stored) + fit_notes(session, pairs))
        if problems:
            parts.append("Not saved: " + "; ".join(problems[:MAX_REPORTED_PROBLEMS]))
    elif problems:
        parts.append(
            f"I could not read that as an example: {'; '.join(problems[:MAX_REPORTED_PROBLEMS])}."
            ' Type it as "Input: ... Output: ..."'
        )
    if parsed.waiting is not None:
        named = f" {short(parsed.waiting)}" if parts else ""
        parts.append(f"{HELD_INPUT}{named}. " + waiting_hint(session))
    else:
        parts.append(session.next_question())
    return "\n".join(parts)


def store_parsed(
    session: SpecSession, parsed: ParsedFile, *, source: ExampleSource, origin: str
) -> str:
    """Store the valid rows of ``parsed`` and say what was saved and which rows were not usable."""
    if not parsed.examples:
        reasons = "; ".join(str(r) for r in parsed.rejected[:MAX_REPORTED_PROBLEMS])
        return f"No usable examples in {origin}" + (f": {reasons}" if reasons else ".")
    stored = store_examples(session, parsed.examples, source=source)
    text = saved_line(session, stored, origin=origin) + fit_notes(session, parsed.examples)
    if parsed.rejected:
        text += f"\n{len(parsed.rejected)} rows were not usable:" + "".join(
            f"\n  {r}" for r in parsed.rejected[:MAX_REPORTED_PROBLEMS]
        )
        if len(parsed.rejected) > MAX_REPORTED_PROBLEMS:
            text += f"\n  ... and {len(parsed.rejected) - MAX_REPORTED_PROBLEMS} more"
    return text + "\n" + session.next_question()


def store_examples(
    session: SpecSession, examples: Sequence[NewExample], *, source: ExampleSource
) -> Stored:
    """Add ``examples`` to the project, and take the answer format from them when none is known."""
    result = add_examples(session.db, session.project_id, examples, source=source)
    _infer_output_from(session, examples)
    return Stored(result, _added_rows(session, examples, result.added))


def _added_rows(
    session: SpecSession, examples: Sequence[NewExample], count: int
) -> tuple[Example, ...]:
    """The ``count`` rows just added from ``examples``: the project's newest live rows with
    their contents (a duplicate's row is older than any row just added)."""
    if not count:
        return ()
    digests = {content_hash(example.messages) for example in examples}
    matching = [
        row for row in list_examples(session.db, session.project_id) if row.content_hash in digests
    ]
    return tuple(matching[-count:])


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


def saved_line(session: SpecSession, stored: Stored, origin: str | None = None) -> str:
    """Which examples were saved (their ids; one's output), from where, against the target."""
    rows = stored.added
    where = f" from {origin}" if origin else ""
    if len(rows) == 1:
        text = f"Saved example {rows[0].id}{where}: {clip(rows[0].response, SAVED_OUTPUT_CHARS)}"
    elif rows:
        text = f"Saved {_several([row.id for row in rows])}{where}"
    else:
        text = f"Saved nothing new{where}"
    if stored.result.duplicates:
        text += f" ({stored.result.duplicates} already there)"
    total = session.example_count()
    return text + f"; you have {total} of the {session.spec.example_target} to aim for."


def _several(ids: Sequence[int]) -> str:
    """Several example ids, short: "examples 3-5", "examples 3, 7, 9", "12 examples (3 to 40)"."""
    if ids[-1] - ids[0] == len(ids) - 1:
        return f"examples {ids[0]}-{ids[-1]}"
    if len(ids) <= 4:
        return "examples " + ", ".join(str(i) for i in ids)
    return f"{len(ids)} examples ({ids[0]} to {ids[-1]})"


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
