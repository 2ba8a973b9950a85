"""The command line's model commands: ask, compare and serve, all through the model server."""

from __future__ import annotations

import click
import sqlite_utils

from store.errors import InputError, ModelError
from store.projects import Project, get_project
from store.runs import Run, latest_completed_run
from trainer.control.client import list_models, stream_chat
from trainer.control.launch import (
    API_KEY_ENV,
    BASE_MODEL_NAME,
    ServerHandle,
    is_loopback,
    run_model_name,
    served_runs,
    start_server,
)
from tui.cli.state import CliState, pass_state
from tui.safe_text import terminal_safe

DEFAULT_PORT = 8000
"""Port ``tunesmith serve`` listens on unless told otherwise."""

_MAX_TOKENS = click.option(
    "--max-tokens",
    type=click.IntRange(1, 8192),
    default=512,
    show_default=True,
    help="Longest answer, in tokens.",
)


@click.command()
@click.argument("name")
@click.argument("prompt")
@click.option("--run", "run_id", type=int, help="Answer with this completed run of NAME.")
@click.option("--base", is_flag=True, help="Answer with the base model (no adapter).")
@_MAX_TOKENS
@pass_state
def ask(
    state: CliState, name: str, prompt: str, run_id: int | None, base: bool, max_tokens: int
) -> None:
    """Ask project NAME's model PROMPT; the answer streams to stdout, greedy.

    The tuned model answers: --run RUN, else the latest completed run. A project with no
    completed run is an error that says so (train one, or pass --base for the base model).
    """
    if base and run_id is not None:
        raise InputError("--run and --base exclude each other; pick one model")
    db = state.db()
    project = get_project(db, name)
    run = None if base else _tuned_run(db, project, run_id)
    with _start(state, project, run) as server:
        model = BASE_MODEL_NAME if run is None else run_model_name(run.id)
        click.echo(_label(project, run), err=True)
        _stream_answer(server, model, prompt, max_tokens)


@click.command()
@click.argument("name")
@click.argument("prompt")
@click.option("--run", "run_id", type=int, help="Tuned model: this completed run of NAME.")
@_MAX_TOKENS
@pass_state
def compare(state: CliState, name: str, prompt: str, run_id: int | None, max_tokens: int) -> None:
    """Answer PROMPT with project NAME's base model, then its tuned model, each labelled.

    Both answers come from one copy of the base weights, greedy. The tuned model is --run RUN,
    else the latest completed run.
    """
    db = state.db()
    project = get_project(db, name)
    run = _tuned_run(db, project, run_id)
    with _start(state, project, run) as server:
        click.echo(_label(project, None))
        _stream_answer(server, BASE_MODEL_NAME, prompt, max_tokens)
        click.echo()
        click.echo(_label(project, run))
        _stream_answer(server, run_model_name(run.id), prompt, max_tokens)


@click.command()
@click.argument("name")
@click.option("--run", "run_id", type=int, help="Serve only this completed run (default: all).")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; any other than loopback needs an API key.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--api-key",
    envvar=API_KEY_ENV,
    show_envvar=True,
    default=None,
    help="Bearer token clients must send (prefer the environment variable: a flag shows in ps).",
)
@pass_state
def serve(
    state: CliState, name: str, run_id: int | None, host: str, port: int, api_key: str | None
) -> None:
    """Serve project NAME over an OpenAI-compatible HTTP API until Ctrl-C.

    Model "base" is the base model, "run-<id>" each completed run (or the --run one only).
    """
    db = state.db()
    project = get_project(db, name)
    if not api_key and not is_loopback(host):
        raise InputError(
            f"--host {host}: listening beyond this machine needs an API key "
            f"(--api-key or ${API_KEY_ENV})"
        )
    run_ids = None if run_id is None else [served_runs(db, project, [run_id])[0].id]
    server = start_server(
        db_path=state.db_path,
        project=project.name,
        run_ids=run_ids,
        api_key=api_key or "",
        host=host,
        port=port,
        on_status=_echo_status,
    )
    ended: str | None = None
    try:
        models = list_models(server.base_url, server.api_key)
        _print_how_to_call(project, server, models, listening_on=host)
        ended = server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    if ended is not None:
        raise ModelError(ended)
    click.echo("\nStopped.")


def _tuned_run(db: sqlite_utils.Database, project: Project, run_id: int | None) -> Run:
    """The run that answers as the tuned model: the one named, else the latest completed."""
    if run_id is not None:
        return served_runs(db, project, [run_id])[0]
    latest = latest_completed_run(db, project.id)
    if latest is None:
        raise InputError(
            f"project {project.name!r} has no completed run yet; train one "
            f"(tunesmith train {project.name}) or ask the base model "
            f"(tunesmith ask {project.name} PROMPT --base)"
        )
    return latest


def _start(state: CliState, project: Project, run: Run | None) -> ServerHandle:
    """A model server for the project with only ``run`` attached (none for the base model)."""
    return start_server(
        db_path=state.db_path,
        project=project.name,
        run_ids=[] if run is None else [run.id],
        on_status=_echo_status,
    )


def _label(project: Project, run: Run | None) -> str:
    """The header above an answer: which model speaks."""
    if run is None:
        return click.style(f"--- base ({terminal_safe(project.base_model)}) ---", bold=True)
    return click.style(f"--- run {run.id} ---", bold=True)


def _stream_answer(server: ServerHandle, model: str, prompt: str, max_tokens: int) -> None:
    """Print one answer as it streams, made safe for the terminal, ending its line."""
    printed = False
    try:
        for delta in stream_chat(
            server.base_url,
            server.api_key,
            model,
            [{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
        ):
            click.echo(terminal_safe(delta), nl=False)
            printed = True
    finally:
        # A failure message must start on a line of its own.
        if printed:
            click.echo()
    if not printed:
        click.echo(click.style("(empty answer)", dim=True))


def _print_how_to_call(
    project: Project, server: ServerHandle, models: list[str], *, listening_on: str
) -> None:
    """The base URL, the model names and a curl and a Python example."""
    api_url = f"{server.base_url}/v1"
    example_model = models[-1]
    click.echo(f"Serving project {project.name!r} at {api_url}")
    if not is_loopback(listening_on):
        click.echo(f"Listening on {terminal_safe(listening_on)}: other machines can connect.")
    click.echo(f"Models: {', '.join(terminal_safe(model) for model in models)}")
    body = f'{{"model": "{example_model}", "messages": [{{"role": "user", "content": "Hello"}}]}}'
    if server.api_key:
        click.echo(f"API key: required, the one from --api-key / ${API_KEY_ENV} (not shown)")
        auth_header = f' -H "Authorization: Bearer ${API_KEY_ENV}"'
        client_key = f'os.environ["{API_KEY_ENV}"]'
        imports = "  import os\n  from openai import OpenAI"
    else:
        click.echo("API key: none (only this machine can connect)")
        auth_header = ""
        client_key = '"none"'
        imports = "  from openai import OpenAI"
    click.echo("\nTry it with curl:")
    click.echo(
        f"  curl {api_url}/chat/completions -H 'Content-Type: application/json'{auth_header} \\"
    )
    click.echo(f"    -d '{body}'")
    click.echo("\nOr with the OpenAI Python client:")
    click.echo(imports)
    click.echo(f'  client = OpenAI(base_url="{api_url}", api_key={client_key})')
    click.echo(
        f'  client.chat.completions.create(model="{example_model}", '
        'messages=[{"role": "user", "content": "Hello"}])'
    )
    click.echo("\nPress Ctrl-C to stop.")


def _echo_status(message: str) -> None:
    click.echo(terminal_safe(message), err=True)
