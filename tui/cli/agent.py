"""The command line's agent commands: the spec, the interview as a line REPL, and drafting."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING

import click
import sqlite_utils

from store.errors import InputError, NotFoundError, TunesmithError
from store.examples import list_examples
from store.projects import Project, create_project, get_project, get_project_by_id
from tui.agent_sources import (
    AGENT_MAX_TOKENS,
    TEACHER_MAX_TOKENS,
    endpoint_source,
    served_source,
    teacher_source,
)
from tui.cli.state import CliState, pass_state
from tui.safe_text import json_text, terminal_safe

if TYPE_CHECKING:
    from agent.drafting import DraftReport
    from agent.models import ChatModelSource
    from agent.work import Work
    from trainer.control.launch import ServerHandle

MAX_DRAFT_COUNT = 200
"""Most examples one ``tunesmith draft`` asks for (the agent's own limit)."""

_TEACHER_HELP = (
    "Model that drafts the examples: a model name on the configured endpoint"
    " ($TUNESMITH_TEACHER_BASE_URL or $TUNESMITH_AGENT_BASE_URL, else OpenAI with"
    " $OPENAI_API_KEY), or 'local' for the project's base model served here; default: the"
    " config file's [teacher] model, else the agent's, else 'local'. 'ollama:NAME' names a"
    " model of the Ollama server here ($OLLAMA_HOST)."
)


@click.command("spec")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
def spec_command(state: CliState, name: str, as_json: bool) -> None:
    """Show the task spec of NAME with its coverage: examples per label and per case."""
    from agent.coverage import coverage
    from agent.spec import load_spec
    from agent.spec_text import describe_spec, spec_record

    db = state.db()
    project = get_project(db, name)
    spec = load_spec(project)
    examples = list_examples(db, project.id)
    counts = coverage(spec, examples)
    if as_json:
        record = spec_record(spec, counts, counts.approved + counts.pending)
        click.echo(json_text({"project": project.name, **record}))
        return
    click.echo(terminal_safe(describe_spec(project.name, spec, counts)))


@click.command("chat")
@click.argument("name")
@click.option(
    "--model",
    "model_name",
    default=None,
    help="Let this model lead the interview (on $TUNESMITH_AGENT_BASE_URL, else OpenAI);"
    " default: $TUNESMITH_AGENT_MODEL or the config file's [agent] model, else guided mode.",
)
@click.option(
    "--local",
    "use_local",
    is_flag=True,
    help="Let the project's base model, served here, lead (guided mode takes over if it cannot).",
)
@click.option("--guided", is_flag=True, help="Guided mode even when a model is configured.")
@click.option("--teacher", default=None, help=_TEACHER_HELP)
@pass_state
def chat_command(
    state: CliState,
    name: str,
    model_name: str | None,
    use_local: bool,
    guided: bool,
    teacher: str | None,
) -> None:
    """Talk with the agent about project NAME, line by line on stdin and stdout.

    The agent asks for what the task spec lacks and keeps the examples you type. A new NAME
    creates the project. An "Input:" line and the "Output:" line after it are one example; end
    a line with a backslash to go on. End of input (Ctrl-D) or /quit ends the session; all is
    saved as you go.
    """
    from agent.interview import Interview
    from agent.models import LOCAL_MODEL
    from agent.work import Work
    from store.config import load_settings
    from tui.labellers import project_labeller

    if sum([bool(model_name), use_local, guided]) > 1:
        raise InputError("--model, --local and --guided exclude each other; pick one")
    db = state.db()
    project = _project_or_new(db, name)
    stdin = sys.stdin
    interactive = stdin.isatty()
    with ExitStack() as stack:
        server = _ProjectServer(state, project, stack)
        agent_model = None
        if use_local:
            agent_model = server.source(AGENT_MAX_TOKENS)
        elif not guided:
            agent_model = endpoint_source(model_name, AGENT_MAX_TOKENS)
        # The teacher is the one named or configured, else the agent's model, asked for
        # longer answers.
        teacher_name = teacher
        if teacher_name is None and load_settings().teacher.model is None:
            teacher_name = LOCAL_MODEL if use_local else model_name
        try:
            teacher_model = teacher_source(teacher_name, server.source)
        except InputError as error:
            if agent_model is not None or teacher is not None:
                raise
            # A broken endpoint setting must not keep a guided interview from starting.
            click.echo(f"{terminal_safe(error.message)}; /draft uses the local model", err=True)
            teacher_model = server.source(TEACHER_MAX_TOKENS)
        interview = Interview(
            db,
            project,
            model=agent_model,
            teacher=teacher_model,
            labeller=lambda: project_labeller(db, get_project_by_id(db, project.id), server.handle),
        )
        if agent_model is None:
            click.echo(
                "Guided mode (no model needed). For model mode set TUNESMITH_AGENT_MODEL,"
                " or pass --local.",
                err=True,
            )
        else:
            click.echo(f"Model mode: {terminal_safe(agent_model.name)}.", err=True)
        click.echo(terminal_safe(interview.opening()))
        prompt = _show_prompt if interactive else None
        try:
            for message in read_messages(stdin, prompt):
                reply = interview.handle(message, Work(report=_echo_status))
                if reply.text:
                    click.echo(terminal_safe(reply.text))
                if reply.action == "train":
                    click.echo(terminal_safe(interview.note(_train(state, db, project.id))))
                elif reply.action == "quit":
                    return
        except KeyboardInterrupt:
            click.echo()
        if interactive:
            click.echo(f"Saved. Continue any time: tunesmith chat {project.name}", err=True)


EXIT_CANCELLED = 130
"""Exit status of a ``draft`` stopped by Ctrl-C (the drafts stored so far stay)."""


@click.command("draft")
@click.argument("name")
@click.argument("count", type=click.IntRange(1, MAX_DRAFT_COUNT))
@click.option("--teacher", default=None, help=_TEACHER_HELP)
@pass_state
def draft_command(state: CliState, name: str, count: int, teacher: str | None) -> None:
    """Have a teacher model draft COUNT new examples for NAME, stored as pending for review.

    Drafts go to the labels and cases with the fewest examples; ones that repeat an existing
    input (exactly or nearly) and lines the teacher got wrong are skipped, each with a reason.
    A small teacher writes one input at a time and the latest tuned run (else the base model
    shown the approved examples) gives its answer. Each draft is stored as it is made, and
    "drafted n/N" goes to stderr; Ctrl-C stops after the current model call and keeps them.
    The exit status is 1 when no draft was usable, 130 when cancelled.
    """
    from agent.drafting import WEAK_TEACHER_WARNING, describe_report, draft_examples
    from tui.agent_sources import ollama_teacher_offer
    from tui.labellers import project_labeller

    db = state.db()
    project = get_project(db, name)
    offer = ollama_teacher_offer(teacher)
    if offer is not None:
        click.echo(terminal_safe(offer), err=True)
    with ExitStack() as stack:
        server = _ProjectServer(state, project, stack)
        source = teacher_source(teacher, server.source)
        labeller = None
        if source.weak:
            click.echo(WEAK_TEACHER_WARNING, err=True)
            labeller = project_labeller(db, project, server.handle)
            click.echo(
                f"Answers come from {labeller.name}."
                if labeller is not None
                else "No tuned run or approved example can answer the drafts: each waits"
                " for you to label it.",
                err=True,
            )
        click.echo(
            f"Drafting {count} examples with {terminal_safe(source.name)} (Ctrl-C cancels)...",
            err=True,
        )
        model = source.get()
        report = _draft_until_done(
            lambda work: draft_examples(
                db, project.id, model, count, weak=source.weak, labeller=labeller, work=work
            )
        )
    click.echo(terminal_safe(source.redact(describe_report(report, project.name))))
    if report.cancelled:
        sys.exit(EXIT_CANCELLED)
    if not report.added:
        sys.exit(1)


def _draft_until_done(draft: Callable[[Work], DraftReport]) -> DraftReport:
    """Run ``draft`` on a worker thread, printing its progress; the first Ctrl-C cancels it
    after the current model call, a second one stops at once."""
    from agent.work import Work

    work = Work(report=lambda line: click.echo(terminal_safe(line), err=True))
    outcome: list[DraftReport] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(draft(work))
        except BaseException as error:  # handed to the main thread, which raises it
            failure.append(error)
        finally:
            done.set()

    # Daemon: a second Ctrl-C leaves the call in flight behind; the server stops with us.
    # An event, not Thread.join: a join cut short by Ctrl-C can leave the thread seen as ended.
    threading.Thread(target=run, name="draft", daemon=True).start()
    try:
        while not done.wait(timeout=0.2):
            pass
    except KeyboardInterrupt:
        work.cancel.set()
        click.echo(
            "Stopping after the current model call (Ctrl-C again stops at once)...", err=True
        )
        while not done.wait(timeout=0.2):
            pass
    if failure:
        raise failure[0]
    return outcome[0]


class _ProjectServer:
    """The project's model server (its base model, completed runs and system prompt), started
    on first use and stopped at exit; the teacher and the labeller share it."""

    def __init__(self, state: CliState, project: Project, stack: ExitStack) -> None:
        self._state = state
        self._project = project
        self._stack = stack
        self._handle: ServerHandle | None = None
        self._lock = threading.Lock()

    def source(self, max_tokens: int) -> ChatModelSource:
        """The base model as a teacher, starting the server the first time it is used."""
        return served_source(self._project.base_model, self.handle, max_tokens, cache=True)

    def handle(self) -> ServerHandle:
        """The running server, started now on first use."""
        from trainer.control.launch import start_server

        # The teacher and the labeller may ask from different threads.
        with self._lock:
            if self._handle is None:
                click.echo(
                    f"Starting the model server for {terminal_safe(self._project.base_model)}...",
                    err=True,
                )
                self._handle = self._stack.enter_context(
                    start_server(
                        db_path=self._state.db_path,
                        project=self._project.name,
                        on_status=_echo_status,
                    )
                )
            return self._handle


def read_messages(
    lines: Iterable[str], prompt: Callable[[str], None] | None = None
) -> Iterator[str]:
    """Group typed lines into messages: one line each, unless it is left unfinished.

    An open code fence or JSON object runs until closed, an "Input:" or "Output:" with no text
    yet takes the next line, and a trailing backslash joins the next line. An input and its
    output on two lines stay two messages: the interview pairs them, as it does in the app. A
    slash command always starts a new message. ``prompt`` is called with "> " or "... " before
    each line is read.
    """
    from agent.typed_examples import needs_more_lines

    source = iter(lines)
    held: str | None = None

    def next_line(continuing: bool) -> str | None:
        if prompt is not None:
            prompt("... " if continuing else "> ")
        try:
            return next(source).rstrip("\r\n")
        except StopIteration:
            return None

    while True:
        line = held if held is not None else next_line(False)
        held = None
        if line is None:
            return
        buffer = line
        while not buffer.lstrip().startswith("/") and needs_more_lines(buffer):
            more = next_line(True)
            if more is None:
                break
            if more.lstrip().startswith("/"):
                held = more
                break
            if buffer.endswith("\\"):
                buffer = buffer[:-1] + "\n" + more
            else:
                buffer += "\n" + more
        if buffer.strip():
            yield buffer.removesuffix("\\")


def _show_prompt(text: str) -> None:
    click.echo(text, nl=False)


def _project_or_new(db: sqlite_utils.Database, name: str) -> Project:
    try:
        return get_project(db, name)
    except NotFoundError:
        created = create_project(db, name)
        click.echo(
            f"Created project {created.name!r} (base model {terminal_safe(created.base_model)}).",
            err=True,
        )
        return created


def _train(state: CliState, db: sqlite_utils.Database, project_id: int) -> str:
    """Start a training run from the REPL; return what happened in one line."""
    from trainer.control.jobs import approved_rows, plan_for_project, start_run

    project = get_project_by_id(db, project_id)
    try:
        plan = plan_for_project(db, project)
        train_rows, _ = approved_rows(db, project)
        run = start_run(db, state.db_path, project, plan)
    except TunesmithError as error:
        return f"Cannot start training: {error.message}"
    return (
        f"Started run {run.id} on {len(train_rows)} approved examples; it trains in the"
        f" background. Follow it: tunesmith runs follow {run.id}"
    )


def _echo_status(message: str) -> None:
    click.echo(terminal_safe(message), err=True)
