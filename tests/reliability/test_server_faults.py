"""The model server killed with -9 while an answer streams from it: the client says so in one
line, the launcher reports how the server ended, and a new server answers again."""

from __future__ import annotations

import functools
import os
import signal
import urllib.parse
from pathlib import Path

import pytest

from store.errors import ModelError
from tests.conftest import TinyRun
from tests.reliability.scorecard import Scorecard
from trainer.control.client import list_models, stream_chat
from trainer.control.launch import BASE_MODEL_NAME, start_server

SECRET = "tunesmith-reliability-server-key-0123456789"
LONG_ANSWER = [{"role": "user", "content": "Tell me a long story about colours."}]
"""The tiny model's random base weights ramble on until ``max_tokens``: time to kill it."""


def test_server_killed_mid_stream_is_reported_and_a_new_one_answers(
    completed_tiny_run: TinyRun, tmp_path: Path, scorecard: Scorecard
) -> None:
    log_path = tmp_path / "server.log"
    launch = functools.partial(
        start_server,
        db_path=completed_tiny_run.db_path,
        project=completed_tiny_run.project,
        run_ids=[],
        api_key=SECRET,
        log_path=log_path,
        extra_env={"TUNESMITH_HOME": str(completed_tiny_run.home)},
        startup_timeout=120,
    )
    with scorecard.fault("model server killed with -9 while streaming"):
        server = launch()
        try:
            assert urllib.parse.urlsplit(server.base_url).hostname == "127.0.0.1"
            for key in (None, "wrong-key"):
                with pytest.raises(ModelError, match="answered HTTP 401") as refused:
                    list_models(server.base_url, key)
                scorecard.payload(f"server request with key {key!r}", neutralised=bool(refused))
            stream = stream_chat(
                server.base_url, server.api_key, BASE_MODEL_NAME, LONG_ANSWER, max_tokens=400
            )
            first = next(stream)
            assert first
            os.kill(server.process.pid, signal.SIGKILL)
            with pytest.raises(ModelError) as raised:
                for _ in stream:
                    pass
            message = raised.value.message
            assert message in (
                f"The model server at {server.base_url} closed the connection mid-answer.",
                f"The model server at {server.base_url} ended the answer before it was complete.",
            )
            ended = server.wait()
            assert ended.startswith(f"The model server exited with code {-signal.SIGKILL}")
            with pytest.raises(ModelError, match="connection refused"):
                list_models(server.base_url, server.api_key)
        finally:
            server.stop()

        with launch() as again:
            answer = "".join(
                stream_chat(
                    again.base_url, again.api_key, BASE_MODEL_NAME, LONG_ANSWER, max_tokens=8
                )
            )
            assert answer

    # The key reached both servers through their environment only, never their log.
    clean = SECRET not in log_path.read_text(encoding="utf-8", errors="replace")
    scorecard.payload("server key kept out of the server log", neutralised=clean)
    assert clean
