"""The command line's training commands: train, resume, follow, list, show and stop runs."""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict
from typing import Any

import click
import sqlite_utils
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from store.errors import InputError
from store.projects import get_project, get_project_by_id
from store.runs import Run, RunMetric, get_run, list_runs, metrics
from store.vocabulary import RunStatus
from trainer.control.config import METHODS, check_setting, parse_duration, setting_help
from trainer.control.distributed import DEFAULT_MASTER_PORT, STRATEGIES, Launch, launcher_command
from trainer.control.jobs import (
    join_run,
    launch_commands,
    plan_for_project,
    refresh_runs,
    resume_commands,
    resume_run,
    start_run,
    stop_run,
)
from tui.cli.checks import TRAIN_WARNINGS, project_findings, warning_lines
from tui.cli.state import CliState, pass_state
from tui.run_text import check_lines, eta_text, stop_asked_text
from tui.safe_text import terminal_safe

FOLLOW_POLL_SECONDS = 0.5
FINAL_STATUSES: tuple[RunStatus, ...] = ("completed", "failed", "stopped", "interrupted")
"""A followed run in one of these has ended."""


def run_record(run: Run) -> dict[str, Any]:
    """A run as the JSON that ``runs show --json`` and ``runs list --json`` print."""
    record = asdict(run)
    record["step"] = run.current_step
    record["last_checkpoint_step"] = run.checkpoint_step
    return record


def run_line(run: Run) -> str:
    """One line about a run for a listing."""
    steps = f"{run.current_step}/{run.max_steps or '?'}"
    checkpoint = f"checkpoint {run.checkpoint_step}" if run.checkpoint_step else "no checkpoint"
    line = (
        f"run {run.id:<4} {run.status:<11} step {steps:<9} {checkpoint:<16} {run.created_at[:19]}"
    )
    if run.error:
        line += f"  {terminal_safe(run.error)}"
    return line


def follow(db: sqlite_utils.Database, run_id: int) -> Run:
    """Show the run's progress until it ends; Ctrl-C stops following, not the run.

    On a terminal this is a live progress bar (step, loss, tokens/s, ETA) with eval losses
    printed above it; piped, it is one line per logged step, for scripts and logs.
    """
    console = Console(stderr=False, highlight=False)
    try:
        if console.is_terminal:
            return _follow_with_bar(db, run_id, console)
        return _follow_with_lines(db, run_id)
    except KeyboardInterrupt:
        click.echo(
            f"\nDetached: run {run_id} keeps training. Follow it again: tunesmith runs follow"
            f" {run_id}; stop it: tunesmith runs stop {run_id}"
        )
        sys.exit(0)


def _follow_with_lines(db: sqlite_utils.Database, run_id: int) -> Run:
    last_row = 0
    printed_status = ""
    while True:
        refresh_runs(db)
        run = get_run(db, run_id)
        if run.status != printed_status:
            click.echo(f"Run {run.id}: {run.status}")
            printed_status = run.status
        for row_id, metric in metrics(db, run_id, after_id=last_row):
            click.echo(_metric_line(metric, run))
            last_row = row_id
        if run.status in FINAL_STATUSES:
            return run
        time.sleep(FOLLOW_POLL_SECONDS)


