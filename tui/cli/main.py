"""The command line: the headless twin of every action in the TUI."""

from __future__ import annotations

import itertools
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn, cast

import click
from click.core import ParameterSource

from store.config import load_settings
from store.errors import TunesmithError
from store.examples import (
    SPLIT_MODES,
    Example,
    NewExample,
    SplitMode,
    add_examples,
    count_examples,
    iter_examples,
    messages_to_json,
    prompt_response,
    remove_example,
)
from store.exports import export_examples
from store.imports import ParsedRow, RejectedRow, stream_examples, stream_unlabeled
from store.paths import default_db_path
from store.projects import create_project, get_project, list_projects
from tui.cli.agent import chat_command, draft_command, spec_command
from tui.cli.checks import check_command
from tui.cli.evaluate import eval_command, export_command
from tui.cli.label import accept_command, give_label_command, label_command
from tui.cli.models import ask, compare, serve
from tui.cli.runs import runs, train
from tui.cli.state import CliState, pass_state
from tui.cli.sweep import sweep_command
from tui.safe_text import json_text, one_line, terminal_safe

EXIT_REJECTED_ROWS = 1
"""Exit status of an import that kept the valid rows but rejected some."""


class TunesmithGroup(click.Group):
    """A click group that turns tunesmith errors into one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TunesmithError as error:
            raise click.ClickException(terminal_safe(error.message)) from error
        except sqlite3.OperationalError as error:
            # The disk is full, the file is read-only or damaged: the user's to fix, not a bug.
            where = ctx.obj.db_path if isinstance(ctx.obj, CliState) else "the database"
            raise click.ClickException(terminal_safe(f"{where}: {error}")) from error


@click.group(cls=TunesmithGroup, invoke_without_command=True)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Database file (default: $TUNESMITH_DB, else tunesmith.db in $TUNESMITH_HOME).",
)
@click.option(
    "--web",
    is_flag=True,
    help="Serve the app to a browser instead of this terminal, and print the URL to open.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="With --web: the address to listen on; off loopback the URL carries a random token.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="With --web: the port to listen on.",
)
@click.version_option(package_name="tunesmith")
@click.pass_context
def cli(ctx: click.Context, db_path: Path | None, web: bool, host: str, port: int) -> None:
    """Turn a conversation into a fine-tuned language model. With no command, open the app."""
    ctx.obj = CliState(db_path=db_path or default_db_path())
    if web and ctx.invoked_subcommand is not None:
        raise click.UsageError("--web serves the app; it takes no command.")
    for option in ("host", "port"):
        if not web and ctx.get_parameter_source(option) is ParameterSource.COMMANDLINE:
            raise click.UsageError(f"--{option} goes with --web.")
    if ctx.invoked_subcommand is None:
        state: CliState = ctx.obj
        state.db()
        # Imported here so scripted commands start without loading Textual or aiohttp.
        if web:
            from tui.web import serve_app, web_address

            serve_app(state.db_path, web_address(host, port))
            return
        from tui.app import run_app

        run_app(state.db_path)


cli.add_command(train)
cli.add_command(runs)
cli.add_command(sweep_command)
cli.add_command(ask)
cli.add_command(compare)
cli.add_command(serve)
cli.add_command(eval_command)
cli.add_command(export_command)
cli.add_command(spec_command)
cli.add_command(chat_command)
cli.add_command(draft_command)
cli.add_command(label_command)


@cli.group()
def project() -> None:
    """Create and list projects (one per task)."""


class ConfiguredBaseModelOption(click.Option):
    """``--base-model``, whose default is the configured one, read when the command runs."""

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        # Read at use, so --help shows the config file's (or $TUNESMITH_BASE_MODEL's) model.
        return load_settings().base_model


@project.command("new")
@click.argument("name")
@click.option(
    "--base-model",
    cls=ConfiguredBaseModelOption,
    show_default=True,
    help=(
        "Hugging Face model id or local folder (default: [defaults] base_model in the config"
        " file or $TUNESMITH_BASE_MODEL); the embedded SmolLM2-135M-Instruct works offline."
    ),
)
@click.option("--system-prompt", default=None, help="System prompt used in training and answers.")
@pass_state
def project_new(state: CliState, name: str, base_model: str, system_prompt: str | None) -> None:
    """Create the project NAME."""
    created = create_project(state.db(), name, base_model=base_model, system_prompt=system_prompt)
    click.echo(
        f"Created project {created.name!r} (base model {terminal_safe(created.base_model)})."
    )
    click.echo(f"Next: tunesmith examples import {created.name} FILE")


@project.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
def project_list(state: CliState, as_json: bool) -> None:
    """List projects with their example counts."""
    db = state.db()
    projects = list_projects(db)
    counts = {p.id: count_examples(db, p.id) for p in projects}
    if as_json:
        records = [
            {
                "name": p.name,
                "base_model": p.base_model,
                "system_prompt": p.system_prompt,
                "examples": counts[p.id],
                "created_at": p.created_at,
            }
            for p in projects
        ]
        click.echo(json_text(records))
        return
    if not projects:
        click.echo("No projects yet. Create one: tunesmith project new NAME")
        return
    width = max(len(p.name) for p in projects)
    for p in projects:
        click.echo(f"{p.name:<{width}}  {counts[p.id]:>5} examples  {terminal_safe(p.base_model)}")


@cli.group()
def examples() -> None:
    """Import, list, add, label, remove and export a project's examples."""


