"""Proposed answers for a project's unlabeled rows: ``python -m trainer.labelling --db PATH
--project NAME [--run-id N] [--label LABEL ...] [--limit N] [--again]``.

A completed run proposes with the prompt it was trained on (the project's system prompt and
the row); without one the base model is shown approved examples first (few-shot). Each
proposal carries a confidence in 0..1 from the model's own token probabilities: for a label
task, the probability of the chosen label among the labels (each label scored as the whole
answer, end of turn included); otherwise the geometric mean probability of the tokens of its
greedy answer. Each proposal is stored the moment it is made, so a killed labeller loses none;
SIGTERM (or, with ``--exit-on-stdin-eof``, the launcher's pipe closing) stops it between rows.

A small base model shown a few examples prefers some labels whatever the input (the embedded
model chose "billing" for 30 of 40 support messages, 43% right). Its few-shot label
probabilities are therefore calibrated: divided by their mean over the shots' own inputs,
which are spread over the labels, and normalised again (batch calibration, with the shots as
the batch). On those 40 messages that made 65% right (73% with a system prompt naming the
labels, from 45%).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
import torch

from store.database import open_database
from store.errors import InputError, NotFoundError
from store.examples import (
    Example,
    get_example,
    list_examples,
    messages_to_json,
    set_proposal,
    unlabeled_examples,
)
from store.projects import Project, get_project
from trainer.control.few_shot import Shot, choose_shots, few_shot_messages, shot_count
from trainer.control.labelling import PROGRESS_PREFIX, STOPPED_EXIT_STATUS
from trainer.control.launch import BASE_MODEL_NAME, run_model_name, served_runs
from trainer.control.process import child_main
from trainer.control.snapshot import with_system_prompt
from trainer.models import load_base_model
from trainer.serving.inference import ModelPool, PromptTooLongError
from trainer.training.hardware import choose_threads

MAX_NEW_TOKENS_CAP = 256
"""Longest free-text answer proposed, in tokens."""

DEFAULT_MAX_NEW_TOKENS = 128
"""Longest free-text answer when no approved answer shows how long answers are."""

SHOWN_ANSWER_CHARS = 40
"""Characters of each proposal shown in its progress line."""

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Proposal:
    """A model's answer for one row and how sure it was of it (0..1)."""

    answer: str
    confidence: float


