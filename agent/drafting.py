"""Drafting examples: a teacher model writes new inputs and answers that follow the spec.

Drafts go where coverage is thinnest (the labels and requirements with the fewest examples),
are dropped when they repeat an existing input exactly or nearly, and are stored as
``pending`` for the person to review, each as soon as it is made.

A strong teacher writes whole examples as JSON lines, in batches, parsed line by line (a bad
line is skipped with its reason). A weak one (a small model) writes one short input at a time
(``agent.draft_inputs``), and a labeller gives each its answer; an input without one waits
for the person to label it.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlite_utils
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agent.coverage import coverage
from agent.dedupe import DuplicateIndex
from agent.draft_inputs import (
    END_OF_LINE,
    INPUT_TEMPERATURE,
    INPUT_TOP_P,
    MAX_INPUT_TOKENS,
    InputShot,
    clean_input,
    input_messages,
    input_shots,
)
from agent.jsontext import JsonTextError, loads_lenient, strip_code_fences
from agent.models import call_failure, message_text
from agent.spec import (
    Requirement,
    TaskSpec,
    load_spec,
    match_label,
    output_known,
    output_problem,
)
from agent.spec_text import describe_output
from agent.work import Work
from store.errors import CancelledError, InputError, one_line_reason
from store.examples import (
    Example,
    NewExample,
    add_examples,
    list_examples,
    prompt_response,
    unlabeled_example,
    validate_text,
)
from store.projects import get_project_by_id

DRAFT_BATCH = 10
"""Examples asked of the teacher in one call; small batches keep answers well-formed."""

MAX_DRAFT = 200
"""Most examples one draft request may ask for."""

SAMPLE_EXAMPLES = 4
"""Existing examples shown to the teacher so it sees the format."""

CALLS_PER_INPUT = 3
"""Most calls a weak teacher gets per draft asked for, its retries included."""

WEAK_TEACHER_WARNING = (
    "The teacher is a small model, so drafts will be weak: it writes one short input at a"
    " time and a labeller gives the answers; review them closely. For better drafts name a"
    " stronger teacher, e.g. --teacher ollama:llama3.2, or --teacher gpt-4o-mini with"
    " OPENAI_API_KEY set."
)

Labeller = Callable[[str], str | None]
"""Gives a drafted input its answer (a tuned run, or the base model shown the approved
examples), or None when it cannot; the draft then waits for the person to label it."""

_INPUT_KEYS = ("input", "prompt", "question", "text")
_OUTPUT_KEYS = ("output", "response", "answer", "completion", "label")
_LEADING_NOISE = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.):])\s*(?=[{\[])")


@dataclass(frozen=True)
class DraftSlot:
    """What one drafted example should cover: a label, a requirement, or neither."""

    label: str | None = None
    requirement: Requirement | None = None


@dataclass(frozen=True)
class Draft:
    """A drafted example that fits the spec."""

    input: str
    output: str | None
    """None for an input still without an answer, which the person gives."""
    requirement_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SkippedDraft:
    """A line of a teacher's answer that was not used, and why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class DraftReport:
    """What a draft request did."""

    requested: int
    added: int
    """Drafts stored, with an answer or without one."""
    duplicates: int
    skipped: tuple[SkippedDraft, ...]
    calls: int
    """Calls made to the teacher."""
    error: str | None = None
    """Which model stopped answering and why, as a sentence, when one did."""
    unlabeled: int = 0
    """Drafts stored without an answer: the labeller could not give one, or there was none."""
    cancelled: bool = False
    """Whether the person cancelled; what was stored before stays."""


def plan_slots(spec: TaskSpec, examples: Sequence[Example], count: int) -> list[DraftSlot]:
    """``count`` slots spread over the labels and requirements that have the fewest examples."""
    counts = coverage(spec, examples)
    label_totals = {label: c.total for label, c in counts.by_label}
    requirement_totals = {r.id: c.total for r, c in counts.by_requirement}
    slots: list[DraftSlot] = []
    for _ in range(count):
        label = None
        if spec.labels:
            label = min(spec.labels, key=lambda name: label_totals[name])
            label_totals[label] += 1
        requirement = None
        if spec.requirements:
            requirement = min(spec.requirements, key=lambda r: requirement_totals[r.id])
            requirement_totals[requirement.id] += 1
        slots.append(DraftSlot(label, requirement))
    return slots


