"""The spec in words: the system prompt proposed from it, and how ``/spec``, the interview's
confirmations and ``tunesmith spec --json`` describe it."""

from __future__ import annotations

import json
from typing import Any

from agent.coverage import Coverage
from agent.spec import Judging, TaskSpec, missing_parts

_JUDGING_WORDS: dict[Judging, str] = {
    "exact_label": "exact label",
    "json_fields": "JSON fields, one by one",
    "free_text": "free text, against the reference answer",
}


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