class Labeller:
    """One model proposing answers: the most probable label of a label task, else its greedy
    answer. The conversation's start (the system prompt and the shots, the same for every row)
    is read once, and its keys and values reused for each row."""

    def __init__(
        self, model: Any, tokenizer: Any, labels: Sequence[str], *, max_new_tokens: int
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.labels = tuple(labels)
        self.max_new_tokens = max_new_tokens
        self._label_ids = [self._answer_ids(label) for label in self.labels]
        self._head: tuple[list[int], Any] | None = None
        self._prior: torch.Tensor | None = None

    def calibrate(self, reference: Sequence[Messages]) -> None:
        """Divide the label probabilities from now on by their mean over ``reference`` (the
        shots' own inputs, evenly spread over the labels), removing the model's preference
        for some labels whatever the input."""
        if not self.labels or not reference:
            return
        with torch.inference_mode():
            self._prior = torch.stack(
                [self._label_probabilities(*self._split(messages)) for messages in reference]
            ).mean(dim=0)

    def propose(self, messages: Messages) -> Proposal | None:
        """The proposal for a conversation that ends with the user's turn; None when the
        model's greedy answer is empty, PromptTooLongError when it leaves no room for one."""
        head_ids, rest_ids = self._split(messages)
        room = self._room(len(head_ids) + len(rest_ids))
        with torch.inference_mode():
            if self.labels:
                return self._choose_label(head_ids, rest_ids)
            return self._generate(head_ids, rest_ids, min(self.max_new_tokens, room))

    def label_probabilities(self, messages: Messages) -> list[float]:
        """The probability of each label as the whole answer to ``messages``, normalised over
        the labels (they sum to 1), before any calibration."""
        head_ids, rest_ids = self._split(messages)
        with torch.inference_mode():
            return self._label_probabilities(head_ids, rest_ids).tolist()

    def _choose_label(self, head_ids: list[int], rest_ids: list[int]) -> Proposal:
        probabilities = self._label_probabilities(head_ids, rest_ids)
        if self._prior is not None:
            weighted = probabilities / self._prior.clamp_min(1e-12)
            probabilities = weighted / weighted.sum()
        best = int(torch.argmax(probabilities))
        return Proposal(self.labels[best], _unit(float(probabilities[best])))

    def _label_probabilities(self, head_ids: list[int], rest_ids: list[int]) -> torch.Tensor:
        """Each label's summed token log-probability after the prompt, softmaxed over labels.

        The prompt is read once; its keys and values are then repeated for the labels, which
        are scored together in one batch, right-padded (padding after a label's last token
        cannot change the logits before it).
        """
        output = self.model(
            input_ids=self._tensor([rest_ids]), past_key_values=self._cached(head_ids)
        )
        first = torch.log_softmax(output.logits[0, -1].float(), dim=-1)
        longest = max(len(ids) for ids in self._label_ids)
        after = None
        if longest > 1:
            cache = output.past_key_values
            cache.batch_repeat_interleave(len(self._label_ids))
            pad = self.tokenizer.pad_token_id or 0
            batch = [ids + [pad] * (longest - len(ids)) for ids in self._label_ids]
            logits = self.model(input_ids=self._tensor(batch), past_key_values=cache).logits
            after = torch.log_softmax(logits.float(), dim=-1)
        scores = []
        for index, ids in enumerate(self._label_ids):
            total = first[ids[0]]
            for position in range(1, len(ids)):
                assert after is not None
                total = total + after[index, position - 1, ids[position]]
            scores.append(total)
        return torch.softmax(torch.stack(scores), dim=0)

    def _generate(
        self, head_ids: list[int], rest_ids: list[int], max_new_tokens: int
    ) -> Proposal | None:
        input_ids = self._tensor([head_ids + rest_ids])
        result = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            past_key_values=self._cached(head_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
        new_ids = result.sequences[0, input_ids.shape[1] :]
        answer = str(self.tokenizer.decode(new_ids, skip_special_tokens=True)).strip()
        if not answer:
            return None
        # The raw logits: the model's own probabilities, before any logits processor.
        log_probs = torch.log_softmax(torch.stack(result.logits)[:, 0].float(), dim=-1)
        chosen = log_probs.gather(1, new_ids[:, None].to(log_probs.device))
        return Proposal(answer, _unit(math.exp(float(chosen.mean()))))

    def _room(self, prompt_tokens: int) -> int:
        """Tokens the model's context has left after the prompt for an answer (the longest
        label's, for a label task); PromptTooLongError when that is not enough."""
        context = getattr(self.model.config, "max_position_embeddings", None)
        if not isinstance(context, int):
            return self.max_new_tokens
        needed = max((len(ids) for ids in self._label_ids), default=1)
        if prompt_tokens + needed > context:
            raise PromptTooLongError(
                f"the prompt has {prompt_tokens} tokens; the model's context holds {context}"
            )
        return context - prompt_tokens

    def _split(self, messages: Messages) -> tuple[list[int], list[int]]:
        """The token ids of the conversation's start (every turn but the last) and of the rest,
        up to the start of the answer; no start when the template does not extend it."""
        full = self._template(messages, generation_prompt=True)
        if len(messages) > 1:
            head = self._template(messages[:-1], generation_prompt=False)
            if full.startswith(head):
                return self._ids(head), self._ids(full[len(head) :])
        return [], self._ids(full)

    def _cached(self, head_ids: list[int]) -> Any:
        """A copy of the keys and values of ``head_ids`` (computed once while the start stays
        the same), or None for no start."""
        if not head_ids:
            return None
        if self._head is None or self._head[0] != head_ids:
            output = self.model(input_ids=self._tensor([head_ids]), use_cache=True)
            self._head = (head_ids, output.past_key_values)
        return copy.deepcopy(self._head[1])

    def _answer_ids(self, answer: str) -> list[int]:
        """The tokens of ``answer`` as a whole assistant turn, its end-of-turn token included,
        so a label that begins another ("bill", "billing") is not scored as its prefix."""
        probe = [{"role": "user", "content": "?"}]
        prompt = self._template(probe, generation_prompt=True)
        turn = self._template([*probe, {"role": "assistant", "content": answer}])
        eos = self.tokenizer.eos_token or ""
        if turn.startswith(prompt) and answer in turn[len(prompt) :]:
            suffix = turn[len(prompt) :]
            end = suffix.find(eos, suffix.index(answer) + len(answer)) if eos else -1
            suffix = suffix[: end + len(eos)] if end >= 0 else suffix
        else:
            suffix = answer + eos
        return self._ids(suffix)

    def _template(self, messages: Messages, *, generation_prompt: bool = False) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt
            )
        )

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _tensor(self, rows: list[list[int]]) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.long, device=self.model.device)


