"""Model mode: a chat model reads the person's free text and updates the spec through a schema.

The model is asked for structured output (tool calling where the model supports it, else a JSON
answer). Whatever goes wrong (no tool call, invalid JSON, fields that fail validation) is a
ModelError, and the interview falls back to guided mode.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field, ValidationError

from agent.answers import parse_json_sample, parse_label_list
from agent.jsontext import JsonTextError, find_json_object
from agent.models import message_text
from agent.phrasing import clean_phrase
from agent.spec import OutputKind, TaskSpec, missing_parts, output_known
from agent.spec_edits import with_requirements
from store.errors import ModelError
from store.messages import TranscriptMessage

HISTORY_TURNS = 16
"""How many earlier transcript turns the model sees."""

MAX_REPLY_CHARS = 1200
"""Longest reply of the model shown to the person."""

SchemaT = TypeVar("SchemaT", bound=BaseModel)


class SpecUpdate(BaseModel):
    """Spec fields the user stated or corrected in their latest message; others stay null."""

    goal: str | None = Field(
        default=None, description="What the model does, one imperative sentence."
    )
    input_description: str | None = Field(
        default=None, description="What the model is given each time."
    )
    output_kind: Literal["free_text", "labels", "json"] | None = Field(
        default=None, description="Answers are free text, exactly one label, or a JSON object."
    )
    output_description: str | None = Field(
        default=None, description="For free text: what answers say."
    )
    labels: list[str] | None = Field(
        default=None, description="The complete label set (replaces it)."
    )
    json_fields: list[str] | None = Field(
        default=None, description="Top-level keys of a JSON answer."
    )
    json_sample: str | None = Field(default=None, description="A sample JSON answer, as JSON text.")
    constraints: list[str] | None = Field(
        default=None, description="All rules answers must follow (replaces the list)."
    )
    style: str | None = Field(
        default=None, description="Tone, length or language of free-text answers."
    )
    requirements: list[str] | None = Field(
        default=None, description="All cases the examples must cover (replaces the list)."
    )
    judged_by: Literal["exact_label", "json_fields", "free_text"] | None = Field(
        default=None, description="How answers are scored, when the user says so."
    )
    target_examples: int | None = Field(default=None, ge=1, le=100_000)
    system_prompt: str | None = Field(default=None, description="A system prompt the user gave.")


class ExamplePair(BaseModel):
    """One example the user gave: the input and the exact answer the model should give."""

    input: str = Field(min_length=1)
    output: str = Field(min_length=1)


class AgentTurn(BaseModel):
    """Update the task spec from the user's message, and say what to ask next."""

    update: SpecUpdate = Field(default_factory=SpecUpdate)
    examples: list[ExamplePair] = Field(default_factory=list)
    reply: str = Field(
        description="One or two short sentences: what you understood, then one question."
    )


_INSTRUCTIONS = """\
You lead a short interview that prepares a fine-tuning dataset for a small language model.
Find out, one question at a time: the goal, what the model is given (input), the answer format
(free text, exactly one label from a set, or a JSON object with fixed keys), the cases the
examples must cover, rules every answer follows, style, and a few example pairs.
From the user's latest message, fill `update` with only what they stated or corrected; leave
every other field null; a list you give replaces the current one. Put any input/output example
they gave in `examples`, word for word. Never invent facts. In `reply`, confirm in a few words
what you understood, then ask for the next missing part.

Current spec (JSON): {spec}
Still missing: {missing}
Examples so far: {examples} (target {target})"""

_JSON_ANSWER = """
Answer with one JSON object and nothing else, matching this JSON schema:
{schema}"""


def interview_messages(
    spec: TaskSpec,
    example_count: int,
    history: Sequence[TranscriptMessage],
    text: str,
) -> list[BaseMessage]:
    """The messages that ask the model to read ``text`` in the light of the spec and history."""
    instructions = _INSTRUCTIONS.format(
        spec=json.dumps(spec.to_json(), ensure_ascii=False),
        missing=", ".join(missing_parts(spec, example_count)) or "nothing",
        examples=example_count,
        target=spec.example_target,
    )
    messages: list[BaseMessage] = [SystemMessage(instructions)]
    for turn in history[-HISTORY_TURNS:]:
        messages.append(
            HumanMessage(turn.content) if turn.role == "user" else AIMessage(turn.content)
        )
    messages.append(HumanMessage(text))
    return messages


