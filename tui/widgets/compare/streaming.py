"""Several models' answers to a conversation, streamed from the model server one after the other."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping

from trainer.client import stream_chat
from trainer.launch import ServerHandle

MAX_TOKENS = 512
"""Longest answer asked for, as on the command line."""

PUBLISH_SECONDS = 0.05
"""Least time between two updates of one answer, so a fast stream does not flood the app."""


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
        pieces = stream_chat(
            server.base_url,
            server.api_key,
            model,
            conversations[side],
            max_tokens=MAX_TOKENS,
        )
        try:
            for piece in pieces:
                if is_cancelled():
                    return
                text += piece
                if time.monotonic() - published >= PUBLISH_SECONDS:
                    on_text(side, text, False)
                    published = time.monotonic()
        finally:
            # Closing the stream hangs up, which makes the server stop generating.
            if isinstance(pieces, Generator):
                pieces.close()
        on_text(side, text, True)
