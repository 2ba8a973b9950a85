"""Where the agent's and the teacher's chat models come from, for the CLI and the app alike.

A model named on the configured endpoint (the config file's ``[agent]`` and ``[teacher]``,
overridden by ``$TUNESMITH_AGENT_*`` and ``$TUNESMITH_TEACHER_*``; else OpenAI), or the project's
base model on a loopback model server that the caller starts and owns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from store.errors import InputError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from agent.models import ChatModelSource
    from trainer.control.launch import ServerHandle

AGENT_MAX_TOKENS = 512
"""Longest answer the agent's model may give in one interview turn."""

TEACHER_MAX_TOKENS = 2048
"""Longest answer a teacher may give for one batch of drafts."""

LocalSource = Callable[[int], "ChatModelSource"]
"""Makes a source for the project's base model, served here, answering up to N tokens."""


def endpoint_source(model_name: str | None, max_tokens: int) -> ChatModelSource | None:
    """``model_name`` (else the configured agent model) on the agent's endpoint; None if
    nothing is configured. Raises InputError for a half-done configuration."""
    from agent.models import agent_endpoint
    from agent.models import endpoint_source as source_for
    from store.config import load_settings

    endpoint = agent_endpoint(load_settings(), model_name)
    return None if endpoint is None else source_for(endpoint, max_tokens=max_tokens)


def teacher_source(name: str | None, local: LocalSource) -> ChatModelSource:
    """The drafting teacher: ``name`` (else the configured teacher, else the agent's model) on
    the configured endpoint, else the local base model."""
    from agent.models import LOCAL_MODEL, teacher_endpoint
    from agent.models import endpoint_source as source_for
    from store.config import load_settings

    settings = load_settings()
    chosen = name or settings.teacher.model
    if chosen is not None and chosen.strip().lower() == LOCAL_MODEL:
        return local(TEACHER_MAX_TOKENS)
    endpoint = teacher_endpoint(settings, name)
    if endpoint is None:
        return local(TEACHER_MAX_TOKENS)
    return source_for(endpoint, max_tokens=TEACHER_MAX_TOKENS)


def ollama_teacher_offer(name: str | None) -> str | None:
    """A line offering the Ollama server's models as teachers, when no teacher is named or
    configured (drafts would go to the small local model) and Ollama answers here."""
    from agent.models import ollama_models, ollama_offer, ollama_url
    from store.config import load_settings

    settings = load_settings()
    if name is not None or settings.teacher.model or settings.agent.model:
        return None
    try:
        models = ollama_models(ollama_url())
    except InputError:
        # A malformed $OLLAMA_HOST only matters to someone asking for an Ollama teacher.
        return None
    return ollama_offer(models) if models else None


def served_source(
    base_model: str, server: Callable[[], ServerHandle], max_tokens: int, *, cache: bool
) -> ChatModelSource:
    """The base model on the server ``server()`` returns (starting it on first use)."""
    from agent.models import ChatModelSource, is_small_model

    return ChatModelSource(
        name=f"{base_model} (served here)",
        make=lambda: served_chat_model(server(), max_tokens),
        weak=is_small_model(base_model),
        cache=cache,
    )


def served_chat_model(handle: ServerHandle, max_tokens: int) -> BaseChatModel:
    """A chat model talking to the base model of a running model server."""
    from agent.models import Endpoint, openai_chat_model
    from trainer.control.launch import BASE_MODEL_NAME

    endpoint = Endpoint(
        model=BASE_MODEL_NAME, base_url=f"{handle.base_url}/v1", api_key=handle.api_key
    )
    # No retry: asking our own server again after a timeout only repeats the slow work.
    return openai_chat_model(endpoint, temperature=0.0, max_tokens=max_tokens, max_retries=0)
