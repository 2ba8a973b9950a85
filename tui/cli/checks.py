"""``tunesmith examples check``: leaks, duplicates, label balance and over-long rows.

The command is registered under the ``examples`` group (``examples.add_command(check_command)``);
``train`` prints the same warnings through ``project_findings`` and ``warning_lines``.
"""

from __future__ import annotations

import click
import sqlite_utils

from agent.data_checks import Balance, Findings, TokenLengths, balance_warnings, check_data
from agent.spec import load_spec
from store.examples import list_examples
from store.projects import Project, get_project
from trainer.control.labels import project_labels
from tui.cli.state import CliState, pass_state
from tui.dataset_checks import token_counter_for
from tui.safe_text import json_text, one_line

LINE_WIDTH = 160
"""Characters of each finding's line; what follows is cut."""
TRAIN_WARNINGS = 5
"""Warnings ``train`` prints before pointing at ``examples check`` for the rest."""


def project_findings(db: sqlite_utils.Database, project: Project) -> Findings:
    """The checks of ``project``'s approved rows, labels and token lengths found here.

    The labels come from ``project_labels`` (the rule labelling and evaluation use too) and
    the lengths from the Dataset area's token counter, so every place counts alike.
    """
    examples = list_examples(db, project.id)
    approved = [e for e in examples if e.status == "approved"]
    spec = load_spec(project)
    counter = token_counter_for(project.base_model)
    lengths = TokenLengths(counter.count(approved), counter.context, counter.exact)
    return check_data(examples, spec, labels=project_labels(db, project), lengths=lengths)


def warning_lines(findings: Findings, name: str, limit: int | None = None) -> list[str]:
    """Each warning as one terminal-safe line; past ``limit``, one line saying how many more
    and where to see them all."""
    shown = findings.warnings if limit is None else findings.warnings[:limit]
    lines = [one_line(f"warning: {warning}", LINE_WIDTH) for warning in shown]
    if hidden := len(findings.warnings) - len(shown):
        lines.append(f"... and {hidden} more: tunesmith examples check {name}")
    return lines


def balance_line(balance: Balance) -> str:
    """The rows of each label, train/eval, in one terminal-safe line."""
    counts = [f"{label} {balance.train[label]}/{balance.eval[label]}" for label in balance.labels]
    unmatched = balance.unmatched["train"] + balance.unmatched["eval"]
    if unmatched:
        counts.append(f"no label {balance.unmatched['train']}/{balance.unmatched['eval']}")
    return one_line(f"labels (train/eval rows): {', '.join(counts)}", LINE_WIDTH)


def summary_line(findings: Findings) -> str:
    """How many rows were checked and what was found, in one line."""
    checked = f"{findings.rows['train']} train and {findings.rows['eval']} eval rows"
    if not findings.warnings:
        return f"Checked {checked}: nothing to warn about."
    groups = sum(len(groups) for groups in findings.duplicates.values())
    counts = [
        _count(len(findings.leaks), "leak"),
        _count(groups, "duplicate group"),
        _count(len(findings.too_long), "row too long", "rows too long"),
    ]
    if findings.balance is not None:
        counts.append(_count(len(balance_warnings(findings.balance)), "label balance warning"))
    return f"Checked {checked}: {', '.join(counts)}."


@click.command("check")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@pass_state
def check_command(state: CliState, name: str, as_json: bool) -> None:
    """Check the approved examples of NAME before training.

    Finds eval rows that repeat train rows (also reworded or one word changed), the same
    input twice within a split, rare labels and rows longer than the model's context.
    Findings are warnings: the exit status is 0 unless the check itself fails.
    """
    db = state.db()
    findings = project_findings(db, get_project(db, name))
    if as_json:
        click.echo(json_text(findings.to_record()))
        return
    for line in warning_lines(findings, name):
        click.echo(line)
    if findings.balance is not None:
        click.echo(balance_line(findings.balance))
    click.echo(summary_line(findings))


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"
