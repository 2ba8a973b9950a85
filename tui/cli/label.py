"""The command line's model-assisted labelling: proposals for unlabeled rows, accepting them,
and answers a person gives directly. The model work runs in ``trainer.labelling``'s process."""

from __future__ import annotations

import contextlib
import sys
import time

import click
import sqlite_utils

from store.errors import CancelledError, InputError
from store.examples import (
    Example,
    get_example,
    give_answer,
    unlabeled_examples,
)
from store.projects import Project, get_project
from store.runs import Run, latest_completed_run
from trainer.control.labelling import start_labelling
from trainer.control.labels import match_answer, project_labels, spec_labels
from trainer.control.launch import served_runs
from tui.cli.state import CliState, pass_state
from tui.safe_text import one_line, terminal_safe

EXIT_INTERRUPTED = 130
"""Exit status of a ``label`` stopped by Ctrl-C (its proposals so far are stored)."""

SURE_CONFIDENCE = 0.9
"""The confidence the summary counts as sure, and suggests accepting at."""

ROW_WIDTH = 60
"""Characters of an input shown per accepted row."""


def proposing_run(
    db: sqlite_utils.Database, project: Project, run_id: int | None, use_base: bool
) -> Run | None:
    """The run that proposes: the one named, else the latest completed one; None for the base
    model (asked for, or no run completed yet)."""
    if use_base:
        return None
    if run_id is not None:
        return served_runs(db, project, [run_id])[0]
    return latest_completed_run(db, project.id)


@click.command("label")
@click.argument("name")
@click.option(
    "--run",
    "run_id",
    type=int,
    help="Propose with this completed run (default: the latest, else the base model).",
)
@click.option(
    "--base",
    "use_base",
    is_flag=True,
    help="Propose with the base model shown the approved examples (few-shot).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Propose for at most N rows.")
@click.option("--again", is_flag=True, help="Propose afresh for rows that have a proposal.")
@pass_state
def label_command(
    state: CliState, name: str, run_id: int | None, use_base: bool, limit: int | None, again: bool
) -> None:
    """Propose an answer, with the model's confidence in it, for each unlabeled row of NAME.

    A label task (its spec names labels, or its answers are a few short strings) gets the most
    probable label and its probability among the labels; any other task, the greedy answer.
    Each proposal is stored as it is made; Ctrl-C stops after the current row and keeps them.
    """
    if run_id is not None and use_base:
        raise click.UsageError("--run and --base exclude each other")
    db = state.db()
    project = get_project(db, name)
    waiting = unlabeled_examples(db, project.id, unproposed_only=not again)
    if not waiting:
        if unlabeled_examples(db, project.id):
            click.echo(f"Every unlabeled row of {name!r} has a proposal; --again proposes afresh.")
        else:
            click.echo(
                f"No unlabeled rows in {name!r}. Import some: "
                f"tunesmith examples import {name} FILE --unlabeled"
            )
        return
    run = proposing_run(db, project, run_id, use_base)
    labels = project_labels(db, project)
    count = min(len(waiting), limit or len(waiting))
    model = f"run {run.id}" if run is not None else "the base model (few-shot)"
    task = f"labels: {', '.join(labels)}" if labels else "free-text answers"
    click.echo(
        terminal_safe(f"Labelling {count} rows of {name!r} with {model} ({task})."), err=True
    )
    click.echo("Each proposal is stored as it is made; Ctrl-C stops and keeps them.", err=True)
    started = time.monotonic()
    with start_labelling(
        state.db_path, project.name, run.id if run else None, labels, limit, again=again
    ) as job:
        try:
            for line in job.lines():
                click.echo(terminal_safe(line), err=True)
            job.wait()
        except KeyboardInterrupt:
            job.cancel()
            click.echo("Stopping after the current row (Ctrl-C again stops at once)...", err=True)
            for line in job.lines():
                click.echo(terminal_safe(line), err=True)
            with contextlib.suppress(CancelledError):
                job.wait()
            click.echo(_queue_summary(db, project, time.monotonic() - started, stopped=True))
            sys.exit(EXIT_INTERRUPTED)
    click.echo(_queue_summary(db, project, time.monotonic() - started, stopped=False))


