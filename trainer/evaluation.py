"""Held-out evaluation of a run: ``python -m trainer.evaluation --db PATH --run-id N``.

Every eval row of the run's snapshot is answered greedily by three systems on one copy of the
weights: ``base`` (zero-shot), ``few_shot`` (the base model shown k approved train rows of the
same snapshot before each row) and ``tuned`` (the adapter on). Their answers and scores are
stored with each score's 95% interval, the paired intervals of tuned - base and tuned -
few-shot, McNemar's test of the right-or-wrong metrics, the per-label results of a label task,
the per-field accuracy of a JSON task, and the tuned model's drift on general prompts.

The task's labels are the spec's (``output.labels`` of ``projects.task_spec`` when its
``output.kind`` is ``labels``, read here because trainer code cannot import the agent), else
the train answers' when they look like labels (``trainer.control.labels``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from store.database import open_database
from store.errors import InputError
from store.evals import (
    EvalItem,
    Evaluation,
    Forgetting,
    LabelReport,
    save_evaluation,
)
from store.projects import get_project_by_id
from store.runs import get_run
from trainer.control.comparison import SYSTEM_LABELS, paired_tests, score_intervals
from trainer.control.few_shot import Shot, choose_shots, few_shot_messages, shot_count
from trainer.control.forgetting import (
    answers_for,
    drift_verdict,
    general_conversation,
    general_prompts,
)
from trainer.control.labels import spec_labels, task_labels
from trainer.control.launch import BASE_MODEL_NAME, run_model_name
from trainer.control.process import child_main
from trainer.control.scoring import (
    is_json_reference,
    json_field_accuracy,
    label_metrics,
    mean_scores,
    score,
)
from trainer.control.snapshot import EVAL_FILE, TRAIN_FILE, read_snapshot_rows, with_system_prompt
from trainer.eval_generation import (
    Answer,
    chat_token_ids,
    general_answers,
    generate_answers,
    mean_answer_nll,
)
from trainer.models import load_base_model
from trainer.serving.inference import ModelPool

MAX_NEW_TOKENS_CAP = 512


def evaluate_run(db_path: Path, run_id: int) -> Evaluation:
    """Answer and score the run's eval rows with base, few-shot and tuned; measure drift;
    store and return the result."""
    db = open_database(db_path)
    run = get_run(db, run_id)
    if run.status != "completed" or not run.adapter_path or not run.run_dir:
        raise InputError(f"run {run_id} is {run.status}; only completed runs are evaluated")
    rows = read_snapshot_rows(Path(run.run_dir) / EVAL_FILE)
    if not rows:
        raise InputError(
            f"run {run_id} has no eval rows; give some examples the eval split "
            "(tunesmith examples import NAME FILE --split eval)"
        )
    train_rows = read_snapshot_rows(Path(run.run_dir) / TRAIN_FILE)
    project = get_project_by_id(db, run.project_id)
    candidates = train_shots(train_rows)
    labels = task_labels(spec_labels(project.task_spec), [shot.answer for shot in candidates])
    model, tokenizer = load_base_model(project.base_model, on_status=_print)
    # Module.to() is mistyped by the transformers decorators; the call is the plain torch one.
    movable: Any = model
    movable.to("cuda" if torch.cuda.is_available() else "cpu")
    pool = ModelPool(model, tokenizer, reuse_prefixes=False)
    tuned_name = run_model_name(run.id)
    pool.attach(tuned_name, Path(run.adapter_path))
    prompts = [with_system_prompt(row["messages"][:-1], project.system_prompt) for row in rows]
    references = [row["messages"][-1]["content"] for row in rows]
    max_new_tokens = answer_room(tokenizer, references)
    context = getattr(model.config, "max_position_embeddings", None)
    shots = fitted_shots(
        tokenizer,
        candidates,
        labels,
        prompts,
        context=context if isinstance(context, int) else None,
        room=max_new_tokens,
    )
    _print(f"Few-shot: {len(shots)} train examples before each row" + _label_note(labels))
    answers = answer_three_systems(pool, tuned_name, prompts, shots, max_new_tokens)
    _print(f"Evaluated {len(rows)}/{len(rows)} rows")
    per_item = {
        system: [
            score(answer, reference) for answer, reference in zip(outputs, references, strict=True)
        ]
        for system, outputs in answers.items()
    }
    items = [
        EvalItem(
            example_id=row.get("id"),
            prompt=prompt[-1]["content"],
            reference=reference,
            base_output=answers["base"][index],
            tuned_output=answers["tuned"][index],
            base_scores=per_item["base"][index],
            tuned_scores=per_item["tuned"][index],
            few_shot_output=answers["few_shot"][index],
            few_shot_scores=per_item["few_shot"][index],
        )
        for index, (row, prompt, reference) in enumerate(
            zip(rows, prompts, references, strict=True)
        )
    ]
    forgetting = measure_forgetting(pool, project.base_model, tuned_name)
    if forgetting is None:
        _print("Forgetting not measured: no answer tokens to score in the base's general answers")
    else:
        _print(f"Forgetting: drift {forgetting.drift:+.3f} nats/token ({forgetting.verdict})")
    return save_evaluation(
        db,
        run.id,
        items,
        base=mean_scores(per_item["base"]),
        tuned=mean_scores(per_item["tuned"]),
        few_shot=mean_scores(per_item["few_shot"]),
        shots=len(shots),
        intervals=score_intervals(per_item),
        mcnemar=paired_tests(per_item),
        labels=label_report(answers, references, labels) if labels else None,
        json_fields=(
            {
                system: json_field_accuracy(outputs, references)
                for system, outputs in answers.items()
            }
            if any(is_json_reference(reference) for reference in references)
            else None
        ),
        forgetting=forgetting,
    )


def answer_room(tokenizer: PreTrainedTokenizerBase, references: Sequence[str]) -> int:
    """New tokens an answer may take: room for a correct answer and a little more, so a
    rambling one is visibly wrong."""
    longest_reference = max(len(tokenizer(text)["input_ids"]) for text in references)
    return min(MAX_NEW_TOKENS_CAP, 2 * longest_reference + 16)


def answer_three_systems(
    pool: ModelPool,
    tuned_name: str,
    prompts: list[list[dict[str, str]]],
    shots: Sequence[Shot],
    max_new_tokens: int,
) -> dict[str, list[str]]:
    """Each system's greedy answers to ``prompts``: base, few-shot (base after ``shots``) and
    tuned (``tuned_name``)."""
    answers = {"base": _answer_all(pool, "base", BASE_MODEL_NAME, prompts, max_new_tokens)}
    if shots:
        few_shot_prompts = [few_shot_conversation(shots, prompt) for prompt in prompts]
        answers["few_shot"] = _answer_all(
            pool, "few_shot", BASE_MODEL_NAME, few_shot_prompts, max_new_tokens
        )
    else:
        # No shot fits: the few-shot system is the zero-shot one.
        answers["few_shot"] = answers["base"]
    answers["tuned"] = _answer_all(pool, "tuned", tuned_name, prompts, max_new_tokens)
    return answers


def train_shots(train_rows: Sequence[dict[str, Any]]) -> list[Shot]:
    """Each train row as a shot: its last user turn and the answer to it, in snapshot order."""
    shots = []
    for row in train_rows:
        messages = row["messages"]
        if len(messages) >= 2 and messages[-2]["role"] == "user":
            shots.append(Shot(messages[-2]["content"], messages[-1]["content"]))
    return shots


def few_shot_conversation(
    shots: Sequence[Shot], conversation: list[dict[str, str]]
) -> list[dict[str, str]]:
    """``conversation`` with ``shots`` as earlier exchanges, after its system prompt."""
    has_system = bool(conversation) and conversation[0]["role"] == "system"
    system = conversation[0]["content"] if has_system else None
    # few_shot_messages ends with the row's input; the row's own turns take its place.
    return few_shot_messages(shots, "", system)[:-1] + conversation[int(has_system) :]


def fitted_shots(
    tokenizer: PreTrainedTokenizerBase,
    candidates: Sequence[Shot],
    labels: Sequence[str],
    prompts: Sequence[list[dict[str, str]]],
    *,
    context: int | None,
    room: int,
) -> list[Shot]:
    """The few-shot system's shots: ``shot_count(labels)`` of ``candidates`` spread over the
    labels, cut to as many as leave the longest row ``room`` tokens to answer in ``context``."""
    chosen = choose_shots(candidates, labels, shot_count(labels))
    if context is None or not prompts:
        return chosen
    longest = max(prompts, key=lambda messages: len(chat_token_ids(tokenizer, messages)))
    # choose_shots deals the labels round robin, so every cut of its list is still spread.
    for count in range(len(chosen), 0, -1):
        conversation = few_shot_conversation(chosen[:count], longest)
        if len(chat_token_ids(tokenizer, conversation)) + room <= context:
            return chosen[:count]
    return []


def label_report(
    answers: dict[str, list[str]], references: list[str], labels: Sequence[str]
) -> LabelReport:
    """Each system's accuracy, macro-F1 and confusion matrix; the tuned model's per-label
    precision, recall, F1 and support."""
    metrics = {
        system: label_metrics(outputs, references, labels) for system, outputs in answers.items()
    }
    tuned = metrics["tuned"]
    return LabelReport(
        labels=tuned.labels,
        per_label={label: asdict(scores) for label, scores in tuned.per_label.items()},
        accuracy={system: result.accuracy for system, result in metrics.items()},
        macro_f1={system: result.macro_f1 for system, result in metrics.items()},
        confusion={system: result.confusion for system, result in metrics.items()},
    )


def measure_forgetting(pool: ModelPool, base_model: str, tuned_name: str) -> Forgetting | None:
    """How far ``tuned_name`` moved from its base on the general prompts marked ``drift``; None
    when the base answered every one with nothing (random weights, a broken chat template),
    which leaves no token to score.

    The drift is the mean per-token negative log-likelihood of the base model's own greedy
    answers under the tuned model minus under the base (nats per token): 0 when the tuned
    model still gives those answers the base's probabilities, larger the more it moved away.
    """
    prompts = general_prompts()
    recorded = general_answers(pool, base_model, prompts, on_status=_print)
    measured = answers_for(prompts, recorded, "drift")
    conversations = [general_conversation(answer.prompt) for answer in measured]
    scored = [Answer(answer.answer, answer.finished) for answer in measured]
    # An answer has tokens when it has text or ended with the end-of-turn token.
    if not any(answer.text or answer.finished for answer in scored):
        return None
    base_nll = mean_answer_nll(pool, BASE_MODEL_NAME, conversations, scored)
    tuned_nll = mean_answer_nll(pool, tuned_name, conversations, scored)
    drift = tuned_nll - base_nll
    return Forgetting(n=len(measured), drift=drift, verdict=drift_verdict(drift))


def _answer_all(
    pool: ModelPool,
    system: str,
    name: str,
    conversations: list[list[dict[str, str]]],
    max_new_tokens: int,
) -> list[str]:
    label = SYSTEM_LABELS[system]
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        _print(f"{label}: answered {done}/{total} rows")

    answers = generate_answers(
        pool, name, conversations, max_new_tokens=max_new_tokens, on_progress=progress
    )
    _print(f"{label}: {len(answers)} rows in {time.monotonic() - started:.1f} s")
    return [answer.text for answer in answers]


def _label_note(labels: Sequence[str]) -> str:
    return f" (a label task: {len(labels)} labels)" if labels else ""


def _print(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Evaluate one run; errors are one line on stderr and exit status 1."""
    parser = argparse.ArgumentParser(prog="python -m trainer.evaluation")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--run-id", type=int, required=True)
    args = parser.parse_args(argv)

    def work() -> None:
        result = evaluate_run(args.db, args.run_id)
        _print(f"Evaluation {result.id} of run {result.run_id}: {result.n} rows")

    return child_main(work)


if __name__ == "__main__":
    sys.exit(main())
