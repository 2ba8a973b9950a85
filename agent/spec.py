"""The task spec: what the fine-tuned model must do, stored as JSON on its project."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import sqlite_utils

from store.examples import Example
from store.projects import Project, set_task_spec

OutputKind = Literal["free_text", "labels", "json"]
Judging = Literal["exact_label", "json_fields", "free_text"]
SystemPromptOrigin = Literal["proposed", "custom"]

OUTPUT_KINDS: tuple[OutputKind, ...] = ("free_text", "labels", "json")
JUDGINGS: tuple[Judging, ...] = ("exact_label", "json_fields", "free_text")

SPEC_VERSION = 1
"""Version of the JSON layout written to ``projects.task_spec``."""

DEFAULT_TARGET_EXAMPLES = 50
"""How many examples a task aims for when nobody said otherwise."""

EXAMPLES_PER_LABEL = 10
"""A label task aims for at least this many examples per label."""

STARTER_EXAMPLES = 3
"""Typed examples the interview asks for before it calls the examples part done."""

PARTS = (
    "goal",
    "input",
    "output",
    "requirements",
    "constraints",
    "style",
    "system_prompt",
    "examples",
)
"""The parts of a spec, in the order the interview asks for them."""

REQUIRED_PARTS = ("goal", "output")
"""Parts that cannot be skipped: without them there is no task."""

_JUDGING_FOR_OUTPUT: dict[OutputKind, Judging] = {
    "labels": "exact_label",
    "json": "json_fields",
    "free_text": "free_text",
}
_REQUIREMENT_ID = re.compile(r"^R(\d+)$")


@dataclass(frozen=True)
class Requirement:
    """A case the examples must cover, with a short id that tags the examples covering it."""

    id: str
    text: str


@dataclass(frozen=True)
class TaskSpec:
    """What the fine-tuned model must do, and how its answers are judged."""

    goal: str | None = None
    """What the model does, in one sentence."""
    input_description: str | None = None
    """What the model is given each time."""
    output_kind: OutputKind | None = None
    """Free text, one label of a set, or a JSON object."""
    output_description: str | None = None
    """For free-text answers: what they contain."""
    labels: tuple[str, ...] = ()
    """The label set (label answers, or the values of a field of a JSON answer)."""
    json_fields: tuple[str, ...] = ()
    """Top-level keys of a JSON answer."""
    json_sample: str | None = None
    """A sample JSON answer, as the person gave it."""
    constraints: tuple[str, ...] = ()
    """Rules every answer must follow."""
    style: str | None = None
    """Tone, length or language of free-text answers."""
    requirements: tuple[Requirement, ...] = ()
    """Cases the examples must cover."""
    judged_by: Judging | None = None
    """How answers are scored; None follows from the output kind."""
    target_examples: int | None = None
    """How many examples to aim for; None picks a default from the output kind."""
    system_prompt: str | None = None
    """The project's system prompt (its own column, not part of the JSON)."""
    system_prompt_origin: SystemPromptOrigin | None = None
    """Whether the system prompt is the one proposed from the spec, or the person's own."""
    skipped: tuple[str, ...] = field(default=())
    """Optional parts the person chose to skip."""

    @property
    def judging(self) -> Judging:
        """How answers are scored: as set, else what the output kind implies."""
        if self.judged_by is not None:
            return self.judged_by
        return _JUDGING_FOR_OUTPUT.get(self.output_kind or "free_text", "free_text")

    @property
    def example_target(self) -> int:
        """How many examples to aim for."""
        if self.target_examples is not None:
            return self.target_examples
        if self.labels:
            return max(DEFAULT_TARGET_EXAMPLES, EXAMPLES_PER_LABEL * len(self.labels))
        return DEFAULT_TARGET_EXAMPLES

    def to_json(self) -> dict[str, Any]:
        """The JSON stored in ``projects.task_spec`` (the system prompt has its own column)."""
        return {
            "version": SPEC_VERSION,
            "goal": self.goal,
            "input": self.input_description,
            "output": {
                "kind": self.output_kind,
                "description": self.output_description,
                "labels": list(self.labels),
                "json_fields": list(self.json_fields),
                "json_sample": self.json_sample,
            },
            "constraints": list(self.constraints),
            "style": self.style,
            "requirements": [{"id": r.id, "text": r.text} for r in self.requirements],
            "judged_by": self.judged_by,
            "target_examples": self.target_examples,
            "system_prompt_origin": self.system_prompt_origin,
            "skipped": list(self.skipped),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], system_prompt: str | None = None) -> TaskSpec:
        """A spec from stored JSON; missing or ill-typed values read as unset."""
        output = data.get("output") if isinstance(data.get("output"), dict) else {}
        assert isinstance(output, dict)
        kind = output.get("kind")
        judged_by = data.get("judged_by")
        origin = data.get("system_prompt_origin")
        target = data.get("target_examples")
        requirements = tuple(
            Requirement(str(item["id"]), str(item["text"]))
            for item in _list(data.get("requirements"))
            if isinstance(item, dict)
            and isinstance(item.get("id"), str)
            and isinstance(item.get("text"), str)
        )
        return cls(
            goal=_text(data.get("goal")),
            input_description=_text(data.get("input")),
            output_kind=cast(OutputKind, kind) if kind in OUTPUT_KINDS else None,
            output_description=_text(output.get("description")),
            labels=_texts(output.get("labels")),
            json_fields=_texts(output.get("json_fields")),
            json_sample=_text(output.get("json_sample")),
            constraints=_texts(data.get("constraints")),
            style=_text(data.get("style")),
            requirements=requirements,
            judged_by=cast(Judging, judged_by) if judged_by in JUDGINGS else None,
            target_examples=target if isinstance(target, int) and target > 0 else None,
            system_prompt=system_prompt,
            system_prompt_origin=(
                cast(SystemPromptOrigin, origin) if origin in ("proposed", "custom") else None
            ),
            skipped=_texts(data.get("skipped")),
        )