def label_project(
    db_path: Path,
    project_name: str,
    *,
    run_id: int | None,
    labels: Sequence[str],
    limit: int | None,
    again: bool,
    stop: threading.Event,
) -> int:
    """Propose and store an answer for each unlabeled row (those without a proposal, unless
    ``again``), least confident first; the exit status (``STOPPED_EXIT_STATUS`` when stopped)."""
    if not db_path.is_file():
        raise NotFoundError(f"{db_path}: database not found")
    db = open_database(db_path)
    project = get_project(db, project_name)
    rows = unlabeled_examples(db, project.id, unproposed_only=not again)[:limit]
    if not rows:
        _print("Nothing to label: every unlabeled row has a proposal.")
        return 0
    run = served_runs(db, project, [run_id])[0] if run_id is not None else None
    approved = [e for e in list_examples(db, project.id) if e.status == "approved" and e.answered]
    model, tokenizer = load_base_model(project.base_model, on_status=_print)
    # Module.to() is mistyped by the transformers decorators; the call is the plain torch one.
    movable: Any = model
    if torch.cuda.is_available():
        movable.to("cuda")
    else:
        choose_threads()
    pool = ModelPool(model, tokenizer, reuse_prefixes=False)
    proposer = BASE_MODEL_NAME
    shots: list[Shot] = []
    if run is not None:
        proposer = run_model_name(run.id)
        _print(f"Attaching run {run.id}'s adapter...")
        pool.attach(proposer, Path(str(run.adapter_path)))
        if pool.virtual_tokens(proposer):
            # The labeller reuses the cache of each row's shared head, which the virtual tokens
            # would have to come before.
            raise InputError(
                f"run {run.id} was trained with prompt tuning, which cannot label; "
                "use a LoRA, IA3 or full run, or the base model"
            )
        described = f"run {run.id}"
    else:
        train_rows = [Shot(e.prompt, e.response) for e in approved if e.split == "train"]
        shots = choose_shots(train_rows, labels, shot_count(labels))
        described = f"the base model shown {len(shots)} approved examples"
    task = f"choosing among {len(labels)} labels" if labels else "answering greedily"
    _print(f"Proposing answers for {len(rows)} rows with {described}, {task}...")
    max_new_tokens = _answer_budget(tokenizer, [e.response for e in approved])
    with pool.lock, pool.selected(proposer) as selected:
        labeller = Labeller(selected, tokenizer, labels, max_new_tokens=max_new_tokens)
        if labels and shots:
            _print(f"Calibrating the label probabilities on the {len(shots)} examples shown...")
            labeller.calibrate(
                [few_shot_messages(shots, shot.input, project.system_prompt) for shot in shots]
            )
        for done, row in enumerate(rows, start=1):
            if stop.is_set():
                _print(f"Stopped after {done - 1}/{len(rows)} rows; their proposals are stored.")
                return STOPPED_EXIT_STATUS
            try:
                proposal = labeller.propose(_conversation(row, project, shots, run is not None))
            except PromptTooLongError as error:
                outcome = f"skipped ({error.message})"
            else:
                outcome = _store(db, row.id, proposal, proposer)
            _print(f"{PROGRESS_PREFIX}{done}/{len(rows)}: example {row.id} -> {outcome}")
    return 0


