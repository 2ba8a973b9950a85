"""Which chat model the agent and the drafting teacher talk to, as the config file and the
environment set them.

Keys come from the environment only: they are never stored in the config file, the database or
printed.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from store.config import SETTINGS, Settings, config_path
from store.errors import InputError, one_line_reason
from store.projects import DEFAULT_BASE_MODEL

AGENT_BASE_URL_ENV = SETTINGS["agent"]["base_url"]
"""OpenAI-compatible endpoint of the agent's model (e.g. ``http://localhost:11434/v1``)."""

AGENT_API_KEY_ENV = "TUNESMITH_AGENT_API_KEY"
"""Key for that endpoint; ``OPENAI_API_KEY`` is used when this is not set."""

AGENT_MODEL_ENV = SETTINGS["agent"]["model"]
"""Model name on that endpoint; setting it turns on model mode."""

TEACHER_BASE_URL_ENV = SETTINGS["teacher"]["base_url"]
"""Endpoint of the drafting teacher, when it is not the agent's."""

TEACHER_MODEL_ENV = SETTINGS["teacher"]["model"]
"""The drafting teacher's model (``local`` for the project's base model served here)."""

OPENAI_API_KEY_ENV = "OPENAI_API_KEY"

LOCAL_MODEL = "local"
"""``--teacher`` value for the project's own base model, served on this machine."""

OLLAMA_PREFIX = "ollama:"
"""Starts a model name that an Ollama server answers to, e.g. ``ollama:llama3.2``."""

OLLAMA_HOST_ENV = "OLLAMA_HOST"
"""Where Ollama listens (``HOST``, ``HOST:PORT`` or a URL), as Ollama itself reads it."""

OLLAMA_DEFAULT_URL = "http://localhost:11434"
"""Ollama's own default address."""

OLLAMA_PROBE_SECONDS = 0.5
"""How long to wait for a local Ollama server to list its models; a local one answers at once."""

SMALL_MODEL_BILLIONS = 1.0
"""Models with fewer parameters than this write poor drafts: they get the weak-teacher path."""

_PARAMETER_COUNT = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)([mb])(?![a-z0-9])")
"""A parameter count in a model name: ``135M``, ``0.5b``, ``7B``."""

_OLLAMA_PORT = 11434


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible chat endpoint: a model name, a base URL and a key."""

    model: str
    base_url: str | None = None
    """None means OpenAI's own API."""
    api_key: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """The model and where it runs, without the key."""
        return f"{self.model} at {self.base_url or 'api.openai.com'}"


def agent_endpoint(
    settings: Settings, model: str | None = None, environ: Mapping[str, str] | None = None
) -> Endpoint | None:
    """The agent's configured endpoint (``model`` overrides its model); None if none is."""
    env = os.environ if environ is None else environ
    name = (model or settings.agent.model or "").strip() or None
    if name is None:
        if settings.agent.base_url is not None:
            raise InputError(
                f"{_where(env, AGENT_BASE_URL_ENV, 'agent.base_url')} is set but names no model:"
                f" set {AGENT_MODEL_ENV} (or pass --model / --teacher)"
            )
        return None
    return _endpoint(name, settings.agent.base_url, env)


def teacher_endpoint(
    settings: Settings, name: str | None = None, environ: Mapping[str, str] | None = None
) -> Endpoint | None:
    """The drafting teacher's endpoint: ``name``, else the configured teacher, else the agent's
    model, on the teacher's base URL, else the agent's; None when no model is named."""
    env = os.environ if environ is None else environ
    model = (name or settings.teacher.model or settings.agent.model or "").strip() or None
    base_url = settings.teacher.base_url or settings.agent.base_url
    if model is None:
        if settings.teacher.base_url is not None:
            raise InputError(
                f"{_where(env, TEACHER_BASE_URL_ENV, 'teacher.base_url')} is set but names no"
                f" model: set {TEACHER_MODEL_ENV} (or pass --teacher)"
            )
        return agent_endpoint(settings, None, env)
    return _endpoint(model, base_url, env)


def _endpoint(model: str, base_url: str | None, env: Mapping[str, str]) -> Endpoint:
    if model.lower().startswith(OLLAMA_PREFIX):
        return ollama_endpoint(model[len(OLLAMA_PREFIX) :], env)
    api_key = env.get(AGENT_API_KEY_ENV, "").strip() or env.get(OPENAI_API_KEY_ENV, "").strip()
    if base_url is None and not api_key:
        raise InputError(
            f"model {model!r} needs an endpoint: set {OPENAI_API_KEY_ENV} for OpenAI, or"
            f" {AGENT_BASE_URL_ENV} for another server (http://localhost:11434/v1 for Ollama)"
        )
    return Endpoint(model=model, base_url=base_url, api_key=api_key or None)


def _where(env: Mapping[str, str], variable: str, key: str) -> str:
    """How a half-set endpoint's base URL is named: its variable, or its key in the file."""
    return variable if env.get(variable, "").strip() else f"{key} in {config_path(env)}"


def ollama_url(environ: Mapping[str, str] | None = None) -> str:
    """The address of the Ollama server: ``$OLLAMA_HOST`` (as Ollama reads it), else its default."""
    env = os.environ if environ is None else environ
    host = env.get(OLLAMA_HOST_ENV, "").strip().rstrip("/")
    if not host:
        return OLLAMA_DEFAULT_URL
    parts = urllib.parse.urlsplit(host if "://" in host else f"http://{host}")
    # Ollama listening on every address is reached on loopback.
    hostname = parts.hostname or "localhost"
    if hostname in ("0.0.0.0", "::"):
        hostname = "localhost"
    shown = f"[{hostname}]" if ":" in hostname else hostname
    try:
        port = parts.port or _OLLAMA_PORT
    except ValueError as error:
        raise InputError(f"{OLLAMA_HOST_ENV}={host!r} is not HOST[:PORT] or a URL") from error
    return f"{parts.scheme or 'http'}://{shown}:{port}"