examples.add_command(accept_command)
examples.add_command(give_label_command)
examples.add_command(check_command)


@examples.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--split",
    "split_mode",
    type=click.Choice(SPLIT_MODES),
    default="auto",
    show_default=True,
    help="auto keeps a row's own split, else holds out a stable ~15% for evaluation.",
)
@click.option(
    "--unlabeled",
    is_flag=True,
    help="The rows are inputs with no answer yet (.txt: one per line; JSONL, JSON or CSV:"
    " a prompt, input or text field), stored pending for `tunesmith label` to propose answers.",
)
@pass_state
def examples_import(
    state: CliState, name: str, file: Path, split_mode: str, unlabeled: bool
) -> None:
    """Import examples from FILE (JSONL, JSON, CSV or a datasets folder) into NAME.

    With --unlabeled, FILE holds inputs without answers (a .txt file too, one per line); a row
    that has an answer is rejected, to be imported without --unlabeled. Rejected rows are
    listed as FILE:LINE: reason; the valid rows are kept, all in one transaction. The exit
    status is 1 when any row was rejected.
    """
    db = state.db()
    target = get_project(db, name)
    rows = stream_unlabeled(file) if unlabeled else stream_examples(file)
    rejected = _RejectedRows()
    result = add_examples(
        db,
        target.id,
        rejected.reported(rows),
        source="imported",
        split_mode=cast(SplitMode, split_mode),
        status="pending" if unlabeled else "approved",
    )
    what = "unlabeled inputs (pending)" if unlabeled else "examples"
    click.echo(
        f"Imported {result.added} new {what} into {target.name!r}"
        f" ({result.train} train, {result.eval} eval)"
        + (f"; {result.duplicates} already present" if result.duplicates else "")
        + (f"; {rejected.count} rows rejected" if rejected.count else "")
        + "."
    )
    if unlabeled and result.added:
        click.echo(f"Next: tunesmith label {target.name}  (a model proposes their answers)")
    if rejected.count:
        sys.exit(EXIT_REJECTED_ROWS)


class _RejectedRows:
    """Reports the rejected rows of a file on stderr as the stream reaches them, and counts
    them, passing the valid rows on: the file is stored as it is read."""

    def __init__(self) -> None:
        self.count = 0
        """Rows rejected so far."""

    def reported(self, rows: Iterable[ParsedRow]) -> Iterator[NewExample]:
        """The valid rows of ``rows``; each rejected one is printed and counted."""
        for row in rows:
            if isinstance(row, RejectedRow):
                self.count += 1
                click.echo(terminal_safe(str(row)), err=True)
            else:
                yield row