def draft_messages(
    spec: TaskSpec, slots: Sequence[DraftSlot], samples: Sequence[Example]
) -> list[BaseMessage]:
    """The request to the teacher: the spec, a few examples, and one line per slot."""
    spec_lines = [f"Goal: {spec.goal}"]
    if spec.input_description:
        spec_lines.append(f"Input: {spec.input_description}")
    spec_lines.append(f"Answer: {describe_output(spec)}")
    if spec.output_kind == "json" and spec.json_sample:
        spec_lines.append(f"Sample answer: {spec.json_sample}")
    spec_lines += [f"Rule: {rule}" for rule in spec.constraints]
    if spec.style:
        spec_lines.append(f"Style: {spec.style}")
    spec_lines += [f"Case {r.id}: {r.text}" for r in spec.requirements]
    if spec.output_kind == "json":
        output_hint = '{"...": "the JSON answer object"}'
    elif spec.output_kind == "labels":
        output_hint = '"one label"'
    else:
        output_hint = '"the answer text"'
    format_line = f'{{"input": "the input text", "output": {output_hint}, "requirements": ["R1"]}}'
    sample_lines = [
        json.dumps(
            {"input": e.prompt, "output": _sample_output(spec, e.response)}, ensure_ascii=False
        )
        for e in samples[:SAMPLE_EXAMPLES]
    ]
    slot_lines = []
    for number, slot in enumerate(slots, start=1):
        wants = []
        if slot.label:
            wants.append(f"answer label {slot.label}")
        if slot.requirement:
            wants.append(f"covers {slot.requirement.id} ({slot.requirement.text})")
        slot_lines.append(f"{number}. " + ("; ".join(wants) or "a new, different case"))
    request = "\n".join(
        [
            "Task spec:",
            *spec_lines,
            "",
            *(
                ["Existing examples (do not repeat them):", *sample_lines, ""]
                if sample_lines
                else []
            ),
            f"Write {len(slots)} new examples, one JSON object per line, nothing else:",
            format_line,
            '"requirements" lists the case ids an example covers ([] for none).',
            "Make the inputs realistic and different from each other.",
            *slot_lines,
        ]
    )
    return [
        SystemMessage(
            "You write training examples for fine-tuning a small model on one task."
            " Follow the task spec exactly and answer only with JSON lines."
        ),
        HumanMessage(request),
    ]


def parse_drafts(
    text: str, spec: TaskSpec, slots: Sequence[DraftSlot], *, where: str = "answer"
) -> tuple[list[Draft], list[SkippedDraft]]:
    """The drafts in a teacher's answer, and each line skipped with its reason."""
    body = strip_code_fences(text).strip()
    records: list[tuple[str, object]] = []
    if body.startswith("["):
        try:
            array = loads_lenient(body)
        except JsonTextError as error:
            return [], [SkippedDraft(where, f"not valid JSON ({error})")]
        if isinstance(array, list):
            records = [(f"{where}, item {i}", item) for i, item in enumerate(array, start=1)]
    if not records:
        for number, line in enumerate(body.splitlines(), start=1):
            if not line.strip() or line.strip().startswith("```"):
                continue
            cleaned = _LEADING_NOISE.sub("", line).strip()
            try:
                records.append((f"{where}, line {number}", loads_lenient(cleaned)))
            except JsonTextError as error:
                records.append((f"{where}, line {number}", error))
    drafts: list[Draft] = []
    skipped: list[SkippedDraft] = []
    for location, record in records:
        if isinstance(record, JsonTextError):
            skipped.append(SkippedDraft(location, f"not valid JSON ({record})"))
            continue
        try:
            slot = slots[len(drafts)] if len(drafts) < len(slots) else DraftSlot()
            drafts.append(_draft_from_record(record, spec, slot))
        except InputError as error:
            skipped.append(SkippedDraft(location, error.message))
    return drafts, skipped


def _draft_from_record(record: object, spec: TaskSpec, slot: DraftSlot) -> Draft:
    if not isinstance(record, dict):
        raise InputError("not a JSON object")
    prompt = next((record[k] for k in _INPUT_KEYS if k in record), None)
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError('no "input" text')
    validate_text(prompt, "input")
    answer = next((record[k] for k in _OUTPUT_KEYS if k in record), None)
    if spec.output_kind == "json":
        if isinstance(answer, str):
            try:
                answer = loads_lenient(answer)
            except JsonTextError as error:
                raise InputError(f'"output" is not a JSON object ({error})') from error
        if not isinstance(answer, dict):
            raise InputError('"output" is not a JSON object')
        output = json.dumps(answer, ensure_ascii=False)
    elif isinstance(answer, str) and answer.strip():
        output = answer.strip()
    else:
        raise InputError('no "output" text')
    if spec.output_kind == "labels":
        label = match_label(spec, output)
        if label is None:
            raise InputError(f"output {output[:40]!r} is not one of the labels")
        output = label
    problem = output_problem(spec, output)
    if problem is not None:
        raise InputError(problem)
    validate_text(output, "output")
    known_ids = {r.id for r in spec.requirements}
    claimed = record.get("requirements")
    if isinstance(claimed, list):
        ids = tuple(dict.fromkeys(str(i) for i in claimed if str(i) in known_ids))
    elif slot.requirement is not None:
        ids = (slot.requirement.id,)
    else:
        ids = ()
    return Draft(prompt.strip(), output, ids)