def load_spec(project: Project) -> TaskSpec:
    """The spec stored on ``project``, with its system prompt."""
    return TaskSpec.from_json(project.task_spec, project.system_prompt)


def save_spec(db: sqlite_utils.Database, project_id: int, spec: TaskSpec) -> Project:
    """Store ``spec`` (and its system prompt) on the project."""
    return set_task_spec(db, project_id, spec.to_json(), system_prompt=spec.system_prompt)


def output_known(spec: TaskSpec) -> bool:
    """Whether the answer's format is known well enough to write examples against."""
    if spec.output_kind == "labels":
        return len(spec.labels) >= 2
    if spec.output_kind == "json":
        return bool(spec.json_fields)
    if spec.output_kind == "free_text":
        return bool(spec.output_description)
    return False


def missing_parts(spec: TaskSpec, example_count: int) -> list[str]:
    """The parts the interview still has to ask for, in order."""
    lacking = {
        "goal": not spec.goal,
        "input": not spec.input_description,
        "output": not output_known(spec),
        "requirements": not spec.requirements,
        "constraints": not spec.constraints,
        # Labels and JSON objects have no tone to speak of.
        "style": not spec.style and spec.output_kind == "free_text",
        "system_prompt": not spec.system_prompt,
        "examples": example_count < STARTER_EXAMPLES,
    }
    return [
        part
        for part in PARTS
        if lacking[part] and (part in REQUIRED_PARTS or part not in spec.skipped)
    ]


def proposed_system_prompt(spec: TaskSpec) -> str:
    """A system prompt written from the spec, for the person to accept or edit."""
    sentences: list[str] = []
    if spec.goal:
        sentences.append(_sentence(spec.goal))
    if spec.input_description:
        sentences.append(_sentence(f"The input is {_lower_first(spec.input_description)}"))
    if spec.output_kind == "labels" and spec.labels:
        sentences.append(
            f"Answer with exactly one of these labels and nothing else: {', '.join(spec.labels)}."
        )
    elif spec.output_kind == "json" and spec.json_fields:
        shape = f"Answer with only a JSON object with the keys {', '.join(spec.json_fields)}"
        if spec.labels:
            shape += f"; label values are one of {', '.join(spec.labels)}"
        sentences.append(shape + ".")
        if spec.json_sample:
            sentences.append(f"Example of the format: {_compact_json(spec.json_sample)}")
    elif spec.output_kind == "json":
        sentences.append("Answer with only a JSON object.")
    elif spec.output_description:
        sentences.append(_sentence(f"Answer with {_lower_first(spec.output_description)}"))
    for constraint in spec.constraints:
        sentences.append(_sentence(constraint))
    if spec.style:
        sentences.append(_sentence(f"Style: {spec.style}"))
    return " ".join(sentences) or "You are a helpful assistant."


def label_key(text: str) -> str:
    """How a label compares: case-folded, quotes, brackets and end punctuation ignored."""
    key = " ".join(text.strip().split()).casefold()
    return key.strip("\"'`“”‘’[](){}").rstrip(".!;:,").strip()


