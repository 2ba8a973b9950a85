"""``tunesmith sweep``: the adaptation methods one after another on one snapshot, then a table."""

from __future__ import annotations

import time

import click
import sqlite_utils

from store.errors import InputError
from store.projects import get_project
from store.runs import Run, get_run
from trainer.control.config import METHODS
from trainer.control.jobs import is_run_process_alive, plan_for_project, start_run
from trainer.control.sweep import method_result, parse_methods, table_lines, verdict_lines
from tui.cli.runs import FOLLOW_POLL_SECONDS, end_message, follow
from tui.cli.state import CliState, pass_state
from tui.safe_text import terminal_safe


def _methods(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    try:
        return parse_methods(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from None


@click.command("sweep")
@click.argument("name")
@click.option(
    "--methods",
    default="lora,ia3,prompt-tuning",
    show_default=True,
    callback=_methods,
    help=f"Comma-separated methods to compare, of {', '.join(METHODS)}.",
)
@click.option(
    "--max-minutes",
    type=click.FloatRange(min=0.5),
    help="Training time for the whole sweep, shared equally by the methods.",
)
@click.option(
    "--max-steps", type=click.IntRange(min=1), help="Optimizer steps per method (tests, trials)."
)
@pass_state
def sweep_command(
    state: CliState,
    /,
    name: str,
    methods: list[str],
    max_minutes: float | None,
    max_steps: int | None,
) -> None:
    """Train project NAME once per method on the same rows, evaluate each, compare them.

    Each run is planned as `tunesmith train --method M` would plan it and evaluated on the eval
    rows as `tunesmith eval` does; the table says what each cost and how well it did.
    """
    db = state.db()
    project = get_project(db, name)
    budget = round(max_minutes * 60 / len(methods)) if max_minutes is not None else None
    plans = [
        plan_for_project(
            db, project, {"method": method, "budget_seconds": budget, "max_steps": max_steps}
        )
        for method in methods
    ]
    click.echo(
        f"Sweeping {', '.join(methods)} on {project.name}"
        + (f", {budget}s of training each." if budget else ".")
    )
    done: list[Run] = []
    first: Run | None = None
    for method, plan in zip(methods, plans, strict=True):
        run = start_run(db, state.db_path, project, plan, same_data_as=first)
        first = first or run
        click.echo(f"{method}: run {run.id} (log: {run.log_path})")
        ended = follow(db, run.id)
        click.echo(end_message(ended).replace("{project}", project.name))
        if ended.status == "completed":
            done.append(_evaluated(db, ended))
    if not done:
        raise InputError("no method completed a run; their logs say why")
    click.echo("")
    results = [method_result(db, run) for run in done]
    for line in [*table_lines(results), *verdict_lines(results)]:
        click.echo(terminal_safe(line))


def _evaluated(db: sqlite_utils.Database, run: Run) -> Run:
    """``run`` once its process has evaluated it (a run evaluates itself after its weights are
    saved, when the project has eval rows)."""
    if run.pid is not None and is_run_process_alive(run.pid):
        click.echo(f"Run {run.id}: evaluating base and tuned on the eval rows...")
        while is_run_process_alive(run.pid):
            time.sleep(FOLLOW_POLL_SECONDS)
    return get_run(db, run.id)