def draft_examples(
    db: sqlite_utils.Database,
    project_id: int,
    teacher: BaseChatModel,
    count: int,
    *,
    weak: bool = False,
    labeller: Labeller | None = None,
    work: Work | None = None,
) -> DraftReport:
    """Have ``teacher`` draft ``count`` new examples, storing each good one as pending at once.

    A strong teacher writes whole examples in batches. A ``weak`` one writes one input per call
    and ``labeller`` answers it; an input it cannot answer is stored without an answer.
    ``work`` hears "drafted n/N" after each stored draft, and its cancel stops drafting before
    the next model call, keeping what was stored.
    """
    if not 1 <= count <= MAX_DRAFT:
        raise InputError(f"draft between 1 and {MAX_DRAFT} examples at a time, not {count}")
    spec = load_spec(get_project_by_id(db, project_id))
    if not spec.goal or not output_known(spec):
        raise InputError(
            "the spec needs a goal and an answer format before a teacher can draft examples"
        )
    existing = list_examples(db, project_id)
    seen = DuplicateIndex()
    for example in existing:
        seen.add(example.prompt)
    slots = plan_slots(spec, existing, count)
    tally = _Tally(db, project_id, count, work or Work())
    try:
        if weak:
            _draft_inputs(teacher, spec, input_shots(spec, existing), slots, seen, labeller, tally)
        else:
            _draft_batches(teacher, spec, _samples(existing), slots, seen, tally)
    except CancelledError:
        tally.cancelled = True
    return DraftReport(
        requested=count,
        added=tally.added,
        duplicates=tally.duplicates,
        skipped=tuple(tally.skipped),
        calls=tally.calls,
        error=tally.error,
        unlabeled=tally.unlabeled,
        cancelled=tally.cancelled,
    )


@dataclass
class _Tally:
    """What a draft request has done so far; it stores each draft as it comes."""

    db: sqlite_utils.Database
    project_id: int
    requested: int
    work: Work
    added: int = 0
    unlabeled: int = 0
    duplicates: int = 0
    calls: int = 0
    skipped: list[SkippedDraft] = field(default_factory=list)
    error: str | None = None
    cancelled: bool = False

    def store(self, drafts: Sequence[Draft]) -> None:
        """Store ``drafts`` as pending now (a cancel or a crash keeps them), and say so."""
        for draft in drafts:
            if draft.output is None:
                row = unlabeled_example(draft.input)
            else:
                row = prompt_response(draft.input, draft.output)
            result = add_examples(
                self.db,
                self.project_id,
                [NewExample(messages=row.messages, tags=draft.requirement_ids)],
                source="drafted",
                status="pending",
            )
            self.added += result.added
            self.duplicates += result.duplicates
            if draft.output is None:
                self.unlabeled += result.added
        self.work.report(f"drafted {self.added}/{self.requested}")


def _draft_batches(
    teacher: BaseChatModel,
    spec: TaskSpec,
    samples: Sequence[Example],
    slots: Sequence[DraftSlot],
    seen: DuplicateIndex,
    tally: _Tally,
) -> None:
    """A strong teacher writes whole examples, DRAFT_BATCH a call."""
    remaining = list(slots)
    # One extra call makes up for drafts lost to bad lines or duplicates.
    max_calls = math.ceil(len(slots) / DRAFT_BATCH) + 1
    while remaining and tally.calls < max_calls:
        tally.work.check()
        batch, remaining = remaining[:DRAFT_BATCH], remaining[DRAFT_BATCH:]
        tally.calls += 1
        try:
            answer = teacher.invoke(draft_messages(spec, batch, samples))
        except Exception as exc:  # a teacher is outside code: any failure ends drafting
            tally.error = f"The teacher stopped answering: {call_failure(exc, teacher)}"
            return
        drafts, bad = parse_drafts(message_text(answer), spec, batch, where=f"answer {tally.calls}")
        tally.skipped += bad
        kept: list[Draft] = []
        for draft in drafts:
            if len(kept) >= len(batch):
                break
            if seen.find(draft.input) is not None:
                tally.duplicates += 1
                continue
            seen.add(draft.input)
            kept.append(draft)
        tally.store(kept)
        remaining += batch[len(kept) :]


