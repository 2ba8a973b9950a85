"""The model server's client on the OpenAI SDK, which loads on first use, not with the app."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, cast

from store.errors import ModelError

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletionMessageParam


def list_models(base_url: str, api_key: str | None, *, timeout: float = 30) -> list[str]:
    """The model ids the server answers to (``base``, then ``run-<id>`` adapters)."""
    import openai

    with _client(base_url, api_key, timeout) as client:
        try:
            page = client.models.list(extra_headers=_headers(api_key))
            return [model.id for model in page]
        except openai.APIStatusError as error:
            raise _status_failure(base_url, error) from None
        except openai.APIConnectionError as error:
            raise _connection_failure(base_url, error, timeout) from None
        except (openai.APIResponseValidationError, ValueError, AttributeError) as error:
            raise ModelError(
                f"The model server at {base_url} sent a malformed model list."
            ) from error


def stream_chat(
    base_url: str,
    api_key: str | None,
    model: str,
    messages: list[dict[str, str]],
    *,
    max_tokens: int = 512,
    temperature: float = 0.0,
    stop: Sequence[str] = (),
    seed: int | None = None,
    timeout: float = 600,
) -> Generator[str, None, None]:
    """Yield the reply's text pieces as the server streams them; errors are one-line ModelErrors.

    The reply ends before the first of ``stop``; ``seed`` makes a sampled reply repeatable.
    The request is sent when iteration starts; closing the generator early closes the
    connection, which makes the server stop generating.
    """
    import openai

    with _client(base_url, api_key, timeout) as client:
        try:
            stream = client.chat.completions.create(
                model=model,
                messages=cast("list[ChatCompletionMessageParam]", messages),
                max_tokens=max_tokens,
                temperature=temperature,
                stop=list(stop) if stop else openai.omit,
                seed=seed if seed is not None else openai.omit,
                stream=True,
                extra_headers=_headers(api_key),
            )
        except openai.APIStatusError as error:
            raise _status_failure(base_url, error) from None
        except openai.APIConnectionError as error:
            raise _connection_failure(base_url, error, timeout) from None
        with stream:
            finished = False
            try:
                for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta.content:
                            yield choice.delta.content
                        finished = finished or choice.finish_reason is not None
            except openai.APITimeoutError:
                raise _timeout_failure(base_url, timeout) from None
            except openai.APIConnectionError:
                raise ModelError(
                    f"The model server at {base_url} closed the connection mid-answer."
                ) from None
            except openai.APIError as error:
                # The SDK raises the server's error event as an APIError carrying its message.
                raise ModelError(f"The model server failed: {_first_line(error.message)}") from None
            except (ValueError, AttributeError):
                raise ModelError(
                    f"The model server at {base_url} sent a malformed event."
                ) from None
    # A server that stops without saying why the answer ended has died mid-answer.
    if not finished:
        raise ModelError(f"The model server at {base_url} ended the answer before it was complete.")


def _client(base_url: str, api_key: str | None, timeout: float) -> openai.OpenAI:
    """An SDK client of the server at ``base_url``; nothing comes from the OPENAI_* environment."""
    import openai

    return openai.OpenAI(
        base_url=base_url.rstrip("/") + "/v1",
        # The SDK insists on a key; a server without one is reached with no header at all.
        api_key=api_key or "none",
        timeout=timeout,
        max_retries=0,
    )


def _headers(api_key: str | None) -> dict[str, str]:
    """Headers left out of a request: the organisation and project of a developer's OpenAI
    account, and ``Authorization`` when the server takes any request."""
    import openai

    # omit is the SDK's marker for a header left out; the headers' type stands it in for text.
    left_out = cast(str, openai.omit)
    headers = {"OpenAI-Organization": left_out, "OpenAI-Project": left_out}
    return headers if api_key else {**headers, "Authorization": left_out}


def _status_failure(base_url: str, error: openai.APIStatusError) -> ModelError:
    """An HTTP error answer as one line, with the server's own message when it sent one."""
    body = error.body
    detail = body.get("error", body) if isinstance(body, dict) else None
    message = detail.get("message") if isinstance(detail, dict) else None
    if isinstance(message, str):
        reason = _first_line(message)
    else:
        reason = error.response.reason_phrase or "no details"
    return ModelError(f"The model server at {base_url} answered HTTP {error.status_code}: {reason}")


def _connection_failure(
    base_url: str, error: openai.APIConnectionError, timeout: float
) -> ModelError:
    """Why no answer came: a timeout, nobody listening, or whatever the network said."""
    import openai

    if isinstance(error, openai.APITimeoutError):
        return _timeout_failure(base_url, timeout)
    causes: list[BaseException] = []
    cause: BaseException | None = error.__cause__
    while cause is not None and cause not in causes:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return ModelError(f"Cannot reach the model server at {base_url}: connection refused.")
    detail = next((str(cause) for cause in causes if str(cause)), error.message)
    return ModelError(f"Cannot talk to the model server at {base_url}: {_first_line(detail)}")


def _timeout_failure(base_url: str, timeout: float) -> ModelError:
    return ModelError(f"The model server at {base_url} did not answer within {timeout:g} s.")


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text.strip() else "no details"
