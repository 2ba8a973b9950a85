"""Edits of a spec: the requirements, the label set, the answer format from a sample or a
description, and what a goal sentence implies."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace

from agent import answers
from agent.phrasing import clean_phrase, is_junk_answer
from agent.spec import Requirement, TaskSpec

_REQUIREMENT_ID = re.compile(r"^R(\d+)$")


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


def with_labels(spec: TaskSpec, labels: tuple[str, ...]) -> TaskSpec:
    """The spec with this label set: the answer is one label, or a field of a JSON answer."""
    return replace(
        spec, labels=labels, output_kind="json" if spec.output_kind == "json" else "labels"
    )


def with_json_sample(spec: TaskSpec, sample: answers.JsonSample) -> TaskSpec:
    """The spec with JSON answers shaped like ``sample``; labels stay if the sample uses one."""
    values = {value.casefold() for value in sample.values.values() if isinstance(value, str)}
    labels = spec.labels
    if labels and not any(label.casefold() in values for label in labels):
        labels = ()
    return replace(
        spec,
        output_kind="json",
        json_fields=sample.fields,
        json_sample=sample.text,
        labels=labels,
        output_description=None,
    )


def with_output(spec: TaskSpec, text: str) -> tuple[TaskSpec, bool]:
    """The spec with ``text`` read as a description of the answers, and whether it made sense."""
    sample = answers.parse_json_sample(text)
    if isinstance(sample, answers.JsonSample):
        return with_json_sample(spec, sample), True
    labels = answers.labels_statement(text) or answers.parse_label_list(text)
    fields = answers.json_fields_statement(text)
    if answers.mentions_json(text) or (fields and answers.mentions_extraction(text)):
        spec = replace(spec, output_kind="json", json_fields=fields or spec.json_fields)
        if labels is not None and fields is None:
            spec = replace(spec, labels=labels)
        return spec, True
    if labels is not None:
        return with_labels(spec, labels), True
    if answers.mentions_labels(text) and len(text.split()) <= 8:
        return replace(spec, output_kind="labels"), True
    if is_junk_answer(text, min_words=2):
        return spec, False
    description = clean_phrase(text)
    return replace(spec, output_kind="free_text", output_description=description), True


def with_goal_hints(spec: TaskSpec, text: str) -> tuple[TaskSpec, bool]:
    """The spec with what a goal sentence implies about answers ("as JSON", "into a, b or c")."""
    hinted = False
    labels = answers.labels_statement(text)
    if labels is not None and not spec.labels:
        spec, hinted = with_labels(spec, labels), True
    if answers.mentions_json(text) and spec.output_kind in (None, "labels"):
        fields = answers.json_fields_statement(text)
        spec, hinted = replace(spec, output_kind="json", json_fields=fields or ()), True
    return spec, hinted


def merge(kept: Sequence[str], new: Sequence[str]) -> tuple[str, ...]:
    """``kept`` followed by the items of ``new`` it lacks, compared case-insensitively."""
    result = list(kept)
    for item in new:
        if item.casefold() not in {x.casefold() for x in result}:
            result.append(item)
    return tuple(result)
