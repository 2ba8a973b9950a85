"""The product's path on a GPU: the demo task trained and evaluated by the run process that
`tunesmith train` starts, with the planned defaults, timed.

It answers whether a run on CUDA goes through its whole path (load, precision, speedups,
training, validation, saving, the three-way evaluation) and how long it takes. It trains the
embedded model, or a random-weight model of a named shape (``random-135m`` is the embedded
model's, for a machine the embedded model cannot be copied to), whose scores then mean nothing.

    python bench/gpu_run.py [--model embedded|random-135m|random-tiny] [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.train_throughput import DEMO, RANDOM_SHAPES, load_model
from store.database import open_database
from store.evals import latest_evaluation
from store.examples import NewExample, add_examples
from store.imports import stream_examples
from store.projects import create_project
from store.runs import get_run
from trainer.control.distributed import Launch, launcher_command
from trainer.control.jobs import plan_for_project, prepare_run
from trainer.models import DEFAULT_BASE_MODEL


def main() -> None:
    """Train the demo task once with the run process and print how it went."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["embedded", *RANDOM_SHAPES], default="embedded")
    parser.add_argument("--tokenizer", type=Path, help="As bench/train_throughput.py takes it.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        base = DEFAULT_BASE_MODEL
        if args.model != "embedded":
            folder = home / args.model
            model, tokenizer = load_model(args.model, args.tokenizer)
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            base = str(folder)
        os.environ["TUNESMITH_HOME"] = str(home)
        db_path = home / "tunesmith.db"
        db = open_database(db_path)
        project = create_project(db, "demo", base_model=base)
        rows = [row for row in stream_examples(DEMO) if isinstance(row, NewExample)]
        add_examples(db, project.id, rows, source="imported")
        plan = plan_for_project(db, project)
        print("plan:", json.dumps(plan.config.to_dict()), flush=True)
        run = prepare_run(db, project, plan)
        started = time.perf_counter()
        # In the foreground, its log on this terminal: what `tunesmith train` follows.
        command = launcher_command(Launch(), db_path=db_path, run_id=run.id, resume=False)
        process = subprocess.run(command, check=False)
        seconds = time.perf_counter() - started
        run = get_run(db, run.id)
        peak = f"{run.peak_memory / 2**20:.0f} MiB" if run.peak_memory else "not recorded"
        print(
            f"run: {run.status} (exit {process.returncode}) in {seconds:.0f} s, step "
            f"{run.current_step} of {run.max_steps}, best step {run.best_step}, "
            f"stop: {run.stop_reason}, peak memory {peak}, error: {run.error}"
        )
        evaluation = latest_evaluation(db, run.id)
        if evaluation is not None:
            print("evaluation:", json.dumps(evaluation.scores_record(), default=str))


if __name__ == "__main__":
    main()