def _queue_summary(
    db: sqlite_utils.Database, project: Project, seconds: float, *, stopped: bool
) -> str:
    """How the unlabeled rows stand now, and what to do next."""
    rows = unlabeled_examples(db, project.id)
    proposed = [e for e in rows if e.proposed is not None]
    sure = sum(1 for e in proposed if (e.confidence or 0.0) >= SURE_CONFIDENCE)
    verb = "Stopped" if stopped else "Done"
    lines = [
        f"{verb} in {seconds:.0f} s: {len(proposed)} of {len(rows)} unlabeled rows of"
        f" {project.name!r} have a proposal, {sure} of them at least"
        f" {SURE_CONFIDENCE:.0%} sure."
    ]
    if stopped and len(proposed) < len(rows):
        lines.append(f"Go on: tunesmith label {project.name}")
    if proposed:
        lines.append(
            f"Accept the sure ones: tunesmith examples accept {project.name}"
            f" --min-confidence {SURE_CONFIDENCE}; review the rest least sure first in the"
            f" app's Dataset area, or: tunesmith examples list {project.name}"
        )
    return "\n".join(lines)


@click.command("accept")
@click.argument("name")
@click.argument("example_ids", metavar="[ID]...", nargs=-1, type=int)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1),
    help="Accept only proposals at least this sure (0..1); with no ID, every such proposal.",
)
@pass_state
def accept_command(
    state: CliState, name: str, example_ids: tuple[int, ...], min_confidence: float | None
) -> None:
    """Accept the proposed answers of examples ID... of NAME: each becomes the row's answer,
    approved, with source "labelled".

    Every ID is checked before anything is written. A proposal that would duplicate another
    example is reported and left; the exit status is then 1.
    """
    if not example_ids and min_confidence is None:
        raise click.UsageError("name the examples to accept (ID...), or give --min-confidence X")
    db = state.db()
    project = get_project(db, name)
    if example_ids:
        chosen = [
            _proposal_row(db, project, example_id) for example_id in dict.fromkeys(example_ids)
        ]
    else:
        chosen = [e for e in unlabeled_examples(db, project.id) if e.proposed is not None]
    threshold = min_confidence if min_confidence is not None else 0.0
    accepted = failed = 0
    for example in chosen:
        if (example.confidence or 0.0) < threshold:
            continue
        assert example.proposed is not None
        try:
            give_answer(db, example.id, example.proposed)
        except InputError as error:
            click.echo(terminal_safe(f"example {example.id}: {error.message}"), err=True)
            failed += 1
            continue
        accepted += 1
        click.echo(
            f"{example.id:>6}  {one_line(example.proposed, 24):<24}"
            f"  {example.confidence or 0.0:>4.2f}  {one_line(example.prompt, ROW_WIDTH)}"
        )
    left = sum(1 for e in chosen if (e.confidence or 0.0) < threshold)
    click.echo(
        f"Accepted {accepted} proposals in {project.name!r} (approved, source labelled)"
        + (f"; {left} under {threshold:.2f} left to review" if left else "")
        + (f"; {failed} not accepted" if failed else "")
        + "."
    )
    if failed:
        sys.exit(1)


@click.command("label")
@click.argument("name")
@click.argument("example_id", metavar="ID", type=int)
@click.argument("answer")
@pass_state
def give_label_command(state: CliState, name: str, example_id: int, answer: str) -> None:
    """Give example ID of NAME the answer ANSWER (approved, source "labelled"), replacing any
    answer it had. For a label task ANSWER is matched to its label, case aside."""
    db = state.db()
    project = get_project(db, name)
    example = _project_row(db, project, example_id)
    labels = project_labels(db, project)
    label = match_answer(labels, answer) if labels else None
    if label is None and spec_labels(project.task_spec):
        raise InputError(
            f"{answer!r} is not one of the labels of {project.name!r} ({', '.join(labels)})"
        )
    labelled = give_answer(db, example.id, label or answer)
    click.echo(
        f"Labelled example {labelled.id}: {one_line(labelled.response, 40)}"
        f" (approved, {labelled.split})."
    )


def _project_row(db: sqlite_utils.Database, project: Project, example_id: int) -> Example:
    """Live example ``example_id``, which must belong to ``project``."""
    example = get_example(db, example_id)
    if example.project_id != project.id:
        raise InputError(f"example {example_id} is not in project {project.name!r}")
    if example.deleted_at is not None:
        raise InputError(f"example {example_id} was removed")
    return example


def _proposal_row(db: sqlite_utils.Database, project: Project, example_id: int) -> Example:
    """Example ``example_id`` of ``project``, unanswered and with a proposal to accept."""
    example = _project_row(db, project, example_id)
    if example.answered:
        raise InputError(f"example {example_id} already has an answer")
    if example.proposed is None:
        raise InputError(
            f"example {example_id} has no proposal yet; propose one: tunesmith label {project.name}"
        )
    return example
