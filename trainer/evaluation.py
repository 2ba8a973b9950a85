"""Held-out evaluation of a run: ``python -m trainer.evaluation --db PATH --run-id N``.

Every eval row of the run's snapshot is answered greedily by the base model and the tuned
model (the same weights, adapter off and on); the answers and their scores are stored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from store.database import open_database
from store.errors import InputError
from store.evals import EvalItem, Evaluation, save_evaluation
from store.projects import get_project_by_id
from store.runs import get_run
from trainer.control.launch import BASE_MODEL_NAME, run_model_name
from trainer.control.process import child_main
from trainer.control.scoring import mean_scores, score
from trainer.control.snapshot import EVAL_FILE, read_snapshot_rows, with_system_prompt
from trainer.models import load_base_model
from trainer.serving.inference import ModelPool

BATCH_SIZE = 8
MAX_NEW_TOKENS_CAP = 512


def evaluate_run(db_path: Path, run_id: int) -> Evaluation:
    """Answer and score the run's eval rows with base and tuned; store and return the result."""
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
    project = get_project_by_id(db, run.project_id)
    model, tokenizer = load_base_model(project.base_model, on_status=_print)
    pool = ModelPool(model, tokenizer)
    tuned_name = run_model_name(run.id)
    pool.attach(tuned_name, Path(run.adapter_path))
    prompts = [with_system_prompt(row["messages"][:-1], project.system_prompt) for row in rows]
    references = [row["messages"][-1]["content"] for row in rows]
    longest_reference = max(len(tokenizer(text)["input_ids"]) for text in references)
    # Room for a correct answer and a little more, so a rambling one is visibly wrong.
    max_new_tokens = min(MAX_NEW_TOKENS_CAP, 2 * longest_reference + 16)
    answers: dict[str, list[str]] = {BASE_MODEL_NAME: [], tuned_name: []}
    for start in range(0, len(prompts), BATCH_SIZE):
        batch = prompts[start : start + BATCH_SIZE]
        for name, outputs in answers.items():
            outputs.extend(pool.generate(name, batch, max_new_tokens=max_new_tokens))
        _print(f"Evaluated {min(start + BATCH_SIZE, len(prompts))}/{len(prompts)} rows")
    items = [
        EvalItem(
            example_id=row.get("id"),
            prompt=prompt[-1]["content"],
            reference=reference,
            base_output=base_output,
            tuned_output=tuned_output,
            base_scores=score(base_output, reference),
            tuned_scores=score(tuned_output, reference),
        )
        for row, prompt, reference, base_output, tuned_output in zip(
            rows, prompts, references, answers[BASE_MODEL_NAME], answers[tuned_name], strict=True
        )
    ]
    return save_evaluation(
        db,
        run.id,
        items,
        base=mean_scores(item.base_scores for item in items),
        tuned=mean_scores(item.tuned_scores for item in items),
    )


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