def _follow_with_bar(db: sqlite_utils.Database, run_id: int, console: Console) -> Run:
    last_row = 0
    columns = (
        TextColumn("run {task.fields[run]} {task.fields[status]:<8}"),
        BarColumn(),
        TextColumn("step {task.fields[steps]}"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[speed]} tok/s"),
        TextColumn("{task.fields[eta]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(
            "train",
            total=None,
            run=run_id,
            status="queued",
            steps="0/?",
            loss="-",
            speed="-",
            eta=eta_text(None, at_most=False),
        )
        while True:
            refresh_runs(db)
            run = get_run(db, run_id)
            for row_id, metric in metrics(db, run_id, after_id=last_row):
                last_row = row_id
                if metric.eval_loss is not None:
                    progress.console.print(_metric_line(metric, run))
                if metric.loss is not None:
                    progress.update(
                        task,
                        loss=f"{metric.loss:.4f}",
                        speed=(
                            f"{metric.tokens_per_second:,.0f}"
                            if metric.tokens_per_second is not None
                            else "-"
                        ),
                        eta=eta_text(metric.eta_seconds, at_most=run.validates),
                    )
            progress.update(
                task,
                total=run.max_steps,
                completed=run.current_step,
                status=run.status,
                steps=f"{run.current_step}/{run.max_steps or '?'}",
            )
            if run.status in FINAL_STATUSES:
                return run
            time.sleep(FOLLOW_POLL_SECONDS)


def _metric_line(metric: RunMetric, run: Run) -> str:
    parts = [f"step {metric.step}/{run.max_steps or '?'}"]
    if metric.loss is not None:
        parts.append(f"loss {metric.loss:.4f}")
    if metric.eval_loss is not None:
        parts.append(f"eval loss {metric.eval_loss:.4f}")
    if metric.validation_score is not None:
        parts.append(f"validation {metric.validation_score:.2f}")
    if metric.tokens_per_second is not None:
        parts.append(f"{metric.tokens_per_second:,.0f} tok/s")
    if metric.eta_seconds is not None:
        parts.append(eta_text(metric.eta_seconds, at_most=run.validates))
    return "  ".join(parts)


def end_message(run: Run) -> str:
    """What to say when a followed run ends."""
    if run.status == "completed":
        why = f"Outcome: {terminal_safe(run.stop_reason)}.\n" if run.stop_reason else ""
        return (
            f"{why}Run {run.id} completed. Try it: tunesmith compare {{project}} PROMPT"
            f" --run {run.id}"
        )
    if run.status == "stopped":
        return (
            f"Run {run.id} stopped at step {run.current_step}. "
            f"Resume: tunesmith train --resume {run.id}"
        )
    reason = f": {terminal_safe(run.error)}" if run.error else ""
    return f"Run {run.id} {run.status}{reason}. Log: {run.log_path}"


def _bounded(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A run setting's flag value, refused with the setting's rule when out of its bounds."""
    if value is not None and param.name is not None:
        try:
            check_setting(param.name, value)
        except ValueError as error:
            raise click.BadParameter(f"use {error}", ctx=ctx, param=param) from None
    return value


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A duration flag's value in seconds, refused with an example of one when unreadable."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from None


@click.command()
@click.argument("name", required=False)
@click.option("--resume", "resume_id", type=int, help="Continue run RUN_ID from its checkpoint.")
@click.option("--epochs", type=int, callback=_bounded, help=setting_help("epochs"))
@click.option("--learning-rate", type=float, callback=_bounded, help=setting_help("learning_rate"))
@click.option(
    "--lora-rank",
    type=int,
    callback=_bounded,
    help=f"{setting_help('lora_rank')} Alpha follows at 2r (rsLoRA keeps 8).",
)
@click.option("--batch-size", type=int, callback=_bounded, help=setting_help("batch_size"))
@click.option("--max-steps", type=int, callback=_bounded, help=setting_help("max_steps"))
@click.option("--save-every", type=int, callback=_bounded, help=setting_help("save_every"))
@click.option("--replay", type=float, callback=_bounded, help=setting_help("replay"))
@click.option(
    "--budget",
    "budget_seconds",
    callback=_duration,
    metavar="DURATION",
    help="Training time allowed, e.g. 10m or 1h30m (default: twice the fixed plan's time).",
)
@click.option("--method", type=click.Choice(METHODS), help=setting_help("method"))
@click.option("--virtual-tokens", type=int, callback=_bounded, help=setting_help("virtual_tokens"))
@click.option("--qlora", is_flag=True, default=None, help="4-bit base model (CUDA only).")
@click.option("--detach", is_flag=True, help="Start the run and return at once.")
@click.option(
    "--processes",
    type=click.IntRange(1, 1024),
    default=1,
    help="Training processes on this machine, under torchrun (one per GPU).",
)
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default="ddp",
    help="How processes share the model: ddp copies it, fsdp and deepspeed-zero3 shard it.",
)
@click.option("--nodes", type=click.IntRange(1, 4096), default=1, help="Machines in all.")
@click.option("--node-rank", type=click.IntRange(0), default=0, help="This machine's number.")
@click.option("--master-addr", help="Address of node 0, which every node connects to.")
@click.option(
    "--master-port", type=click.IntRange(1, 65535), default=DEFAULT_MASTER_PORT, show_default=True
)
@click.option(
    "--print-launch",
    is_flag=True,
    help="Prepare the run and print each node's launcher command instead of starting it.",
)
@pass_state
def train(
    state: CliState,
    /,
    name: str | None,
    resume_id: int | None,
    detach: bool,
    processes: int,
    strategy: str,
    nodes: int,
    node_rank: int,
    master_addr: str | None,
    master_port: int,
    print_launch: bool,
    **overrides: Any,
) -> None:
    """Fine-tune project NAME on its approved examples (or --resume RUN_ID)."""
    db = state.db()
    launch = Launch(
        processes=processes,
        nodes=nodes,
        node_rank=node_rank,
        master_addr=master_addr,
        master_port=master_port,
        strategy=strategy,
    )
    if resume_id is not None:
        if launch != Launch():
            raise InputError("--resume keeps the run's processes, nodes and strategy")
        if print_launch:
            click.echo("\n".join(resume_commands(db, state.db_path, resume_id)))
            return
        run = resume_run(db, state.db_path, resume_id)
        project = get_project_by_id(db, run.project_id)
        click.echo(f"Resuming run {run.id} from step {run.checkpoint_step or 0}.")
    else:
        if name is None:
            raise InputError("name a project to train (or --resume RUN_ID)")
        project = get_project(db, name)
        plan = plan_for_project(db, project, overrides)
        if node_rank == 0:
            # On stderr: with --print-launch, stdout holds only the commands, for a script.
            findings = project_findings(db, project)
            for line in warning_lines(findings, project.name, limit=TRAIN_WARNINGS):
                click.echo(line, err=True)
        if print_launch:
            # Only the commands on stdout, one per node, for a scheduler script to take.
            _, commands = launch_commands(db, project, plan, state.db_path, launch)
            click.echo("\n".join(commands))
            return
        if node_rank > 0:
            run = join_run(db, state.db_path, project, launch)
            click.echo(f"Joined run {run.id} as node {node_rank} of {nodes}.")
        else:
            click.echo("Training with:")
            for key, value in plan.config.to_dict().items():
                reason = plan.reasons.get(key)
                click.echo(f"  {key:<24} {value!s:<12} {reason or ''}".rstrip())
            run = start_run(db, state.db_path, project, plan, launch)
            click.echo(f"Started run {run.id} (log: {run.log_path}).")
        if launch.under_torchrun:
            command = launcher_command(launch, db_path=state.db_path, run_id=run.id, resume=False)
            click.echo(f"Launcher: {shlex.join(command)}")
        if nodes > 1 and node_rank == 0:
            click.echo(f"On nodes 1 to {nodes - 1}: the same command with --node-rank 1, 2, ...")
    if detach:
        click.echo(f"Follow it: tunesmith runs follow {run.id}")
        return
    ended = follow(db, run.id)
    click.echo(end_message(ended).replace("{project}", project.name))
    if ended.status in ("failed", "interrupted"):
        sys.exit(1)


@click.group()
def runs() -> None:
    """List, show, follow and stop training runs."""


@runs.command("list")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
def runs_list(state: CliState, name: str, as_json: bool) -> None:
    """List the runs of project NAME."""
    db = state.db()
    refresh_runs(db)
    found = list_runs(db, get_project(db, name).id)
    if as_json:
        click.echo(json.dumps([run_record(run) for run in found], indent=2))
    elif not found:
        click.echo(f"No runs yet. Start one: tunesmith train {name}")
    else:
        for run in found:
            click.echo(run_line(run))


@runs.command("show")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
def runs_show(state: CliState, run_id: int, as_json: bool) -> None:
    """Show run RUN_ID."""
    db = state.db()
    refresh_runs(db)
    run = get_run(db, run_id)
    if as_json:
        click.echo(json.dumps(run_record(run), indent=2))
        return
    click.echo(run_line(run))
    click.echo(f"  config: {json.dumps(run.config)}")
    click.echo(f"  data: {run.dataset_size} rows, sha256 {run.dataset_hash}")
    click.echo(f"  folder: {run.run_dir}")
    checks = check_lines(run, [metric for _, metric in metrics(db, run.id)])
    if checks:
        watched = "validation" if run.validates else "eval loss"
        click.echo(f"  checks ({watched}):")
        for line in checks:
            click.echo(f"    {line}")
    if run.stop_reason:
        click.echo(f"  outcome: {terminal_safe(run.stop_reason)}")


@runs.command("follow")
@click.argument("run_id", type=int)
@pass_state
def runs_follow(state: CliState, run_id: int) -> None:
    """Print the progress of run RUN_ID until it ends (Ctrl-C stops following only)."""
    db = state.db()
    ended = follow(db, run_id)
    project = get_project_by_id(db, ended.project_id)
    click.echo(end_message(ended).replace("{project}", project.name))


@runs.command("stop")
@click.argument("run_id", type=int)
@pass_state
def runs_stop(state: CliState, run_id: int) -> None:
    """Stop run RUN_ID after its current step, with a checkpoint to resume from (or end the
    evaluation a completed run is running)."""
    db = state.db()
    run = stop_run(db, run_id)
    if run.status == "completed":
        project = get_project_by_id(db, run.project_id)
        later = f"Evaluate it later: tunesmith eval {project.name} --run {run_id}"
    else:
        later = f"Resume later: tunesmith train --resume {run_id}"
    click.echo(f"{stop_asked_text(run)} {later}")
