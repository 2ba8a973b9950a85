"""A small client of the model server's OpenAI-compatible API; stdlib only, so no torch."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from store.errors import ModelError

_DONE = "[DONE]"


def list_models(base_url: str, api_key: str | None, *, timeout: float = 30) -> list[str]:
    """The model ids the server answers to (``base``, then ``run-<id>`` adapters)."""
    request = _request(base_url, "/v1/models", api_key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise _http_error(base_url, exc) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _connection_error(base_url, exc, timeout) from None
    except ValueError as exc:
        raise ModelError(f"The model server at {base_url} sent a malformed model list.") from exc
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise ModelError(f"The model server at {base_url} sent a malformed model list.")
    return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]


def stream_chat(
    base_url: str,
    api_key: str | None,
    model: str,
    messages: list[dict[str, str]],
    *,
    max_tokens: int = 512,
    temperature: float = 0.0,
    timeout: float = 600,
) -> Iterator[str]:
    """Yield the reply's text pieces as the server streams them; errors are one-line ModelErrors.

    The request is sent when iteration starts; closing the iterator early closes the connection,
    which makes the server stop generating.
    """
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "stream": True,
    }
    request = _request(base_url, "/v1/chat/completions", api_key, body)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            for payload in _events(response):
                if payload == _DONE:
                    return
                yield from _deltas(base_url, payload)
    except urllib.error.HTTPError as exc:
        raise _http_error(base_url, exc) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _connection_error(base_url, exc, timeout) from None
    raise ModelError(f"The model server at {base_url} ended the answer before it was complete.")


def _request(
    base_url: str, path: str, api_key: str | None, body: dict[str, Any] | None = None
) -> urllib.request.Request:
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    return urllib.request.Request(
        base_url.rstrip("/") + path, data=data, headers=headers, method="POST" if data else "GET"
    )


def _events(response: http.client.HTTPResponse) -> Iterator[str]:
    """The data of each server-sent event, multi-line data joined as the SSE format says."""
    data_lines: list[str] = []
    for raw_line in response:
        line = raw_line.decode("utf-8").rstrip("\r\n")
        if not line:
            if data_lines:
                yield "\n".join(data_lines)
                data_lines = []
        elif line.startswith("data:"):
            data_lines.append(line[5:].removeprefix(" "))
    if data_lines:
        yield "\n".join(data_lines)


def _deltas(base_url: str, payload: str) -> Iterator[str]:
    """The text in one ``chat.completion.chunk``; an error event becomes a ModelError."""
    try:
        chunk = json.loads(payload)
    except ValueError:
        raise ModelError(f"The model server at {base_url} sent a malformed event.") from None
    if not isinstance(chunk, dict):
        raise ModelError(f"The model server at {base_url} sent a malformed event.")
    if "error" in chunk:
        raise ModelError(f"The model server failed: {_error_message(chunk)}")
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str) and content:
            yield content


def _http_error(base_url: str, error: urllib.error.HTTPError) -> ModelError:
    try:
        message = _error_message(json.loads(error.read()))
    except (ValueError, OSError, http.client.HTTPException):
        message = error.reason if isinstance(error.reason, str) else "no details"
    finally:
        error.close()
    return ModelError(f"The model server at {base_url} answered HTTP {error.code}: {message}")


def _connection_error(base_url: str, error: BaseException, timeout: float) -> ModelError:
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, TimeoutError):
        return ModelError(f"The model server at {base_url} did not answer within {timeout:g} s.")
    if isinstance(reason, ConnectionRefusedError):
        return ModelError(f"Cannot reach the model server at {base_url}: connection refused.")
    if isinstance(error, http.client.IncompleteRead | ConnectionResetError | BrokenPipeError):
        return ModelError(f"The model server at {base_url} closed the connection mid-answer.")
    detail = str(reason).splitlines()[0] if str(reason) else type(reason).__name__
    return ModelError(f"Cannot talk to the model server at {base_url}: {detail}")


def _error_message(payload: object) -> str:
    """The message of an OpenAI-style ``{"error": {"message": ...}}`` object."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"]).splitlines()[0] if error["message"] else "no details"
    return "no details"