def match_label(spec: TaskSpec, text: str) -> str | None:
    """The label ``text`` names, spelled as in the spec, or None."""
    key = label_key(text)
    return next((label for label in spec.labels if label_key(label) == key), None)


def label_of(spec: TaskSpec, response: str) -> str | None:
    """The label an answer gives: the whole answer, or a string value in a JSON answer."""
    if not spec.labels:
        return None
    if spec.output_kind == "json":
        try:
            value = json.loads(response)
        except (json.JSONDecodeError, RecursionError):
            return None
        for text in _strings_in(value):
            label = match_label(spec, text)
            if label is not None:
                return label
        return None
    return match_label(spec, response)


def output_problem(spec: TaskSpec, response: str) -> str | None:
    """Why an answer does not fit the spec's output format, or None when it does."""
    if spec.output_kind == "labels" and len(spec.labels) >= 2:
        if match_label(spec, response) is None:
            return f"{_quote(response)} is not one of the labels ({', '.join(spec.labels)})"
    elif spec.output_kind == "json":
        try:
            value = json.loads(response)
        except (json.JSONDecodeError, RecursionError):
            return "the answer is not valid JSON"
        if not isinstance(value, dict):
            return "the answer is not a JSON object"
        missing = [key for key in spec.json_fields if key not in value]
        extra = [key for key in value if spec.json_fields and key not in spec.json_fields]
        if missing:
            return f"the answer lacks the key{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        if extra:
            return (
                f"the answer has unexpected key{'s' if len(extra) > 1 else ''} {', '.join(extra)}"
            )
    return None


def with_requirements(spec: TaskSpec, texts: Iterable[str], *, replace_all: bool) -> TaskSpec:
    """The spec with ``texts`` as requirements, keeping the ids of those already there."""
    kept = () if replace_all else spec.requirements
    by_text = {r.text.casefold(): r for r in spec.requirements}
    next_number = 1 + max(
        (int(m.group(1)) for r in spec.requirements if (m := _REQUIREMENT_ID.match(r.id))),
        default=0,
    )
    result = list(kept)
    seen = {r.text.casefold() for r in result}
    for text in texts:
        key = text.casefold()
        if not text.strip() or key in seen:
            continue
        existing = by_text.get(key)
        if existing is None:
            existing = Requirement(f"R{next_number}", text.strip())
            next_number += 1
        result.append(existing)
        seen.add(key)
    return replace(spec, requirements=tuple(result))


@dataclass(frozen=True)
class Count:
    """Approved and pending examples of one label or requirement."""

    approved: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        """Approved plus pending."""
        return self.approved + self.pending


@dataclass(frozen=True)
class Coverage:
    """How many live examples the project has, per label and per requirement."""

    approved: int
    pending: int
    rejected: int
    by_label: tuple[tuple[str, Count], ...]
    by_requirement: tuple[tuple[Requirement, Count], ...]
    off_spec: int
    """Approved or pending examples whose answer does not fit the output format."""


def coverage(spec: TaskSpec, examples: Sequence[Example]) -> Coverage:
    """Count the live examples per status, label and requirement."""
    live = [e for e in examples if e.deleted_at is None]
    counted = [e for e in live if e.status in ("approved", "pending")]
    by_label = {label: [0, 0] for label in spec.labels}
    by_requirement = {r.id: [0, 0] for r in spec.requirements}
    off_spec = 0
    for example in counted:
        column = 0 if example.status == "approved" else 1
        label = label_of(spec, example.response)
        if label is not None:
            by_label[label][column] += 1
        for tag in example.tags:
            if tag in by_requirement:
                by_requirement[tag][column] += 1
        if output_problem(spec, example.response) is not None:
            off_spec += 1
    return Coverage(
        approved=sum(1 for e in live if e.status == "approved"),
        pending=sum(1 for e in live if e.status == "pending"),
        rejected=sum(1 for e in live if e.status == "rejected"),
        by_label=tuple((label, Count(*by_label[label])) for label in spec.labels),
        by_requirement=tuple((r, Count(*by_requirement[r.id])) for r in spec.requirements),
        off_spec=off_spec,
    )


def describe_output(spec: TaskSpec) -> str:
    """The answer format in a few words."""
    if spec.output_kind == "labels":
        if not spec.labels:
            return "one label (labels not given yet)"
        return f"one label of {', '.join(spec.labels)}"
    if spec.output_kind == "json":
        if not spec.json_fields:
            return "a JSON object (keys not given yet)"
        shape = f"a JSON object with keys {', '.join(spec.json_fields)}"
        return shape + (f"; labels {', '.join(spec.labels)}" if spec.labels else "")
    if spec.output_kind == "free_text":
        return f"free text: {spec.output_description}" if spec.output_description else "free text"
    return ""