def _conversation(row: Example, project: Project, shots: list[Shot], tuned: bool) -> Messages:
    """What the model reads for ``row``: as a run was trained (the system prompt and the row),
    or the base model's few-shot chat."""
    if tuned:
        return with_system_prompt(messages_to_json(row.messages), project.system_prompt)
    system = next((m.content for m in row.messages if m.role == "system"), None)
    return few_shot_messages(shots, row.messages[-1].content, system or project.system_prompt)


def _store(
    db: sqlite_utils.Database, example_id: int, proposal: Proposal | None, proposer: str
) -> str:
    """Store ``proposal`` unless the row was answered or removed meanwhile; say what was done."""
    if proposal is None:
        return "no answer (the model's answer was empty)"
    try:
        current = get_example(db, example_id)
    except NotFoundError:
        return "skipped (removed meanwhile)"
    if current.deleted_at is not None or current.answered:
        return "skipped (labelled or removed meanwhile)"
    set_proposal(db, example_id, proposal.answer, proposal.confidence, proposer)
    shown = " ".join(proposal.answer.split())
    if len(shown) > SHOWN_ANSWER_CHARS:
        shown = shown[: SHOWN_ANSWER_CHARS - 1] + "…"
    return f"{shown} ({proposal.confidence:.2f})"


def _answer_budget(tokenizer: Any, answers: Sequence[str]) -> int:
    """Tokens for a free-text answer: room for the longest approved answer and a little more."""
    if not answers:
        return DEFAULT_MAX_NEW_TOKENS
    longest = max(
        len(tokenizer(answer, add_special_tokens=False)["input_ids"]) for answer in answers
    )
    return min(MAX_NEW_TOKENS_CAP, 2 * longest + 16)


def _unit(value: float) -> float:
    """A probability held to 0..1 against rounding."""
    return min(1.0, max(0.0, value))


def _print(message: str) -> None:
    print(message, flush=True)


def _stop_when_stdin_closes(stop: threading.Event) -> None:
    """Stop after the current row once stdin reaches end of file (the launcher is gone)."""
    # os.read, not sys.stdin: a daemon thread blocked in a buffered read aborts the
    # interpreter's shutdown ("could not acquire lock for <stdin>").
    while os.read(sys.stdin.fileno(), 65536):
        pass
    stop.set()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.labelling",
        description="Propose an answer, with a confidence, for each unlabeled row of a project.",
    )
    parser.add_argument("--db", type=Path, required=True, help="The database file.")
    parser.add_argument("--project", required=True, help="The project whose rows to label.")
    parser.add_argument(
        "--run-id", type=int, help="Propose with this completed run (default: the base model)."
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        help="A label of the task (repeatable; none: answers are free text).",
    )
    parser.add_argument("--limit", type=int, help="Label at most this many rows.")
    parser.add_argument(
        "--again", action="store_true", help="Propose afresh for rows that have a proposal."
    )
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="Stop when stdin closes, so the labeller ends with the process that started it.",
    )
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Label the project's rows; errors are one line on stderr and exit status 1."""
    args = _parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    if args.exit_on_stdin_eof:
        threading.Thread(
            target=_stop_when_stdin_closes, args=(stop,), name="stdin-watch", daemon=True
        ).start()
    return child_main(
        lambda: label_project(
            args.db,
            args.project,
            run_id=args.run_id,
            labels=args.label,
            limit=args.limit,
            again=args.again,
            stop=stop,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
