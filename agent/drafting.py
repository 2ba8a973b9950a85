"""Drafting examples: a teacher model writes new inputs and answers that follow the spec.

Drafts go where coverage is thinnest (the labels and requirements with the fewest examples),
are parsed line by line (a bad line is skipped with its reason), dropped when they repeat an
existing input exactly or nearly, and stored as ``pending`` for the person to review.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import sqlite_utils
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agent.coverage import coverage
from agent.dedupe import DuplicateIndex
from agent.jsontext import JsonTextError, loads_lenient, strip_code_fences
from agent.models import message_text
from agent.spec import (
    Requirement,
    TaskSpec,
    load_spec,
    match_label,
    output_known,
    output_problem,
)
from agent.spec_text import describe_output
from store.errors import InputError, one_line_reason
from store.examples import (
    ChatMessage,
    Example,
    NewExample,
    add_examples,
    list_examples,
    validate_text,
)
from store.projects import get_project_by_id

DRAFT_BATCH = 10
"""Examples asked of the teacher in one call; small batches keep answers well-formed."""

MAX_DRAFT = 200
"""Most examples one draft request may ask for."""

SAMPLE_EXAMPLES = 4
"""Existing examples shown to the teacher so it sees the format."""

WEAK_TEACHER_WARNING = (
    "The teacher is the small default model, so drafts will be weak: review them closely."
    " For better drafts name a stronger teacher, e.g. --teacher gpt-4o-mini with"
    " OPENAI_API_KEY set, or an Ollama model with TUNESMITH_AGENT_BASE_URL=http://localhost:11434/v1."
)

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
    output: str
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
    duplicates: int
    skipped: tuple[SkippedDraft, ...]
    calls: int
    error: str | None = None
    """Why the teacher stopped answering, when it did."""


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
) -> DraftReport:
    """Have ``teacher`` write ``count`` new examples and store the good ones as pending."""
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
    samples = _samples(existing)
    remaining = plan_slots(spec, existing, count)
    kept: list[Draft] = []
    skipped: list[SkippedDraft] = []
    duplicates = 0
    calls = 0
    error: str | None = None
    # One extra call makes up for drafts lost to bad lines or duplicates.
    max_calls = math.ceil(count / DRAFT_BATCH) + 1
    while remaining and calls < max_calls:
        batch, remaining = remaining[:DRAFT_BATCH], remaining[DRAFT_BATCH:]
        calls += 1
        try:
            answer = teacher.invoke(draft_messages(spec, batch, samples))
        except Exception as exc:  # a teacher is outside code: any failure ends drafting
            error = one_line_reason(exc)
            break
        drafts, bad = parse_drafts(message_text(answer), spec, batch, where=f"answer {calls}")
        skipped += bad
        filled = 0
        for draft in drafts:
            if filled >= len(batch):
                break
            if seen.find(draft.input) is not None:
                duplicates += 1
                continue
            seen.add(draft.input)
            kept.append(draft)
            filled += 1
        remaining += batch[filled:]
    result = add_examples(
        db,
        project_id,
        [
            NewExample(
                messages=(ChatMessage("user", d.input), ChatMessage("assistant", d.output)),
                tags=d.requirement_ids,
            )
            for d in kept
        ],
        source="drafted",
        status="pending",
    )
    return DraftReport(
        requested=count,
        added=result.added,
        duplicates=duplicates + result.duplicates,
        skipped=tuple(skipped),
        calls=calls,
        error=error,
    )


def describe_report(report: DraftReport, project_name: str, *, max_reasons: int = 5) -> str:
    """What a draft request did, in a few lines."""
    lines = [
        f"Drafted {report.added} of {report.requested} examples; they wait as pending for review"
        f" (tunesmith examples list {project_name})."
        if report.added
        else f"No usable drafts out of {report.requested} asked for."
    ]
    if report.duplicates:
        lines.append(f"{report.duplicates} repeated an existing example and were dropped.")
    if report.skipped:
        lines.append(f"{len(report.skipped)} lines of the teacher's answers were skipped:")
        lines += [f"  {skip}" for skip in report.skipped[:max_reasons]]
        if len(report.skipped) > max_reasons:
            lines.append(f"  ... and {len(report.skipped) - max_reasons} more")
    if report.error:
        lines.append(f"The teacher stopped answering: {report.error}")
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