_JUDGING_WORDS: dict[Judging, str] = {
    "exact_label": "exact label",
    "json_fields": "JSON fields, one by one",
    "free_text": "free text, against the reference answer",
}


def summarize_part(spec: TaskSpec, part: str) -> str:
    """What the spec now says about ``part``, in one short phrase."""
    if part == "goal":
        return f"goal: {spec.goal}"
    if part == "input":
        return f"input: {spec.input_description}"
    if part == "output":
        return f"answers: {describe_output(spec)} (judged by {_JUDGING_WORDS[spec.judging]})"
    if part == "requirements":
        return "cases to cover: " + "; ".join(f"{r.id} {r.text}" for r in spec.requirements)
    if part == "constraints":
        return "rules: " + "; ".join(spec.constraints)
    if part == "style":
        return f"style: {spec.style}"
    if part == "system_prompt":
        return "system prompt set"
    if part == "target":
        return f"target: {spec.example_target} examples"
    return part


def describe_spec(project_name: str, spec: TaskSpec, counts: Coverage) -> str:
    """The spec and its coverage as a short block of text."""

    def value(text: str | None, part: str) -> str:
        if text:
            return text
        return "(skipped)" if part in spec.skipped else "(missing)"

    output = describe_output(spec) or None
    lines = [
        f"Task spec of {project_name}",
        f"  Goal:       {value(spec.goal, 'goal')}",
        f"  Input:      {value(spec.input_description, 'input')}",
        f"  Output:     {value(output, 'output')}",
        f"  Judged by:  {_JUDGING_WORDS[spec.judging]}",
    ]
    if spec.json_sample:
        lines.append(f"  Sample:     {_compact_json(spec.json_sample)}")
    cases = "; ".join(f"{r.id} {r.text}" for r in spec.requirements)
    lines.append(f"  Cases:      {value(cases, 'requirements')}")
    lines.append(f"  Rules:      {value('; '.join(spec.constraints), 'constraints')}")
    if spec.output_kind in (None, "free_text") or spec.style:
        lines.append(f"  Style:      {value(spec.style, 'style')}")
    lines.append(f"  System:     {value(spec.system_prompt, 'system_prompt')}")
    lines.append(
        f"  Examples:   {counts.approved} approved, {counts.pending} pending"
        f" (target {spec.example_target})"
    )
    if counts.off_spec:
        lines.append(f"              {counts.off_spec} do not fit the output format")
    rows = [(label, count) for label, count in counts.by_label]
    rows += [(f"{r.id} {r.text}", count) for r, count in counts.by_requirement]
    if rows:
        lines.append("Coverage (approved, +pending)")
        width = min(max(len(name) for name, _ in rows), 40)
        for name, count in rows:
            shown = name if len(name) <= width else name[: width - 1] + "…"
            pending = f"  (+{count.pending} pending)" if count.pending else ""
            lines.append(f"  {shown:<{width}}  {count.approved:>4}{pending}")
    return "\n".join(lines)


def spec_record(spec: TaskSpec, counts: Coverage, example_count: int) -> dict[str, Any]:
    """The spec, its coverage and what is missing, as the JSON ``tunesmith spec --json`` prints."""
    return {
        "spec": spec.to_json(),
        "system_prompt": spec.system_prompt,
        "judged_by": spec.judging,
        "target_examples": spec.example_target,
        "missing": missing_parts(spec, example_count),
        "examples": {
            "approved": counts.approved,
            "pending": counts.pending,
            "rejected": counts.rejected,
            "off_spec": counts.off_spec,
        },
        "coverage": {
            "labels": {
                label: {"approved": c.approved, "pending": c.pending}
                for label, c in counts.by_label
            },
            "requirements": {
                r.id: {"text": r.text, "approved": c.approved, "pending": c.pending}
                for r, c in counts.by_requirement
            },
        },
    }


def _strings_in(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_in(item)


def _compact_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except (json.JSONDecodeError, RecursionError):
        return " ".join(text.split())


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def _lower_first(text: str) -> str:
    text = text.strip()
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= 40 else flat[:39] + "…")


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _texts(value: object) -> tuple[str, ...]:
    return tuple(item.strip() for item in _list(value) if isinstance(item, str) and item.strip())
