"""The command line's evaluation and export commands; their torch work runs in a child process."""

from __future__ import annotations

import subprocess
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import sqlite_utils

from store.errors import InputError, TunesmithError
from store.evals import Evaluation, StoredEvalItem, latest_evaluation, stored_evaluation_items
from store.projects import Project, get_project, get_project_by_id
from store.runs import Run, get_run, latest_completed_run
from trainer.control.comparison import SYSTEM_LABELS
from trainer.control.eval_report import report_lines
from trainer.control.jobs import is_run_process_alive
from trainer.control.modelfile import GGUF_QUANTS, MERGED_DTYPES
from trainer.control.process import child_command, child_environment, failure_message
from trainer.control.scoring import METRICS
from trainer.control.snapshot import EVAL_FILE, read_snapshot_rows
from tui.cli.state import CliState, pass_state
from tui.safe_text import json_text, one_line, terminal_safe

if TYPE_CHECKING:
    from agent.models import ChatModelSource
    from agent.spec import TaskSpec

WAIT_POLL_SECONDS = 0.5
"""How often to look whether a just-completed run has finished evaluating itself."""

ITEM_WIDTH = 72
"""Characters of each prompt, reference and answer shown by ``eval --items``."""


def run_to_evaluate(db: sqlite_utils.Database, project: Project, run_id: int | None) -> Run:
    """Run ``run_id`` of ``project``, or its latest completed run; it must be completed."""
    if run_id is None:
        latest = latest_completed_run(db, project.id)
        if latest is None:
            raise InputError(
                f"project {project.name!r} has no completed run; train one: "
                f"tunesmith train {project.name}"
            )
        return latest
    run = get_run(db, run_id)
    if run.project_id != project.id:
        owner = get_project_by_id(db, run.project_id)
        raise InputError(f"run {run.id} belongs to project {owner.name!r}, not {project.name!r}")
    if run.status != "completed":
        raise InputError(f"run {run.id} is {run.status}; only completed runs are evaluated")
    return run


def evaluation_record(evaluation: Evaluation) -> dict[str, Any]:
    """An evaluation as the JSON that ``eval --json`` prints: every metric of each system (None
    where unused), the intervals, McNemar's tests and the drift; ``labels`` for a label task and
    ``json_fields`` for a JSON task; ``judge`` (an LLM judge's model, means, counts and
    intervals) or None. An evaluation stored before few-shot has ``few_shot`` and
    ``forgetting`` None and no intervals."""
    record: dict[str, Any] = {
        "run": evaluation.run_id,
        "n": evaluation.n,
        "base": {metric: evaluation.base.get(metric) for metric in METRICS},
        "tuned": {metric: evaluation.tuned.get(metric) for metric in METRICS},
        "few_shot": (
            {metric: evaluation.few_shot.get(metric) for metric in METRICS}
            | {"k": evaluation.shots}
            if evaluation.few_shot is not None
            else None
        ),
    }
    stored = evaluation.scores_record()
    record["intervals"] = stored.get("intervals", {})
    record["mcnemar"] = stored.get("mcnemar", {})
    for key in ("labels", "json_fields"):
        if key in stored:
            record[key] = stored[key]
    record["forgetting"] = stored.get("forgetting")
    record["judge"] = stored.get("judge")
    return record


def item_lines(number: int, stored: StoredEvalItem) -> list[str]:
    """One eval row: the prompt, the reference, each system's answer and the judge's
    verdicts, each on one safe line."""
    item = stored.item
    lines = [
        f"[{number}] {one_line(item.prompt, ITEM_WIDTH)}",
        f"    reference  {one_line(item.reference, ITEM_WIDTH)}",
        f"    base       {one_line(item.base_output, ITEM_WIDTH)}",
    ]
    if item.few_shot_output is not None:
        lines.append(f"    few-shot   {one_line(item.few_shot_output, ITEM_WIDTH)}")
    lines.append(f"    tuned      {one_line(item.tuned_output, ITEM_WIDTH)}")
    if stored.judge:
        grades = " · ".join(
            f"{SYSTEM_LABELS[system]} {'-' if verdict.score is None else f'{verdict.score:.2f}'}"
            for system, verdict in stored.judge.items()
        )
        lines.append(f"    judge      {grades}")
        tuned = stored.judge.get("tuned")
        if tuned is not None:
            lines.append(f"    why        {one_line(tuned.rationale, ITEM_WIDTH)}")
    return lines


