"""The Ollama Modelfile of a GGUF export: chat templates measured into Go templates, values
quoted so Ollama's parser reads them back unchanged. No model is loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import gguf
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from store.errors import InputError
from tests.trainer.ollama_modelfile import parse_modelfile
from trainer.control.modelfile import (
    ChatFormat,
    ChatRenderer,
    Modelfile,
    chat_format,
    context_size,
    stop_tokens,
)
from trainer.models import embedded_gguf_path

SMOLLM2_GO_TEMPLATE = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n"
    "{{ else }}<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n{{ end }}"
    "{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
    '{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
    '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ .Content }}'
    "{{ if not $last }}<|im_end|>\n{{ end }}{{ end }}"
    '{{ if and $last (ne .Role "assistant") }}<|im_start|>assistant\n{{ end }}{{ end }}'
)

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

GEMMA_LIKE_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] + '\n\n' %}{% set rest = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set rest = messages %}{% endif %}"
    "{% for message in rest %}<start_of_turn>{{ 'model' if message['role'] == 'assistant'"
    " else 'user' }}\n{{ system if loop.first else '' }}{{ message['content'] }}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

ALTERNATING_ONLY_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "[{{ message['role'] }}] {{ message['content'] }}\n{% endfor %}"
)


def jinja_renderer(template: str, bos_token: str = "<s>") -> ChatRenderer:
    """Render a chat template the way transformers does (sandboxed, blocks trimmed)."""

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = raise_exception
    compiled = environment.from_string(template)

    def render(messages: list[dict[str, str]], generate: bool) -> str:
        return compiled.render(
            messages=messages, add_generation_prompt=generate, bos_token=bos_token
        )

    return render


GO_RENDERER = """package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct{ Role, Content string }

func main() {
	source, _ := os.ReadFile(os.Args[1])
	var values struct {
		System   string
		Messages []Message
	}
	if err := json.NewDecoder(os.Stdin).Decode(&values); err != nil {
		panic(err)
	}
	parsed := template.Must(template.New("").Option("missingkey=zero").Parse(string(source)))
	if err := parsed.Execute(os.Stdout, values); err != nil {
		panic(err)
	}
}
"""
"""Executes a template as Ollama does: Go's text/template, given .System and .Messages."""


def embedded_template() -> str:
    field = gguf.GGUFReader(embedded_gguf_path()).fields["tokenizer.chat_template"]
    template = field.contents()
    assert isinstance(template, str)
    return template


def test_the_embedded_chatml_template_becomes_an_ollama_template() -> None:
    render = jinja_renderer(embedded_template(), bos_token="<|im_start|>")
    measured = chat_format(render)

    assert measured.go_template() == SMOLLM2_GO_TEMPLATE
    assert stop_tokens(measured, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "<|im_end|>") == [
        "<|im_end|>"
    ]
    # Without a system message the template's own default system turn is kept.
    conversation = [{"role": "user", "content": "Hi"}]
    assert measured.render(conversation) == render(conversation, True)


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain on PATH")
def test_go_executes_the_template_as_the_measured_format_renders(tmp_path: Path) -> None:
    program, template = tmp_path / "render.go", tmp_path / "template.txt"
    program.write_text(GO_RENDERER)
    for source, bos in ((embedded_template(), "<|im_start|>"), (LLAMA3_TEMPLATE, "<|b|>")):
        measured = chat_format(jinja_renderer(source, bos_token=bos))
        template.write_text(measured.go_template())
        for conversation in (
            [{"role": "user", "content": "Hi {{ .System }}"}],
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": "Red."},
                {"role": "user", "content": "Another."},
            ],
        ):
            # Ollama passes every message, system ones too, and the system messages joined.
            system = "\n\n".join(m["content"] for m in conversation if m["role"] == "system")
            values = {
                "System": system,
                "Messages": [{"Role": m["role"], "Content": m["content"]} for m in conversation],
            }
            rendered = subprocess.run(
                ["go", "run", str(program), str(template)],
                input=json.dumps(values),
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "GOCACHE": str(tmp_path / "go-cache")},
            ).stdout
            assert rendered == measured.render(conversation)
            assert rendered == jinja_renderer(source, bos_token=bos)(conversation, True)


def test_a_template_that_trims_and_starts_with_bos_is_measured() -> None:
    render = jinja_renderer(LLAMA3_TEMPLATE, bos_token="<|begin_of_text|>")
    measured = chat_format(render)

    assert measured.head == "<|begin_of_text|>"
    assert (
        measured.system_prefix == "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    )
    assert measured.assistant_suffix == "<|eot_id|>"
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Red."},
        {"role": "user", "content": "Another."},
    ]
    assert measured.render(conversation) == render(conversation, True)
    assert stop_tokens(measured, ["<|eot_id|>", "<|end_of_text|>"], "<|end_of_text|>") == [
        "<|eot_id|>",
        "<|end_of_text|>",
    ]


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        (GEMMA_LIKE_TEMPLATE, "does not give the system prompt a turn of its own"),
        (ALTERNATING_ONLY_TEMPLATE, "fails on a conversation of system, user"),
        ("{{ messages[0]['content'] }}{{ messages[0]['content'] }}", "content once"),
    ],
)
def test_templates_that_are_not_turn_by_turn_are_not_translated(template: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        chat_format(jinja_renderer(template))


def test_template_text_that_looks_like_a_go_action_stays_text() -> None:
    measured = ChatFormat(
        head="",
        system_prefix="{{sys}} ",
        system_suffix="\n",
        user_prefix="U: ",
        user_suffix="\n",
        assistant_prefix="A: ",
        assistant_suffix="\n",
        generation_prompt="A: ",
    )
    assert measured.go_template().startswith('{{ if .System }}{{ "{{" }}sys}} {{ .System }}')


def test_ollama_reads_back_the_modelfile_as_written() -> None:
    system = 'Answer in JSON: {"label": "..."}.\nNever say """ mid-line """ like this.\tTabs stay.'
    text = Modelfile(
        model="./colours-run3-f16.gguf",
        template=SMOLLM2_GO_TEMPLATE,
        system=system,
        stops=["<|im_end|>"],
        num_ctx=context_size(8192),
        notes=["A note\nthat spans lines"],
    ).text()

    assert parse_modelfile(text) == [
        ("model", "./colours-run3-f16.gguf"),
        ("template", SMOLLM2_GO_TEMPLATE),
        ("system", system),
        ("stop", "<|im_end|>"),
        ("num_ctx", "4096"),
    ]
    assert "# A note that spans lines\n" in text


def test_a_system_prompt_the_format_cannot_hold_is_refused_or_cleaned() -> None:
    with pytest.raises(InputError, match='line ending in """'):
        Modelfile(model="./m.gguf", system='Quote this: """\nthen go on').text()

    # Ollama's parser drops control and format characters; the file leaves them out itself.
    text = Modelfile(model="./m.gguf", system="Be\x1b[31m brief\u202e.\r\nOK").text()
    assert parse_modelfile(text)[1] == ("system", "Be[31m brief.\nOK")
    assert "\x1b" not in text and "\u202e" not in text


def test_an_adapter_modelfile_names_its_base_and_adapter() -> None:
    text = Modelfile(model="SmolLM2-360M", adapter="./colours-run3-lora-f16.gguf").text()
    assert parse_modelfile(text) == [
        ("model", "SmolLM2-360M"),
        ("adapter", "./colours-run3-lora-f16.gguf"),
    ]


def test_num_ctx_is_the_model_context_capped() -> None:
    assert context_size(512) == 512
    assert context_size(131072) == 4096
