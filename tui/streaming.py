"""Several models' answers to a conversation, streamed from the model server one after the other."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import closing

from textual.dom import DOMNode
from textual.message import Message
from textual.worker import get_current_worker

from store.projects import Project
from trainer.control.client import stream_chat
from trainer.control.launch import ServerHandle
from tui.services import completed_run_ids, services

MAX_TOKENS = 512
"""Longest answer asked for, as on the command line."""

PUBLISH_SECONDS = 0.05
"""Least time between two updates of one answer, so a fast stream does not flood the app."""


class AnswerStreamed(Message):
    """More of one model's answer arrived (or all of it)."""

    def __init__(self, request: int, side: str, text: str, done: bool) -> None:
        super().__init__()
        self.request = request
        """Which ask it answers."""
        self.side = side
        """``base`` or ``tuned``."""
        self.text = text
        """The answer so far."""
        self.done = done
        """Whether the answer is complete."""


class ServerStatusChanged(Message):
    """The model server, starting, said what it is doing."""

    def __init__(self, request: int, status: str) -> None:
        super().__init__()
        self.request = request
        """The ask waiting for it."""
        self.status = status
        """What the server said."""


def stream_to(
    node: DOMNode,
    project: Project,
    models: Mapping[str, str],
    conversations: Mapping[str, list[dict[str, str]]],
    request: int,
) -> None:
    """In a thread worker: the answers of ``models`` from the project's model server (started
    if needed, with every completed run), posted to ``node`` as ``ServerStatusChanged`` and
    ``AnswerStreamed`` messages tagged with ``request``."""
    app_services = services(node)

    def report_status(status: str) -> None:
        node.post_message(ServerStatusChanged(request, status))

    def report_text(side: str, text: str, done: bool) -> None:
        node.post_message(AnswerStreamed(request, side, text, done))

    with app_services.database() as database:
        run_ids = completed_run_ids(database, project)
    server = app_services.servers.server_for(app_services.db_path, project, run_ids, report_status)
    worker = get_current_worker()
    stream_answers(server, models, conversations, report_text, lambda: worker.is_cancelled)


def stream_answers(
    server: ServerHandle,
    models: Mapping[str, str],
    conversations: Mapping[str, list[dict[str, str]]],
    on_text: Callable[[str, str, bool], None],
    is_cancelled: Callable[[], bool],
) -> None:
    """Stream the answer of each model in ``models`` (side -> model name), in order, to the
    side's conversation in ``conversations`` (OpenAI-style messages ending with the prompt).

    The server generates one answer at a time (one copy of the weights), so asking both at
    once would only make the second wait. ``on_text(side, text_so_far, done)`` is called at
    most every ``PUBLISH_SECONDS`` per side and once when the side's answer is complete.
    """
    for side, model in models.items():
        text, published = "", 0.0
        # Closing the stream hangs up, which makes the server stop generating.
        with closing(
            stream_chat(
                server.base_url,
                server.api_key,
                model,
                conversations[side],
                max_tokens=MAX_TOKENS,
            )
        ) as pieces:
            for piece in pieces:
                if is_cancelled():
                    return
                text += piece
                if time.monotonic() - published >= PUBLISH_SECONDS:
                    on_text(side, text, False)
                    published = time.monotonic()
        on_text(side, text, True)
