"""Security payloads in untrusted text: terminal escapes, bidi controls and markup in rows,
errors, answers and file names print inert."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from rich.console import Console

from store.database import open_database
from store.examples import add_examples, prompt_response
from store.projects import create_project
from store.runs import create_run, finish_run
from tests.reliability.scorecard import Scorecard
from tests.reliability.security_setup import invoke
from trainer.control.launch import ServerHandle
from tui.cli import models as cli_models
from tui.safe_text import json_text, one_line, terminal_safe
from tui.text import plain

PAYLOADS = {
    "markup-click-action": "[@click=app.quit]click me[/]",
    "markup-close-tag": "[/]",
    "markup-style": "[bold red on white]loud[/bold red on white]",
    "markup-link": "[link=https://evil.example]site[/link]",
    "csi-colour": "\x1b[31mred\x1b[0m",
    "csi-clear-screen": "\x1b[2J\x1b[H",
    "csi-cursor-up": "\x1b[10Afake prompt $ ",
    "osc-window-title": "\x1b]0;pwned\x07",
    "osc-hyperlink": "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\",
    "osc-52-clipboard": "\x1b]52;c;cm0gLXJmIH4=\x07",
    "dcs-request": "\x1bP$q m\x1b\\",
    "c1-csi": "\x9b31mred",
    "c1-osc": "\x9d0;title\x9c",
    "c1-dcs-st": "\x90q\x9c",
    "bell-backspace": "bell\x07\x08\x08\x08",
    "carriage-return-overwrite": "harmless\rEVIL!!!!",
    "vertical-tab-form-feed": "a\x0bb\x0cc",
    "delete": "x\x7fy",
    "bidi-override": "user\u202egnp.exe\u202c",
    "bidi-embedding": "\u202aleft\u202bright\u202c",
    "bidi-isolates": "\u2066a\u2067b\u2068c\u2069",
    "bidi-marks": "\u200eltr\u200frtl\u061c",
}
"""Untrusted text that must reach a terminal as inert characters."""

_BIDI = {
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
}


def unsafe_characters(text: str) -> set[str]:
    """Characters that could steer a terminal or reorder what it shows."""
    return {
        char
        for char in text
        if (ord(char) < 0x20 and char not in "\t\n") or 0x7F <= ord(char) <= 0x9F or char in _BIDI
    }


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_untrusted_text_is_made_inert_for_terminals_and_the_tui(
    name: str, scorecard: Scorecard
) -> None:
    payload = PAYLOADS[name]
    text = plain(payload)
    console = Console(force_terminal=True, color_system="truecolor", width=200, record=True)
    with console.capture() as captured:
        console.print(text)
    rendered = captured.get()
    neutralised = (
        not unsafe_characters(terminal_safe(payload))
        and not unsafe_characters(one_line(payload, 30))
        and not unsafe_characters(text.plain)
        and text.spans == []
        and "\x1b" not in rendered
        and "\x9b" not in rendered
        and json.loads(json_text(payload)) == payload
        and not unsafe_characters(json_text(payload))
    )
    scorecard.payload(f"{name} in terminal text and the TUI", neutralised=neutralised)
    assert neutralised
    # Markup is shown as typed, not obeyed.
    assert text.plain == terminal_safe(payload)


def test_untrusted_rows_run_errors_and_answers_print_inert(
    tmp_path: Path,
    scorecard: Scorecard,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    project = create_project(db, "p")
    rows = [prompt_response(f"{name}: {payload}", payload) for name, payload in PAYLOADS.items()]
    add_examples(db, project.id, rows, source="imported")
    run = create_run(db, project.id, config={}, dataset_hash="", dataset_size=1, runs_root=tmp_path)
    finish_run(db, run.id, "failed", error="".join(PAYLOADS.values()))

    listed = invoke(db_path, "examples", "list", "p")
    as_json = invoke(db_path, "examples", "list", "p", "--json")
    runs = invoke(db_path, "runs", "list", "p")
    shown = invoke(db_path, "runs", "show", str(run.id))
    for label, result in (
        ("examples list", listed),
        ("examples list --json", as_json),
        ("runs list", runs),
        ("runs show", shown),
    ):
        clean = result.exit_code == 0 and not unsafe_characters(result.output)
        scorecard.payload(f"every payload through `{label}`", neutralised=clean)
        assert clean, (label, result.output)
    stored = [record["messages"][-1]["content"] for record in json.loads(as_json.stdout)]
    assert stored == list(PAYLOADS.values()), "JSON output keeps the text exactly"

    # A model's streamed answer, as `ask` and `compare` print it.
    def answer(*args: object, **kwargs: object) -> Iterator[str]:
        yield from PAYLOADS.values()

    monkeypatch.setattr(cli_models, "stream_chat", answer)
    server = cast(ServerHandle, SimpleNamespace(base_url="http://127.0.0.1:1", api_key=None))
    capsys.readouterr()
    cli_models._stream_answer(server, "base", "q", 10)
    printed = capsys.readouterr().out
    clean = not unsafe_characters(printed)
    scorecard.payload("every payload in a streamed model answer", neutralised=clean)
    assert clean, printed


@pytest.mark.parametrize("name", [name for name, payload in PAYLOADS.items() if "/" not in payload])
def test_file_names_in_import_errors_print_inert(
    name: str, tmp_path: Path, scorecard: Scorecard
) -> None:
    db_path = tmp_path / "t.db"
    invoke(db_path, "project", "new", "p")
    path = tmp_path / f"rows {PAYLOADS[name]}.jsonl"
    path.write_bytes(b'{"prompt": "kept", "response": "yes"}\nnot json\n')
    rejected = invoke(db_path, "examples", "import", "p", str(path))
    missing = invoke(db_path, "examples", "import", "p", str(path) + ".missing")
    clean = (
        rejected.exit_code == 1
        and missing.exit_code == 1
        and not unsafe_characters(rejected.output + missing.output)
    )
    scorecard.payload(f"{name} in a file name in import errors", neutralised=clean)
    assert clean, rejected.output + missing.output
