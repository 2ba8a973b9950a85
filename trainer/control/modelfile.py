"""An Ollama Modelfile for an exported GGUF: the chat template as a Go template, the system
prompt, the stop tokens and the context size; and the export's choices the CLI offers.

Torch-free. A Jinja chat template cannot be translated to Go in general, so it is measured
instead: rendered (by the tokenizer that owns it) for a few probe conversations whose contents
are markers, and cut at the markers into the text around each turn. A template that renders
every turn the same way, whatever comes before or after it (ChatML, Llama 3, Zephyr and most
others), becomes a Go template of those pieces, checked by rendering more conversations both
ways. A template that does not (one that folds the system prompt into the first user turn, say)
is not translated: the Modelfile then has no TEMPLATE and says why, and Ollama picks one from
the chat template in the GGUF's metadata.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from store.errors import InputError, one_line_reason

GgufQuant = Literal["f16", "q8_0"]
"""How an exported GGUF stores its matrices: f16 (exact to f16 rounding) or q8_0 (about half
the size)."""
GGUF_QUANTS: tuple[GgufQuant, ...] = ("f16", "q8_0")

MergedDtype = Literal["bf16", "f16", "f32"]
"""The dtype of a merged safetensors export."""
MERGED_DTYPES: tuple[MergedDtype, ...] = ("bf16", "f16", "f32")

ChatRenderer = Callable[[list[dict[str, str]], bool], str]
"""Renders messages with the model's chat template; the flag adds the generation prompt."""

CONTEXT_CAP = 4096
"""The largest ``num_ctx`` written: Ollama reserves memory for the whole context up front."""

_SYSTEM = "tunesmith-probe-system-7f3a"
_USER_1 = "tunesmith-probe-user-1-7f3a"
_ASSISTANT_1 = "tunesmith-probe-assistant-1-7f3a"
_USER_2 = "tunesmith-probe-user-2-7f3a"
_ASSISTANT_2 = "tunesmith-probe-assistant-2-7f3a"
_USER_3 = "tunesmith-probe-user-3-7f3a"

_TRIPLE = '"""'
_KEPT_INVISIBLE = frozenset("\n\t")
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp", "Zs"})


