"""A stand-in for a remote OpenAI-compatible chat endpoint, on loopback: it answers with the
texts it is given, in turn (the last repeats), and keeps every request it was sent. It lists
its models as Ollama does (``GET /api/tags``), so it stands in for an Ollama server too."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class StandIn:
    """What the stand-in answers and was asked; ``base_url`` ends in ``/v1``."""

    base_url: str = ""
    answers: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    """What ``GET /api/tags`` lists."""
    delay: float = 0.0
    """Seconds each chat answer takes."""

    @property
    def host(self) -> str:
        """``HOST:PORT``, as ``$OLLAMA_HOST`` names a server."""
        return self.base_url.removeprefix("http://").removesuffix("/v1")


@contextmanager
def stand_in_endpoint() -> Iterator[StandIn]:
    """A running stand-in endpoint, shut down on exit."""
    stand_in = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/api/tags":
                self.send_error(404)
                return
            self._json({"models": [{"name": name, "model": name} for name in stand_in.models]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            stand_in.requests.append(body)
            time.sleep(stand_in.delay)
            text = stand_in.answers[min(len(stand_in.requests), len(stand_in.answers)) - 1]
            self._json(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )

        def _json(self, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stand_in.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
