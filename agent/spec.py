"""The task spec: what the fine-tuned model must do, stored as JSON on its project, and whether
an answer fits it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import sqlite_utils

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


def _strings_in(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_in(item)


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= 40 else flat[:39] + "…")


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _texts(value: object) -> tuple[str, ...]:
    return tuple(item.strip() for item in _list(value) if isinstance(item, str) and item.strip())