def ollama_endpoint(name: str, environ: Mapping[str, str] | None = None) -> Endpoint:
    """The Ollama model ``name`` on Ollama's OpenAI-compatible endpoint (it needs no key)."""
    model = name.strip()
    if not model:
        raise InputError(f"{OLLAMA_PREFIX} needs a model name, e.g. {OLLAMA_PREFIX}llama3.2")
    return Endpoint(model=model, base_url=f"{ollama_url(environ)}/v1")


def ollama_models(base_url: str, *, timeout: float = OLLAMA_PROBE_SECONDS) -> list[str]:
    """The models an Ollama server at ``base_url`` has (``:latest`` left off); none when nothing
    answers there in ``timeout`` seconds or the answer is not Ollama's."""
    # No proxy: the probe is for a server on this machine (or one named by $OLLAMA_HOST).
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{base_url}/api/tags", timeout=timeout) as response:
            listing = json.loads(response.read(1_000_000))
    except (OSError, ValueError):
        return []
    entries = listing.get("models") if isinstance(listing, dict) else None
    if not isinstance(entries, list):
        return []
    names = [entry.get("name") for entry in entries if isinstance(entry, dict)]
    return [name.removesuffix(":latest") for name in names if isinstance(name, str) and name]


def ollama_offer(models: list[str]) -> str:
    """One line offering Ollama's models as teachers, naming the strongest-looking first."""
    suggested = next((name for name in models if not is_small_model(name)), models[0])
    return f"Ollama has {', '.join(models)} here: --teacher {OLLAMA_PREFIX}{suggested}"


def openai_chat_model(
    endpoint: Endpoint,
    *,
    temperature: float = 0.2,
    max_tokens: int = 1024,
    timeout: float = 120.0,
    max_retries: int = 1,
) -> BaseChatModel:
    """A langchain chat model for an OpenAI-compatible endpoint (OpenAI, Ollama, our server)."""
    # Imported here: the openai client takes a second to import, and most commands never need it.
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    # Ollama and our own loopback server take any key, but the client insists on one.
    return ChatOpenAI(
        model=endpoint.model,
        base_url=endpoint.base_url,
        api_key=SecretStr(endpoint.api_key or "not-needed"),
        temperature=temperature,
        max_completion_tokens=max_tokens,
        timeout=timeout,
        max_retries=max_retries,
    )


def is_small_model(name: str) -> bool:
    """Whether ``name`` is the embedded default or says it has under a billion parameters
    (``SmolLM2-135M``, ``qwen2.5:0.5b``): too weak to lead or to write whole examples."""
    lowered = name.lower()
    if lowered == DEFAULT_BASE_MODEL.lower():
        return True
    for number, unit in _PARAMETER_COUNT.findall(lowered):
        billions = float(number) / 1000 if unit == "m" else float(number)
        if billions < SMALL_MODEL_BILLIONS:
            return True
    return False


def call_failure(error: BaseException, model: object) -> str:
    """Why a call to a chat model failed, in one line; a timeout says how long was waited."""
    if _timed_out(error):
        timeout = getattr(model, "request_timeout", None)
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            return f"no answer within {timeout:g} s (the time limit of one request)"
        return "no answer in time (the request timed out)"
    return one_line_reason(error)


def _timed_out(error: BaseException) -> bool:
    """Whether ``error``, or one it was raised from, is a timeout of the HTTP client."""
    # Imported here: only a failed call pays for loading the HTTP clients' error types.
    import httpx
    import openai

    timeouts = (TimeoutError, openai.APITimeoutError, httpx.TimeoutException)
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, timeouts):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@dataclass
class ChatModelSource:
    """A chat model made on first use (starting a server takes a while), named for messages."""

    name: str
    """How the model is called in messages, e.g. ``gpt-4o-mini at api.openai.com``."""
    make: Callable[[], BaseChatModel]
    weak: bool = False
    """Whether this is a small model whose drafts will be poor."""
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Strings to blank out of error messages (keys)."""
    cache: bool = True
    """Whether to keep the model made first; off when what it talks to can move (a server
    the app restarts on another port)."""
    _model: BaseChatModel | None = field(default=None, repr=False)

    def get(self) -> BaseChatModel:
        """The model, made now if this is the first call (or every call, without ``cache``)."""
        if not self.cache:
            return self.make()
        if self._model is None:
            self._model = self.make()
        return self._model

    def redact(self, text: str) -> str:
        """``text`` with any key of this source blanked out."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


def fixed_source(model: BaseChatModel, name: str, *, weak: bool = False) -> ChatModelSource:
    """A source for a model that already exists (tests, or the app's own)."""
    return ChatModelSource(name=name, make=lambda: model, weak=weak)


def endpoint_source(endpoint: Endpoint, *, max_tokens: int = 1024) -> ChatModelSource:
    """A source that talks to ``endpoint``."""
    return ChatModelSource(
        name=endpoint.describe(),
        make=lambda: openai_chat_model(endpoint, max_tokens=max_tokens),
        weak=is_small_model(endpoint.model),
        secrets=(endpoint.api_key,) if endpoint.api_key else (),
    )


def message_text(message: object) -> str:
    """The text of a chat model's answer (string content or a list of text parts)."""
    content = message.content if isinstance(message, BaseMessage) else message
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return ""