def _draft_inputs(
    teacher: BaseChatModel,
    spec: TaskSpec,
    shots: Sequence[InputShot],
    slots: Sequence[DraftSlot],
    seen: DuplicateIndex,
    labeller: Labeller | None,
    tally: _Tally,
) -> None:
    """A weak teacher writes one input a call; ``labeller`` answers each one it keeps."""
    # Seeds differ per call and per request, so retries and later requests get new inputs.
    seeds = random.Random()
    max_calls = len(slots) * CALLS_PER_INPUT
    for slot in slots:
        text = _new_input(teacher, spec, shots, slot, seen, tally, seeds, max_calls)
        if text is None:
            return
        seen.add(text)
        ids = (slot.requirement.id,) if slot.requirement else ()
        answer = None
        # A cancel that came during the teacher's call keeps its input, without an answer.
        if labeller is not None and not tally.work.cancelled:
            try:
                answer = fitting_answer(spec, labeller(text))
            except Exception as exc:  # the labeller is a model too: its failure ends drafting
                tally.store([Draft(text, None, ids)])
                tally.error = f"The labeller stopped answering: {one_line_reason(exc)}"
                return
        tally.store([Draft(text, answer, ids)])


def _new_input(
    teacher: BaseChatModel,
    spec: TaskSpec,
    shots: Sequence[InputShot],
    slot: DraftSlot,
    seen: DuplicateIndex,
    tally: _Tally,
    seeds: random.Random,
    max_calls: int,
) -> str | None:
    """A new input for ``slot``, retried while the teacher's answers are no use; None when the
    calls run out or the teacher fails."""
    while tally.calls < max_calls:
        tally.work.check()
        tally.calls += 1
        try:
            # The shots come in one order every call, so the server reads them only once.
            answer = teacher.invoke(
                input_messages(spec, shots, slot.label, slot.requirement),
                stop=[END_OF_LINE],
                temperature=INPUT_TEMPERATURE,
                top_p=INPUT_TOP_P,
                max_tokens=MAX_INPUT_TOKENS,
                seed=seeds.randrange(2**31),
            )
        except Exception as exc:  # a teacher is outside code: any failure ends drafting
            tally.error = f"The teacher stopped answering: {call_failure(exc, teacher)}"
            return None
        cut_short = answer.response_metadata.get("finish_reason") == "length"
        try:
            text = clean_input(message_text(answer), spec, cut_short=cut_short)
        except InputError as error:
            tally.skipped.append(SkippedDraft(f"answer {tally.calls}", error.message))
            continue
        if seen.find(text) is not None:
            tally.duplicates += 1
            continue
        return text
    return None


def fitting_answer(spec: TaskSpec, answer: str | None) -> str | None:
    """A labeller's answer as the spec spells it (a label by its name), or None when it does
    not fit the spec's answer format."""
    if answer is None or not answer.strip():
        return None
    text = answer.strip()
    if spec.output_kind == "labels":
        return match_label(spec, text)
    if output_problem(spec, text) is not None:
        return None
    return text


def describe_report(report: DraftReport, project_name: str, *, max_reasons: int = 5) -> str:
    """What a draft request did, in a few lines."""
    # Read in the app and on the command line alike: each is named.
    review = (
        "they wait as pending for review in the Dataset area"
        f" (or: tunesmith examples list {project_name})."
    )
    if report.cancelled:
        first = (
            f"Cancelled after {report.added} of {report.requested} drafts; {review}"
            if report.added
            else "Cancelled before any draft was stored."
        )
    elif report.added:
        first = f"Drafted {report.added} of {report.requested} examples; {review}"
    else:
        first = f"No usable drafts out of {report.requested} asked for."
    lines = [first]
    if report.unlabeled:
        lines.append(
            f"{report.unlabeled} of them have no answer yet (the labeller could not give one):"
            f" label them with l in the Dataset area (or: tunesmith label {project_name})."
        )
    if report.duplicates:
        lines.append(f"{report.duplicates} repeated an existing example and were dropped.")
    if report.skipped:
        lines.append(f"{len(report.skipped)} of the teacher's answers were not usable:")
        lines += [f"  {skip}" for skip in report.skipped[:max_reasons]]
        if len(report.skipped) > max_reasons:
            lines.append(f"  ... and {len(report.skipped) - max_reasons} more")
    if report.error:
        lines.append(report.error)
    return "\n".join(lines)


def _samples(examples: Sequence[Example]) -> list[Example]:
    approved = [e for e in examples if e.status == "approved" and e.deleted_at is None]
    typed_first = sorted(approved, key=lambda e: (e.source != "typed", e.id))
    return typed_first[:SAMPLE_EXAMPLES]


def _sample_output(spec: TaskSpec, response: str) -> object:
    if spec.output_kind == "json":
        try:
            return json.loads(response)
        except (json.JSONDecodeError, RecursionError):
            return response
    return response
