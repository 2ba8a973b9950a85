"""Recognising what an answer states about the spec: the goal, the input, the answer format,
labels, a JSON sample, rules, style, cases, a system prompt, a target.

Every function here is pure: text in, what it says out, nothing stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.jsontext import JsonTextError, loads_lenient, strip_code_fences
from agent.phrasing import (
    LIST_SEPARATOR,
    clean_phrase,
    split_cases,
    split_items,
    split_sentences,
    strip_greeting,
    unquote,
)
from agent.typed_examples import looks_like_example

if TYPE_CHECKING:
    from agent.spec import TaskSpec


MAX_LABEL_WORDS = 4


MAX_LABEL_CHARS = 40


_STOP_STARTS = {
    "a", "an", "the", "in", "with", "of", "to", "for", "by", "as", "at", "on", "that", "which",
    "it", "be", "is", "are", "should", "must", "i", "we", "you", "they", "this",
}  # fmt: skip


_LABEL_NOUN = (
    r"(?:labels?|categories|category|classes|class|tags|intents|buckets|topics|sentiments"
    r"|options|choices|types|classifications)"
)


_LABELS_STATEMENT = re.compile(
    rf"^(?:(?:the|its|our|my|possible|allowed|valid)\s+)*{_LABEL_NOUN}"
    r"\s*(?:(?:should|would|will|could|can|must)\s+be|are|is|include|=|:)\s*"
    r"(?:(?:one|any)\s+of\s*:?\s*|either\s+)?(?P<list>.+)$",
    re.IGNORECASE | re.DOTALL,
)


_LABELS_IN_GOAL = re.compile(
    r"\b(?:classif\w*|categori[sz]\w*|sort\w*|rout\w*|label\w*|tag\w*|triag\w*|bucket\w*)\b"
    r"[^.;:]*?\b(?:into|as)\s+(?:(?:one|any)\s+of\s+)?(?:either\s+)?:?\s*(?P<list>[^.;]+)",
    re.IGNORECASE,
)


_ROUTED_TO = re.compile(
    r"\b(?:rout\w*|send\w*|forward\w*|assign\w*|dispatch\w*)\b[^.;:]*?\bto\s+"
    r"(?:(?:one|any)\s+of\s+)?(?:either\s+)?:?\s*(?P<list>[^.;]+)",
    re.IGNORECASE,
)
"""Labels a routing goal sends to: "route tickets to billing, bug or shipping"."""


_ONE_OF = re.compile(r"\b(?:one|any) of\s*:?\s*(?P<list>[^.;]+)", re.IGNORECASE)


_LABELS_ADD = re.compile(
    rf"^(?:also\s+)?add\s+(?:(?:a|the|another)\s+)?{_LABEL_NOUN}?\s*:?\s*(?P<list>.+)$", re.I
)


_LABELS_REMOVE = re.compile(
    rf"^(?:remove|drop|delete)\s+(?:the\s+)?{_LABEL_NOUN}?\s*:?\s*(?P<list>.+)$", re.I
)


_JSON_FIELDS = re.compile(
    r"(?:^|\bjson\b[^.]*?\b)(?:the\s+)?(?:fields|keys|properties|attributes)"
    r"\s*(?:are|:|=|should be|would be|will be)?\s*(?P<list>[^.]+)",
    re.IGNORECASE,
)


_GOAL = re.compile(
    r"^(?:(?:so\s+|well\s+)?i(?:'d| would)?\s+(?:really\s+)?(?:need|want|like)"
    r"(?:\s+to\s+(?:build|make|train|have|get|create|fine-?tune))?"
    r"\s+(?:a|an|some|my|our)?\s*(?:[\w-]+\s+){0,3}?"
    r"(?:model|classifier|assistant|bot|llm|tool|system|something|ai|extractor)"
    r"\s+(?:that|to|which|who|for|able to)\s+(?P<third>.+)"
    r"|(?:the\s+)?(?:goal|task|job|purpose|idea|aim)\s+is\s+(?:to\s+)?(?P<plain>.+)"
    r"|(?:(?:please\s+)?(?:build|make|train|create|fine-?tune)\s+(?:me\s+)?(?:a|an)\s+"
    r"(?:[\w-]+\s+){0,3}?(?:model|classifier)\s+(?:that|to|which|for)\s+(?P<third2>.+))"
    r"|(?:i\s+want\s+to|we\s+(?:need|want)\s+to|help\s+me)\s+(?P<plain2>.+))$",
    re.IGNORECASE | re.DOTALL,
)


_INPUT = re.compile(
    r"^(?:(?:the|each|every|an?)\s+)?inputs?\s*(?:is|are|will be|would be|consists? of|:)\s*"
    r"(?P<rest>.+)"
    r"|^(?:it|the model)\s+(?:will\s+)?(?:gets?|receives?|reads?|sees?|takes?|is given)\s+"
    r"(?:as input\s+)?(?P<rest2>.+)$",
    re.IGNORECASE | re.DOTALL,
)


_OUTPUT = re.compile(
    r"^(?:(?:the|each|every|an?)\s+)?(?:outputs?|answers?|responses?|replies)\s*"
    r"(?:is|are|should be|will be|would be|must be|:)\s*(?P<rest>.+)"
    r"|^(?:it|the model)\s+should\s+(?:answer|reply|respond|return|output|produce|give back|give)"
    r"\s+(?:with\s+)?(?P<rest2>.+)$",
    re.IGNORECASE | re.DOTALL,
)


_RULES = re.compile(
    r"^(?:the\s+)?(?:rules?|constraints?)\s*(?:are|is|:|=)\s*(?P<rest>.+)$", re.I | re.DOTALL
)


_IMPERATIVE_RULE_START = re.compile(
    r"^(?:use|return|reply|respond|leave|put|prefer|ignore|keep|only|include|set)\b", re.I
)


_RULE_START = re.compile(
    r"^(?:never|always|must|do not|don'?t|avoid|no more than|at most|at least|make sure"
    r"|it (?:must|should) (?:never|always|not))\b",
    re.IGNORECASE,
)


_STYLE = re.compile(
    r"^(?:the\s+)?(?:style|tone|voice|register)\s*(?:is|should be|must be|:|=)\s*(?P<rest>.+)$",
    re.IGNORECASE | re.DOTALL,
)


_CASES = re.compile(
    r"^(?:the\s+)?(?:cases|requirements?|scenarios|edge cases|situations)"
    r"(?:\s+to\s+cover)?\s*(?:are|is|:|=|include)\s*(?P<rest>.+)$"
    r"|^(?:it|the examples)\s+(?:must|should)\s+(?:cover|handle|include)\s+(?P<rest2>.+)$",
    re.IGNORECASE | re.DOTALL,
)


_SYSTEM_PROMPT = re.compile(
    r"^(?:the\s+|use\s+(?:this|the)\s+)?system\s*prompt\s*(?:is|should be|:|=)?\s*:?\s*"
    r"(?P<rest>.+)$",
    re.IGNORECASE | re.DOTALL,
)


_TARGET = re.compile(
    r"\b(?:target|aim for|aim at|i want|we need|i need|collect|get|about|around)\s*:?\s*"
    r"(?:about\s+|around\s+)?(?P<count>\d{1,5})\s+examples\b"
    r"|^target\s*:?\s*(?P<count2>\d{1,5})\s*$",
    re.IGNORECASE,
)


_PROPOSAL_VERBS = re.compile(
    r"^(?:classify|categori[sz]e|sort|label|tag|triage|route|summari[sz]e|translate|answer"
    r"|extract|parse|detect|score|rate|rewrite|moderate|flag|reply to|respond to|analy[sz]e)\b",
    re.IGNORECASE,
)


_OBJECT_STOP = re.compile(
    r"\b(?:into|as|by|based|according|and then|with|using|for|in|to|so|according)\b", re.I
)


@dataclass(frozen=True)
class JsonSample:
    """A sample JSON answer: its keys, and the sample as compact text."""

    fields: tuple[str, ...]
    text: str
    values: dict[str, Any] = field(default_factory=dict)


def parse_json_sample(text: str) -> JsonSample | JsonTextError | None:
    """A sample JSON answer in ``text``; an error when it tries and fails; else None."""
    body = strip_code_fences(text).strip()
    start = body.find("{")
    if start < 0:
        return None
    if start > 0 and not body[:start].rstrip().lower().endswith((":", "like", "e.g.", "json")):
        return None
    end = body.rfind("}")
    if end < start:
        return JsonTextError("the JSON object is not closed")
    try:
        value = loads_lenient(body[start : end + 1])
    except JsonTextError as error:
        return error
    if not isinstance(value, dict):
        return JsonTextError("not a JSON object")
    if not value:
        return JsonTextError("the object has no keys")
    return JsonSample(
        fields=tuple(str(key) for key in value),
        text=json.dumps(value, ensure_ascii=False),
        values=value,
    )


def parse_label_list(text: str, *, minimum: int = 2) -> tuple[str, ...] | None:
    """Labels written as a short list ("a, b and c", bullets); None when it is not such a list."""
    body = text.strip()
    if not body or ("\n" not in body and not LIST_SEPARATOR.search(body) and minimum > 1):
        return None
    items = split_items(body)
    if len(items) < minimum:
        return None
    for item in items:
        words = item.split()
        if len(words) > MAX_LABEL_WORDS or len(item) > MAX_LABEL_CHARS:
            return None
        if minimum > 1 and words[0].lower() in _STOP_STARTS:
            return None
    return tuple(items)


def labels_statement(text: str) -> tuple[str, ...] | None:
    """Labels named outright ("the labels are a, b and c") or in a goal ("classify into a, b
    or c", "route tickets to a, b or c")."""
    return labels_named(text) or labels_in_goal(text)


def labels_named(text: str) -> tuple[str, ...] | None:
    """Labels a message names as such: "the labels are a, b and c", "categories: a, b"."""
    match = _LABELS_STATEMENT.match(text.strip())
    return parse_label_list(match.group("list")) if match is not None else None


def labels_in_goal(text: str) -> tuple[str, ...] | None:
    """Labels a goal sentence sorts into: "classify into a, b or c", "route to a or b"."""
    for pattern in (_LABELS_IN_GOAL, _ROUTED_TO, _ONE_OF):
        found = pattern.search(text)
        if found is not None:
            labels = parse_label_list(found.group("list"))
            if labels is not None:
                return labels
    return None


def labels_added(text: str) -> tuple[str, ...] | None:
    """Labels to add: "add label refunds", "also add a category: spam"."""
    match = _LABELS_ADD.match(text.strip())
    return parse_label_list(match.group("list"), minimum=1) if match else None


def labels_removed(text: str) -> tuple[str, ...] | None:
    """Labels to drop: "remove label spam"."""
    match = _LABELS_REMOVE.match(text.strip())
    return parse_label_list(match.group("list"), minimum=1) if match else None


def json_fields_statement(text: str) -> tuple[str, ...] | None:
    """JSON keys named outright: "the fields are name, email and order"."""
    match = _JSON_FIELDS.search(text)
    if match is None:
        return None
    fields = parse_label_list(match.group("list"), minimum=1)
    if fields is None:
        return None
    return tuple(re.sub(r"\W+", "_", item.strip()).strip("_").lower() for item in fields)


def goal_statement(text: str) -> str | None:
    """The goal in "I need a model that ...", "the goal is to ...", as an imperative phrase."""
    match = _GOAL.match(strip_greeting(text))
    if match is None:
        return None
    third = match.group("third") or match.group("third2")
    if third:
        return clean_phrase(_imperative(third))
    return clean_phrase(match.group("plain") or match.group("plain2"))


def input_statement(text: str) -> str | None:
    """The input in "the input is ...", "it gets ..."."""
    match = _INPUT.match(text.strip())
    if match is None:
        return None
    return clean_phrase(match.group("rest") or match.group("rest2"))


def output_statement(text: str) -> str | None:
    """The answer format in "the output is ...", "it should answer with ..."."""
    match = _OUTPUT.match(text.strip())
    if match is None:
        return None
    return clean_phrase(match.group("rest") or match.group("rest2"))


def rules_statement(text: str, *, imperatives: bool = False) -> list[str] | None:
    """Rules in "rules: ...", or a message that is itself a rule ("never ...", "always ...").

    With ``imperatives``, a message that starts with an instruction ("use null for ...",
    "return ...") is a rule too; before the task is known it more likely states the goal.
    """
    stripped = text.strip()
    match = _RULES.match(stripped)
    if match is not None:
        return without_examples(split_sentences(match.group("rest")))
    if _RULE_START.match(stripped) or (imperatives and _IMPERATIVE_RULE_START.match(stripped)):
        return without_examples(split_sentences(stripped))
    return None


def style_statement(text: str) -> str | None:
    """The style in "the tone should be ...", "style: ..."."""
    match = _STYLE.match(text.strip())
    return clean_phrase(match.group("rest")) if match else None


def cases_statement(text: str) -> list[str] | None:
    """Cases to cover in "cases: ...", "the examples must cover ..."."""
    match = _CASES.match(text.strip())
    if match is None:
        return None
    return without_examples(split_cases(match.group("rest") or match.group("rest2")))


def without_examples(items: Sequence[str]) -> list[str]:
    """``items`` (cases, rules) without those that are example data: an "Output: bug" line
    is an example's answer, never a case or a rule."""
    return [item for item in items if not looks_like_example(item)]


def system_prompt_statement(text: str) -> str | None:
    """A system prompt given outright: "system prompt: ..."."""
    match = _SYSTEM_PROMPT.match(text.strip())
    if match is None:
        return None
    prompt = unquote(match.group("rest").strip())
    return prompt if len(prompt.split()) >= 2 else None


def target_statement(text: str) -> int | None:
    """A target number of examples: "aim for 200 examples"."""
    match = _TARGET.search(text)
    if match is None:
        return None
    count = int(match.group("count") or match.group("count2"))
    return count if count > 0 else None


def mentions_json(text: str) -> bool:
    """Whether ``text`` asks for JSON answers."""
    return bool(re.search(r"\bjson\b", text, re.IGNORECASE))


def mentions_labels(text: str) -> bool:
    """Whether ``text`` talks about classifying into labels or categories."""
    return bool(
        re.search(
            r"\b(?:classif\w*|categori[sz]\w*|labels?|categor(?:y|ies)|class(?:es)?|triag\w*"
            r"|sentiment|intent|sort\w* (?:\w+ )*into|route|routing|tag(?:s|ging)?)\b",
            text,
            re.IGNORECASE,
        )
    )


def mentions_extraction(text: str) -> bool:
    """Whether ``text`` talks about pulling fields out of the input."""
    return bool(re.search(r"\b(?:extract\w*|pull\w* out|parse\w*|fields?)\b", text, re.I))


def proposed_input(spec: TaskSpec) -> str | None:
    """A guess at the input from the goal ("classify support tickets" -> one support ticket)."""
    goal = spec.goal or ""
    if not _PROPOSAL_VERBS.match(goal):
        return None
    rest = goal.split(maxsplit=1)[1] if len(goal.split()) > 1 else ""
    if rest.lower().startswith("to "):
        rest = rest[3:]
    found = re.search(r"\bfrom\s+(.+)$", rest, re.IGNORECASE)
    if found is not None:
        rest = found.group(1)
    rest = _OBJECT_STOP.split(rest, maxsplit=1)[0].strip(" ,")
    words = [w for w in rest.split() if w.lower() not in ("the", "a", "an", "each", "every")]
    if not words or len(words) > 5:
        return None
    words[-1] = _singular(words[-1])
    return "the text of one " + " ".join(words)


def _imperative(phrase: str) -> str:
    """Turn "classifies tickets" into "classify tickets" (the first verb only)."""
    words = phrase.strip().split(maxsplit=1)
    if not words:
        return phrase
    verb, rest = words[0], words[1] if len(words) > 1 else ""
    lowered = verb.lower()
    if lowered.endswith("ies") and len(lowered) > 4:
        verb = verb[:-3] + "y"
    elif lowered.endswith(("sses", "shes", "ches", "xes", "zzes")):
        verb = verb[:-2]
    elif lowered.endswith("s") and not lowered.endswith(("ss", "us", "is")) and len(lowered) > 3:
        verb = verb[:-1]
    return f"{verb} {rest}".strip()


def _singular(word: str) -> str:
    lowered = word.lower()
    if lowered.endswith("ies") and len(lowered) > 4:
        return word[:-3] + "y"
    if lowered.endswith(("sses", "ches", "shes", "xes")):
        return word[:-2]
    if lowered.endswith("s") and not lowered.endswith(("ss", "us", "is")):
        return word[:-1]
    return word