def _judge(
    db: sqlite_utils.Database, evaluation: Evaluation, spec: TaskSpec, source: ChatModelSource
) -> Evaluation:
    """The evaluation judged by ``source``, with its progress on stderr."""
    from agent.work import Work
    from tui.judging import judge_evaluation

    click.echo(
        f"Judging every answer with {source.name} (Ctrl-C stops; nothing is stored until"
        " every answer is judged)...",
        err=True,
    )
    work = Work(report=lambda line: click.echo(line, err=True))
    return judge_evaluation(lambda: nullcontext(db), evaluation, spec, source, work)


def run_trainer_module(module: str, arguments: list[str]) -> None:
    """Run ``python -m module``; its output is progress on stderr, its failure one error."""
    # Warnings and tracebacks go to a file: only the child's one-line error is shown.
    with tempfile.TemporaryFile() as error_log:
        with subprocess.Popen(
            child_command(module, arguments),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=error_log,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=child_environment(),
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                click.echo(terminal_safe(line.rstrip("\n")), err=True)
        if process.returncode != 0:
            error_log.seek(0)
            errors = error_log.read().decode("utf-8", errors="replace")
            raise TunesmithError(terminal_safe(failure_message(module, errors, process.returncode)))


@click.command("eval")
@click.argument("name")
@click.option(
    "--run", "run_id", type=int, help="Run to evaluate (default: the latest completed run)."
)
@click.option("--again", is_flag=True, help="Evaluate afresh even when a result is stored.")
@click.option("--items", "show_items", is_flag=True, help="Also show every eval row's answers.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--judge/--no-judge",
    default=None,
    help=(
        "Have the agent's model grade every answer against the task's rules (again, if judged"
        " before). Default: a free-text task is judged once when the agent's model is set."
    ),
)
@pass_state
def eval_command(
    state: CliState,
    name: str,
    run_id: int | None,
    again: bool,
    show_items: bool,
    as_json: bool,
    judge: bool | None,
) -> None:
    """Score the answers of base, base few-shot and tuned to the eval rows of project NAME.

    A completed run evaluates itself, so its stored result is shown at once; without one
    (or with --again) the eval rows are answered now, greedily: by the base model, by the
    base model shown train examples, and by the tuned model.
    """
    db = state.db()
    project = get_project(db, name)
    run = run_to_evaluate(db, project, run_id)
    evaluation = None if again else latest_evaluation(db, run.id)
    if evaluation is None:
        evaluation = _evaluate(db, state.db_path, run, again=again)
    # Imported here: the agent's model client takes half a second to load, for this alone.
    from agent.spec import load_spec
    from tui.judging import configured_judge, required_judge, wants_judge

    spec = load_spec(project)
    if judge or (judge is None and wants_judge(evaluation, spec)):
        source = required_judge() if judge else configured_judge()
        if source is not None:
            evaluation = _judge(db, evaluation, spec, source)
    if as_json:
        record = evaluation_record(evaluation)
        if show_items:
            record["items"] = [
                {
                    "example_id": stored.item.example_id,
                    "prompt": stored.item.prompt,
                    "reference": stored.item.reference,
                    "base": stored.item.base_output,
                    "few_shot": stored.item.few_shot_output,
                    "tuned": stored.item.tuned_output,
                    "base_scores": stored.item.base_scores,
                    "few_shot_scores": stored.item.few_shot_scores,
                    "tuned_scores": stored.item.tuned_scores,
                    "judge": {system: asdict(v) for system, v in stored.judge.items()} or None,
                }
                for stored in stored_evaluation_items(db, evaluation.id)
            ]
        click.echo(json_text(record))
        return
    click.echo(
        f"Run {run.id} of {project.name!r}: {evaluation.n} eval rows, greedy answers"
        f" (evaluated {evaluation.created_at[:16].replace('T', ' ')} UTC)"
    )
    for line in report_lines(evaluation):
        # Labels and field names come from the dataset.
        click.echo(terminal_safe(line))
    if show_items:
        for number, stored in enumerate(stored_evaluation_items(db, evaluation.id), start=1):
            click.echo()
            for line in item_lines(number, stored):
                click.echo(line)
    else:
        click.echo(f"Every row's answers: tunesmith eval {project.name} --run {run.id} --items")


def _evaluate(db: sqlite_utils.Database, db_path: Path, run: Run, *, again: bool) -> Evaluation:
    """Wait for the run's own evaluation or make a new one; return the stored result."""
    assert run.run_dir is not None
    eval_rows = read_snapshot_rows(Path(run.run_dir) / EVAL_FILE)
    if not eval_rows:
        raise InputError(
            f"run {run.id} has no eval rows to score; give some examples the eval split "
            "(tunesmith examples import NAME FILE --split eval) and train again"
        )
    previous = latest_evaluation(db, run.id)
    if not again and run.pid is not None and is_run_process_alive(run.pid):
        click.echo(
            f"Run {run.id} is evaluating itself; waiting (Ctrl-C stops waiting)...", err=True
        )
        while is_run_process_alive(run.pid):
            time.sleep(WAIT_POLL_SECONDS)
        finished = latest_evaluation(db, run.id)
        if finished is not None:
            return finished
    click.echo(
        f"Evaluating run {run.id}: {len(eval_rows)} eval rows, base, few-shot and tuned...",
        err=True,
    )
    run_trainer_module("trainer.evaluation", ["--db", str(db_path), "--run-id", str(run.id)])
    evaluation = latest_evaluation(db, run.id)
    if evaluation is None or (previous is not None and evaluation.id == previous.id):
        raise TunesmithError(f"the evaluation of run {run.id} ended without storing a result")
    return evaluation


@click.command("export")
@click.argument("run_id", type=int)
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option(
    "--merged",
    is_flag=True,
    help="Merge the adapter into the base weights: a full model transformers loads alone.",
)
@click.option(
    "--dtype",
    type=click.Choice(MERGED_DTYPES),
    help="With --merged: the weights' dtype (default bf16, 2 bytes a parameter).",
)
@click.option(
    "--gguf",
    is_flag=True,
    help="Write the merged model as one GGUF file and an Ollama Modelfile (llama.cpp, Ollama).",
)
@click.option(
    "--quant",
    type=click.Choice(GGUF_QUANTS),
    help="With --gguf: f16 (default, exact to f16 rounding) or q8_0 (about half the size).",
)
@click.option(
    "--gguf-adapter",
    is_flag=True,
    help="Write the adapter as a GGUF LoRA, with a Modelfile that applies it to its base.",
)
@click.option("--force", is_flag=True, help="Replace DIR even when it is not empty.")
@pass_state
def export_command(
    state: CliState,
    run_id: int,
    directory: Path,
    merged: bool,
    dtype: str | None,
    gguf: bool,
    quant: str | None,
    gguf_adapter: bool,
    force: bool,
) -> None:
    """Write run RUN_ID's adapter, tokenizer and a model card (README.md) to DIR.

    Only safetensors, GGUF, JSON and text are written, into a new folder renamed into place
    when complete. A full fine-tuned run exports its whole model.
    """
    chosen = [flag for flag, on in (("--merged", merged), ("--gguf", gguf)) if on]
    chosen += ["--gguf-adapter"] if gguf_adapter else []
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)} cannot be combined; choose one")
    if dtype is not None and not merged:
        raise InputError("--dtype goes with --merged")
    if quant is not None and not gguf:
        raise InputError("--quant goes with --gguf (a GGUF LoRA is always f16)")
    run = get_run(state.db(), run_id)
    if run.status != "completed":
        raise InputError(f"run {run.id} is {run.status}; only completed runs are exported")
    target = directory.expanduser().absolute()
    arguments = ["--db", str(state.db_path), "--run-id", str(run.id), "--dir", str(target)]
    if merged:
        arguments += ["--merged", "--dtype", dtype or "bf16"]
    if gguf:
        arguments += ["--gguf", "--quant", quant or "f16"]
    arguments += (["--gguf-adapter"] if gguf_adapter else []) + (["--force"] if force else [])
    run_trainer_module("trainer.export", arguments)
    files = sorted(path.name for path in target.iterdir() if path.is_file())
    if gguf or gguf_adapter:
        what = "GGUF LoRA adapter" if gguf_adapter else f"GGUF model, {quant or 'f16'}"
    else:
        what = "LoRA adapter" if "adapter_config.json" in files else "full model"
    click.echo(f"Exported run {run.id} ({what}) to {terminal_safe(str(target))}:")
    for name in files:
        size = (target / name).stat().st_size
        click.echo(f"  {terminal_safe(name):<40} {_size(size):>9}")
    if "Modelfile" in files:
        click.echo(f"Run it: cd {terminal_safe(str(target))} && ollama create NAME -f Modelfile")
    click.echo(f"How to load it: {terminal_safe(str(target / 'README.md'))}")


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
