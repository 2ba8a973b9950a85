"""The Chat area's agent: the model that leads the interview, the teacher ``/draft`` asks, the
interview as a project opens, and the spec panel's text after a turn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from store.errors import InputError
from store.examples import list_examples
from store.messages import list_messages
from store.projects import Project, get_project_by_id
from tui.agent_sources import (
    AGENT_MAX_TOKENS,
    TEACHER_MAX_TOKENS,
    endpoint_source,
    served_source,
    teacher_source,
)
from tui.widgets.chat.spec_panel import spec_summary

if TYPE_CHECKING:
    import sqlite_utils
    from rich.text import Text

    from agent.drafting import Labeller
    from agent.interview import Interview
    from agent.models import ChatModelSource
    from trainer.control.launch import ServerHandle
    from tui.services import AppServices

SHOWN_MESSAGES = 60
"""Earlier messages of the interview shown when a project opens (all stay stored)."""


@dataclass(frozen=True)
class OpenedInterview:
    """A project's interview ready to go on, with what the Chat area shows of it first."""

    project: Project
    interview: Interview
    earlier: tuple[tuple[str, str], ...]
    """(role, text) of the messages stored before, oldest first."""
    opening: str
    """What the agent says first this time (empty when it already greeted)."""
    notice: str
    """Which mode the agent is in, and why."""
    summary: Text
    """The spec panel's text."""


def open_interview(
    database: sqlite_utils.Database,
    project_id: int,
    app_services: AppServices,
    *,
    greeted: bool,
) -> OpenedInterview:
    """The interview of the project ``project_id`` on ``database``, with its earlier messages."""
    from agent.interview import Interview

    project = get_project_by_id(database, project_id)
    model, notice = agent_model()
    teacher = teacher_model(app_services, project)
    interview = Interview(
        database,
        project,
        model=model,
        teacher=teacher,
        labeller=lambda: drafts_labeller(database, project.id, app_services),
    )
    earlier = tuple(
        (message.role, message.content)
        for message in list_messages(database, project.id, last=SHOWN_MESSAGES)
    )
    opening = "" if greeted else interview.opening()
    return OpenedInterview(project, interview, earlier, opening, notice, spec_panel_text(interview))


def agent_model() -> tuple[ChatModelSource | None, str]:
    """The agent's configured model (model mode), else None (guided mode), and a line why."""
    try:
        source = endpoint_source(None, AGENT_MAX_TOKENS)
    except InputError as error:
        return None, f"Guided mode ({error.message})"
    if source is None:
        return None, "Guided mode: set TUNESMITH_AGENT_MODEL for a model to lead"
    return source, f"Model mode: {source.name}"


def teacher_model(app_services: AppServices, project: Project) -> ChatModelSource:
    """What ``/draft`` uses: the configured model, else the base model served here."""

    def server() -> ServerHandle:
        # The running server when there is one; it may have moved since the last draft.
        return app_services.servers.server_for(
            app_services.db_path, project, (), lambda status: None
        )

    def local(max_tokens: int) -> ChatModelSource:
        return served_source(project.base_model, server, max_tokens, cache=False)

    try:
        return teacher_source(None, local)
    except InputError:
        # A half-done endpoint setting is reported by the agent's notice; drafts go local.
        return local(TEACHER_MAX_TOKENS)


def drafts_labeller(
    database: sqlite_utils.Database, project_id: int, app_services: AppServices
) -> Labeller | None:
    """Who answers a weak teacher's drafted inputs: the latest completed run on the app's
    server (restarted with it attached when needed), else the base model few-shot."""
    from tui.labellers import project_labeller
    from tui.services import completed_run_ids

    project = get_project_by_id(database, project_id)
    run_ids = tuple(completed_run_ids(database, project))

    def server() -> ServerHandle:
        return app_services.servers.server_for(
            app_services.db_path, project, run_ids, lambda status: None
        )

    return project_labeller(database, project, server)


def spec_panel_text(interview: Interview) -> Text:
    """The spec panel's text: the spec, its coverage by the examples, and what is asked next."""
    from agent.coverage import coverage
    from agent.spec import missing_parts

    examples = list_examples(interview.db, interview.project_id)
    counts = coverage(interview.spec, examples)
    missing = missing_parts(interview.spec, counts.approved + counts.pending)
    return spec_summary(interview.spec, counts, missing)