@examples.command("list")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one array of examples).")
@pass_state
def examples_list(state: CliState, name: str, as_json: bool) -> None:
    """List the examples of NAME (written as they are read: a million rows are never held)."""
    db = state.db()
    rows = iter_examples(db, get_project(db, name).id)
    if as_json:
        for text in _json_array(_example_record(e) for e in rows):
            click.echo(text, nl=False)
        click.echo()
        return
    first = next(rows, None)
    if first is None:
        click.echo(f"No examples yet. Add some: tunesmith examples import {name} FILE")
        return
    for example in itertools.chain([first], rows):
        click.echo(
            f"{example.id:>6}  {example.status:<8}  {example.split:<5}  {example.source:<8}  "
            f"{one_line(example.prompt, 40):<40}  ->  {_answer_text(example)}"
        )


@examples.command("export")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path))
@pass_state
def examples_export(state: CliState, name: str, file: Path) -> None:
    """Write the examples of NAME to FILE as chat-format JSONL (imports back to the same rows)."""
    db = state.db()
    count = export_examples(file, iter_examples(db, get_project(db, name).id))
    click.echo(f"Exported {count} examples to {terminal_safe(str(file))}.")


@examples.command("add")
@click.argument("name")
@click.option("--prompt", required=True, help="What the user says.")
@click.option("--response", required=True, help="What the tuned model should answer.")
@click.option("--split", "split_mode", type=click.Choice(SPLIT_MODES), default="auto")
@pass_state
def examples_add(state: CliState, name: str, prompt: str, response: str, split_mode: str) -> None:
    """Add one typed example to NAME."""
    db = state.db()
    target = get_project(db, name)
    result = add_examples(
        db,
        target.id,
        [prompt_response(prompt, response)],
        source="typed",
        split_mode=cast(SplitMode, split_mode),
    )
    if result.added:
        click.echo(f"Added 1 example to {target.name!r} ({'eval' if result.eval else 'train'}).")
    else:
        click.echo(f"That example is already in {target.name!r}; nothing added.")


@examples.command("remove")
@click.argument("example_id", type=int)
@pass_state
def examples_remove(state: CliState, example_id: int) -> None:
    """Remove example EXAMPLE_ID (its history is kept)."""
    removed = remove_example(state.db(), example_id)
    click.echo(f"Removed example {removed.id}: {one_line(removed.prompt, 60)}")


def _json_array(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The text ``json_text`` gives a list of ``records``, an element at a time."""
    opened = False
    for record in records:
        element = "\n".join(f"  {line}" for line in json_text(record).split("\n"))
        yield (",\n" if opened else "[\n") + element
        opened = True
    yield "\n]" if opened else "[]"


def _answer_text(example: Example) -> str:
    """The row's answer on one line; for an unlabeled row, its proposal if it has one."""
    if example.answered:
        return one_line(example.response, 40)
    if example.proposed is None:
        return "(no answer yet)"
    return f"(proposed: {one_line(example.proposed, 24)}, {example.confidence or 0.0:.2f})"


def _example_record(example: Example) -> dict[str, Any]:
    """An example as ``examples list --json`` prints it; ``response`` is null until answered."""
    return {
        "id": example.id,
        "messages": messages_to_json(example.messages),
        "prompt": example.prompt,
        "response": example.response if example.answered else None,
        "proposed": example.proposed,
        "confidence": example.confidence,
        "proposed_by": example.proposed_by,
        "status": example.status,
        "split": example.split,
        "source": example.source,
        "tags": list(example.tags),
        "version": example.version,
        "created_at": example.created_at,
        "updated_at": example.updated_at,
    }


def main() -> NoReturn:
    """Console entry point."""
    cli.main(prog_name="tunesmith")
    sys.exit(0)
