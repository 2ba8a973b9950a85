"""Forgetting: general prompts, the base model's own answers to them, and the drift verdict.

The prompts ship in ``trainer/general_prompts.jsonl`` (instructions, facts, arithmetic, short
rewrites). Those marked ``drift`` measure how far a tuned model moved from its base; those
marked ``replay`` are rehearsed by ``train --replay``. The two parts are disjoint, so a run is
never measured on the prompts it rehearsed.

The base model's greedy answers are recorded once per base model, under the tunesmith home,
keyed by the model's name and a hash of the prompts; the torch side
(``trainer.eval_generation``) makes them. No torch here.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, cast

from store.atomic import write_atomically
from store.errors import InputError
from store.paths import ensure_private_dir, home_dir

PromptUse = Literal["drift", "replay"]
USES: tuple[PromptUse, ...] = ("drift", "replay")
KINDS = ("instruction", "fact", "arithmetic", "rewrite")

PROMPTS_FILE = "general_prompts.jsonl"
"""The general prompts, beside this package's parent (package data of ``trainer``)."""

ANSWER_TOKENS = 96
"""Longest base answer recorded; a longer one is kept cut (``finished`` false)."""

ANSWERS_FOLDER = "general-answers"
"""Folder of the tunesmith home holding the recorded base answers, one file per base model."""

LITTLE_DRIFT = 0.25
"""Drift (nats per token) below which the tuned model still answers general prompts much as its
base did (each of the base's tokens under 1.3 times less likely). Measured on the embedded
model and the demo task (60 rows, default plan): learning rate 1e-4 drifts -0.01, the default
1e-3 0.07, 3e-3 0.29 and 1e-2 6.3; the default with ``--replay 0.2`` -0.12."""

STRONG_DRIFT = 1.0
"""Drift (nats per token) from which the tuned model has clearly moved off its base's general
answers: each of their tokens e times less likely, or worse (the 1e-2 run above: 6.3; with
``--replay 0.3``: 0.89)."""


@dataclass(frozen=True)
class GeneralPrompt:
    """One general prompt: its text, what it tests and which part it belongs to."""

    prompt: str
    kind: str
    use: PromptUse


@dataclass(frozen=True)
class GeneralAnswer:
    """The base model's greedy answer to a general prompt."""

    prompt: str
    answer: str
    finished: bool
    """Whether the answer ended with the end-of-turn token within ``ANSWER_TOKENS``."""


def general_prompts() -> list[GeneralPrompt]:
    """The shipped general prompts, in file order."""
    source = resources.files("trainer").joinpath(PROMPTS_FILE)
    return parse_general_prompts(source.read_text(encoding="utf-8"), PROMPTS_FILE)


def parse_general_prompts(text: str, source: str) -> list[GeneralPrompt]:
    """General prompts from JSONL text; a bad line is an InputError naming ``source:line``."""
    prompts: list[GeneralPrompt] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: not JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected an object with prompt, kind and use")
        prompt, kind, use = record.get("prompt"), record.get("kind"), record.get("use")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"{where}: prompt must be a non-empty string")
        if kind not in KINDS:
            raise InputError(f"{where}: kind must be one of {', '.join(KINDS)}")
        if use not in USES:
            raise InputError(f"{where}: use must be one of {', '.join(USES)}")
        prompts.append(GeneralPrompt(prompt.strip(), kind, cast(PromptUse, use)))
    return prompts


def answers_for(
    prompts: list[GeneralPrompt], answers: list[GeneralAnswer], use: PromptUse
) -> list[GeneralAnswer]:
    """The answers to the prompts of one part (``drift`` or ``replay``), in file order."""
    return [answer for prompt, answer in zip(prompts, answers, strict=True) if prompt.use == use]


def general_conversation(prompt: str) -> list[dict[str, str]]:
    """The chat a general prompt is asked in: the prompt alone, no project system prompt, so
    the answers belong to the base model and not to any one project."""
    return [{"role": "user", "content": prompt}]


def prompts_digest(prompts: list[GeneralPrompt]) -> str:
    """A hash of the prompts and the answer length: recorded answers to other ones are stale."""
    payload = json.dumps([[p.prompt, p.use] for p in prompts] + [ANSWER_TOKENS])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def answers_path(base_model: str, prompts: list[GeneralPrompt]) -> Path:
    """Where the base answers of ``base_model`` to ``prompts`` are recorded.

    The name is a readable slug of the model's name, a hash of the whole name (two models may
    share a slug) and a hash of the prompts.
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", base_model).strip("-.")[-40:] or "model"
    name_hash = hashlib.sha256(base_model.encode("utf-8")).hexdigest()[:12]
    digest = prompts_digest(prompts)[:12]
    return home_dir() / ANSWERS_FOLDER / f"{slug}-{name_hash}-{digest}.json"


def read_general_answers(
    base_model: str, prompts: list[GeneralPrompt]
) -> list[GeneralAnswer] | None:
    """The recorded answers of ``base_model`` to ``prompts``; None when there are none yet (or
    the file is not a complete record of them: it is then recorded again)."""
    path = answers_path(base_model, prompts)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        answers = [GeneralAnswer(**entry) for entry in record["answers"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if record.get("base_model") != base_model or [a.prompt for a in answers] != [
        p.prompt for p in prompts
    ]:
        return None
    return answers


def write_general_answers(
    base_model: str, prompts: list[GeneralPrompt], answers: list[GeneralAnswer]
) -> Path:
    """Record the answers of ``base_model`` to ``prompts`` (whole or not at all)."""
    path = answers_path(base_model, prompts)
    ensure_private_dir(home_dir())
    ensure_private_dir(path.parent)
    record = {
        "base_model": base_model,
        "prompts_digest": prompts_digest(prompts),
        "answer_tokens": ANSWER_TOKENS,
        "answers": [asdict(answer) for answer in answers],
    }
    write_atomically(path, json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    return path


def drift_verdict(drift: float) -> str:
    """The drift in words: ``little drift`` under ``LITTLE_DRIFT`` nats per token, ``strong
    drift`` from ``STRONG_DRIFT``, ``some drift`` between."""
    if drift < LITTLE_DRIFT:
        return "little drift"
    if drift < STRONG_DRIFT:
        return "some drift"
    return "strong drift"