def _message(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


@dataclass(frozen=True)
class ChatFormat:
    """The text a chat template puts around each turn, measured from its renderings."""

    head: str
    """What starts a conversation that has no system message (a default system turn, BOS)."""
    system_prefix: str
    system_suffix: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str
    generation_prompt: str
    """What follows the last user turn when the model is to answer."""

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        """What the Go template gives Ollama for ``messages``, ready for the answer.

        Ollama hands a Messages template every system message joined as ``.System`` and all the
        messages (system ones too, which the template skips) as ``.Messages``.
        """
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        parts = [self.system_prefix + system + self.system_suffix if system else self.head]
        for index, message in enumerate(messages):
            last = index == len(messages) - 1
            if message["role"] == "user":
                parts.append(self.user_prefix + message["content"] + self.user_suffix)
            elif message["role"] == "assistant":
                suffix = "" if last else self.assistant_suffix
                parts.append(self.assistant_prefix + message["content"] + suffix)
            if last and message["role"] != "assistant":
                parts.append(self.generation_prompt)
        return "".join(parts)

    def go_template(self) -> str:
        """The Ollama TEMPLATE that renders as ``render`` does.

        On one line between the pieces: a ``{{-`` would eat the newlines the pieces end with.
        """
        return (
            "{{ if .System }}"
            + _go_literal(self.system_prefix)
            + "{{ .System }}"
            + _go_literal(self.system_suffix)
            + "{{ else }}"
            + _go_literal(self.head)
            + "{{ end }}"
            + "{{ range $i, $_ := .Messages }}"
            + "{{ $last := eq (len (slice $.Messages $i)) 1 }}"
            + '{{ if eq .Role "user" }}'
            + _go_literal(self.user_prefix)
            + "{{ .Content }}"
            + _go_literal(self.user_suffix)
            + '{{ else if eq .Role "assistant" }}'
            + _go_literal(self.assistant_prefix)
            + "{{ .Content }}"
            + "{{ if not $last }}"
            + _go_literal(self.assistant_suffix)
            + "{{ end }}"
            + "{{ end }}"
            + '{{ if and $last (ne .Role "assistant") }}'
            + _go_literal(self.generation_prompt)
            + "{{ end }}"
            + "{{ end }}"
        )


def chat_format(render: ChatRenderer) -> ChatFormat:
    """Measure the turns of the chat template behind ``render``; an InputError says why not."""
    user_only = _render(render, [_message("user", _USER_1)], False)
    with_prompt = _render(render, [_message("user", _USER_1)], True)
    one_exchange = _render(
        render, [_message("user", _USER_1), _message("assistant", _ASSISTANT_1)], False
    )
    two_users = _render(
        render,
        [
            _message("user", _USER_1),
            _message("assistant", _ASSISTANT_1),
            _message("user", _USER_2),
        ],
        False,
    )
    with_system = _render(render, [_message("system", _SYSTEM), _message("user", _USER_1)], False)

    generation_prompt = _after_prefix(with_prompt, user_only, "the generation prompt")
    before_user, user_suffix = _split(user_only, _USER_1)
    assistant_prefix, assistant_suffix = _split(
        _after_prefix(one_exchange, user_only, "an assistant turn"), _ASSISTANT_1
    )
    user_prefix, second_suffix = _split(
        _after_prefix(two_users, one_exchange, "a second user turn"), _USER_2
    )
    if second_suffix != user_suffix:
        raise InputError("it ends a user turn differently the second time")
    if not before_user.endswith(user_prefix):
        raise InputError("its first user turn does not start like the others")
    system_prefix, after_system = _split(with_system, _SYSTEM)
    between, system_tail = _split(after_system, _USER_1)
    if system_tail != user_suffix or not between.endswith(user_prefix):
        raise InputError("it does not give the system prompt a turn of its own")
    measured = ChatFormat(
        head=before_user[: len(before_user) - len(user_prefix)],
        system_prefix=system_prefix,
        system_suffix=between[: len(between) - len(user_prefix)],
        user_prefix=user_prefix,
        user_suffix=user_suffix,
        assistant_prefix=assistant_prefix,
        assistant_suffix=assistant_suffix,
        generation_prompt=generation_prompt,
    )
    _check_against_template(measured, render)
    return measured


def _check_against_template(measured: ChatFormat, render: ChatRenderer) -> None:
    """Refuse a measurement that renders any probe conversation unlike the template does."""
    system = _message("system", _SYSTEM)
    exchange = [
        _message("user", _USER_1),
        _message("assistant", _ASSISTANT_1),
        _message("user", _USER_2),
    ]
    longer = [*exchange, _message("assistant", _ASSISTANT_2), _message("user", _USER_3)]
    for conversation in (exchange, [system, *exchange], longer, [system, *longer]):
        if measured.render(conversation) != _render(render, conversation, True):
            raise InputError(
                f"it renders a {len(conversation)}-message conversation differently"
                " from turn to turn"
            )
    for name, piece in asdict(measured).items():
        if _modelfile_text(piece) != piece:
            raise InputError(f"its {name.replace('_', ' ')} holds characters Ollama drops")
        if _ends_a_line_with_triple_quotes(piece):
            raise InputError(f'its {name.replace("_", " ")} holds """ at the end of a line')


def _render(render: ChatRenderer, messages: list[dict[str, str]], generate: bool) -> str:
    # Templates signal what they refuse (roles that do not alternate, a system message) by
    # raising, and any exception type may come out of a template.
    try:
        return render(messages, generate)
    except Exception as error:
        roles = ", ".join(m["role"] for m in messages)
        raise InputError(
            f"it fails on a conversation of {roles}: {one_line_reason(error)}"
        ) from error


def _after_prefix(text: str, prefix: str, what: str) -> str:
    if not text.startswith(prefix):
        raise InputError(f"adding {what} changes the text before it")
    return text[len(prefix) :]


def _split(text: str, marker: str) -> tuple[str, str]:
    if text.count(marker) != 1:
        raise InputError("it does not copy each message's content once, unchanged")
    before, after = text.split(marker)
    return before, after


def _go_literal(text: str) -> str:
    """Template text that Go prints as ``text``: only ``{{`` would start an action."""
    return text.replace("{{", '{{ "{{" }}')


def stop_tokens(
    measured: ChatFormat, special_tokens: Sequence[str], eos_token: str | None
) -> list[str]:
    """The special tokens that end an assistant turn, then the end-of-sequence token."""
    ending = measured.assistant_suffix
    found = sorted((t for t in special_tokens if t and t in ending), key=ending.index)
    stops = list(dict.fromkeys(found))
    if eos_token and eos_token not in stops:
        stops.append(eos_token)
    return stops


def context_size(model_context: int) -> int:
    """The ``num_ctx`` to write: the model's context, capped at ``CONTEXT_CAP``."""
    return max(1, min(model_context, CONTEXT_CAP))


@dataclass(frozen=True)
class Modelfile:
    """What goes into an Ollama Modelfile."""

    model: str
    """``FROM``: the GGUF next to the Modelfile (``./name.gguf``) or a base model's name."""
    adapter: str | None = None
    """``ADAPTER``: a GGUF LoRA next to the Modelfile."""
    template: str | None = None
    system: str | None = None
    stops: Sequence[str] = ()
    num_ctx: int | None = None
    notes: Sequence[str] = ()
    """Comment lines: why a TEMPLATE is missing, what FROM must be."""

    def text(self) -> str:
        """The Modelfile, each value quoted the way Ollama's parser reads it back unchanged."""
        notes = (" ".join(_modelfile_text(note).split()) for note in self.notes)
        lines = ["# Build: ollama create NAME -f Modelfile", *(f"# {note}" for note in notes)]
        lines.append(f"FROM {self.model}")
        if self.adapter:
            lines.append(f"ADAPTER {self.adapter}")
        if self.template:
            lines.append(f"TEMPLATE {_triple_quoted(self.template, 'the template')}")
        if self.system:
            system = _modelfile_text(self.system)
            lines.append(f"SYSTEM {_triple_quoted(system, 'the system prompt')}")
        for stop in self.stops:
            if '"' in stop or any(c in stop for c in "\r\n"):
                raise InputError(f"stop token {stop!r} cannot be written in a Modelfile")
            lines.append(f'PARAMETER stop "{stop}"')
        if self.num_ctx:
            lines.append(f"PARAMETER num_ctx {self.num_ctx}")
        return "\n".join(lines) + "\n"


def _modelfile_text(text: str) -> str:
    """``text`` without the characters Ollama's parser drops (it keeps only printable ones,
    the ASCII space, tabs and line breaks), and with ``\\n`` line breaks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(
        c
        for c in text
        if c in _KEPT_INVISIBLE or c == " " or unicodedata.category(c) not in _DROPPED_CATEGORIES
    )


def _triple_quoted(text: str, what: str) -> str:
    """``\"\"\"text\"\"\"``; a triple-quoted string ends at the first line ending in three
    quotes and has no escapes, so text with such a line is refused."""
    if _ends_a_line_with_triple_quotes(text):
        raise InputError(
            f'{what} has a line ending in """, which a Modelfile cannot hold;'
            " change that line and export again"
        )
    return _TRIPLE + text + _TRIPLE


def _ends_a_line_with_triple_quotes(text: str) -> bool:
    # Ollama's parser, at each line break, strips the value read so far and stops when what
    # is left is longer than six characters and ends in three quotes.
    for index, character in enumerate(text):
        if character in "\r\n":
            read = (_TRIPLE + text[:index]).strip()
            if len(read) >= 6 and read.endswith(_TRIPLE):
                return True
    return False