def structured_call(
    model: BaseChatModel, messages: list[BaseMessage], schema: type[SchemaT]
) -> SchemaT:
    """Ask ``model`` for an answer shaped as ``schema``; ModelError when it cannot give one."""
    try:
        runnable = model.with_structured_output(schema, method="function_calling", include_raw=True)
    except NotImplementedError:
        runnable = None
    if runnable is None:
        answer = model.invoke(_with_json_instructions(messages, schema))
        return _validated(schema, message_text(answer))
    result = runnable.invoke(messages)
    if not isinstance(result, dict):
        raise ModelError("the model gave no structured answer")
    parsed = result.get("parsed")
    if isinstance(parsed, schema):
        return parsed
    # Some servers ignore tools and answer with JSON text instead; take it when it fits.
    text = message_text(result.get("raw"))
    if text.strip():
        return _validated(schema, text)
    error = result.get("parsing_error")
    if error is not None:
        raise ModelError(f"its structured answer did not fit ({_first_line(error)})")
    raise ModelError("it answered without the structured output it was asked for")


def _with_json_instructions(
    messages: list[BaseMessage], schema: type[BaseModel]
) -> list[BaseMessage]:
    """``messages`` with the JSON schema the answer must match added to the system message."""
    prompt = _JSON_ANSWER.format(schema=json.dumps(schema.model_json_schema()))
    if messages and isinstance(messages[0], SystemMessage):
        return [SystemMessage(message_text(messages[0]) + "\n" + prompt), *messages[1:]]
    return [SystemMessage(prompt), *messages]


def _validated(schema: type[SchemaT], text: str) -> SchemaT:
    try:
        value = find_json_object(text)
    except JsonTextError as error:
        raise ModelError(f"its answer was not the JSON asked for ({error})") from error
    try:
        return schema.model_validate(value)
    except ValidationError as error:
        raise ModelError(f"its JSON did not fit the format ({_first_line(error)})") from error


def _first_line(error: object) -> str:
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
    text = " ".join(str(error).split())
    return text if len(text) <= 120 else text[:119] + "…"


def apply_update(spec: TaskSpec, update: SpecUpdate) -> tuple[TaskSpec, list[str]]:
    """The spec with the model's update applied, and the parts that changed."""
    changed: list[str] = []
    new = spec
    if update.goal and clean_phrase(update.goal):
        new = replace(new, goal=clean_phrase(update.goal))
    if update.input_description and clean_phrase(update.input_description):
        new = replace(new, input_description=clean_phrase(update.input_description))
    new = _apply_output(new, update)
    if update.constraints is not None:
        rules = tuple(clean_phrase(rule) for rule in update.constraints if clean_phrase(rule))
        new = replace(new, constraints=rules)
    if update.style and clean_phrase(update.style):
        new = replace(new, style=clean_phrase(update.style))
    if update.requirements is not None:
        cases = [clean_phrase(case) for case in update.requirements if clean_phrase(case)]
        new = with_requirements(new, cases, replace_all=True)
    if update.judged_by is not None:
        new = replace(new, judged_by=update.judged_by)
    if update.target_examples is not None:
        new = replace(new, target_examples=update.target_examples)
    if update.system_prompt and update.system_prompt.strip():
        new = replace(
            new, system_prompt=update.system_prompt.strip(), system_prompt_origin="custom"
        )
    checks = {
        "goal": (spec.goal, new.goal),
        "input": (spec.input_description, new.input_description),
        "output": (
            (spec.output_kind, spec.output_description, spec.labels, spec.json_fields),
            (new.output_kind, new.output_description, new.labels, new.json_fields),
        ),
        "requirements": (spec.requirements, new.requirements),
        "constraints": (spec.constraints, new.constraints),
        "style": (spec.style, new.style),
        "target": (spec.target_examples, new.target_examples),
        "system_prompt": (spec.system_prompt, new.system_prompt),
    }
    changed = [part for part, (before, after) in checks.items() if before != after]
    if spec.judged_by != new.judged_by and "output" not in changed:
        changed.append("output")
    return new, changed


def _apply_output(spec: TaskSpec, update: SpecUpdate) -> TaskSpec:
    new = spec
    if update.output_kind is not None:
        new = replace(new, output_kind=update.output_kind)
    if update.output_description and clean_phrase(update.output_description):
        new = replace(new, output_description=clean_phrase(update.output_description))
    if update.labels is not None:
        labels = parse_label_list("\n".join(update.labels), minimum=2)
        if labels is not None:
            kind: OutputKind = "json" if new.output_kind == "json" else "labels"
            new = replace(new, labels=labels, output_kind=kind)
    if update.json_sample:
        sample = parse_json_sample(update.json_sample)
        if sample is not None and not isinstance(sample, JsonTextError):
            new = replace(
                new, output_kind="json", json_fields=sample.fields, json_sample=sample.text
            )
    if update.json_fields:
        fields = tuple(dict.fromkeys(f.strip() for f in update.json_fields if f.strip()))
        if fields:
            new = replace(new, output_kind="json", json_fields=fields)
    if new.output_kind is None and update.output_description and not output_known(new):
        new = replace(new, output_kind="free_text")
    return new
