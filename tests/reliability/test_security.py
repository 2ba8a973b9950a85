"""Security payloads: terminal escapes and markup in untrusted text, pickles and custom code in
model folders, foreign checkpoints, traversal and links, an exposed server, leaked keys, and
file modes."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar, cast

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from store.database import open_database
from store.errors import InputError, ModelError
from store.examples import add_examples, prompt_response
from store.imports import read_examples
from store.projects import create_project
from store.runs import create_run, finish_run
from tests.conftest import TinyRun
from tests.reliability.scorecard import Scorecard
from trainer.control.adapter_files import check_adapter_folder
from trainer.control.jobs import plan_for_project, prepare_run
from trainer.control.launch import ServerHandle, is_loopback
from trainer.export import export_run
from trainer.models import load_base_model
from trainer.training.run import CHECKPOINT_MARKER, resumable_checkpoint, write_checkpoint_marker
from tui.cli import models as cli_models
from tui.cli.main import cli
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


def invoke(db_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db_path), *args])


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


PICKLE = b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93."


def adapter_folder(folder: Path) -> Path:
    """A folder shaped like an adapter: config and weights as JSON and safetensors only."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA"}', encoding="utf-8")
    (folder / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")
    return folder


CODE_FILES = [
    "adapter_model.bin",
    "pytorch_model.bin",
    "training_args.bin",
    "optimizer.pt",
    "rng_state.pth",
    "weights.pkl",
    "weights.pickle",
    "model.ckpt",
    "array.npy",
    "model.joblib",
    "modeling_evil.py",
    "model.h5",
]


@pytest.mark.parametrize("file_name", CODE_FILES)
def test_a_pickle_or_code_in_an_adapter_folder_is_refused(
    file_name: str, tmp_path: Path, scorecard: Scorecard
) -> None:
    folder = adapter_folder(tmp_path / "adapter")
    (folder / file_name).write_bytes(PICKLE)
    refused = False
    try:
        check_adapter_folder(folder)
    except ModelError as error:
        refused = file_name in error.message and "refusing to load" in error.message
    scorecard.payload(f"{file_name} in an adapter folder refused for loading", neutralised=refused)
    assert refused


def exportable_run(tmp_path: Path, adapter: Path) -> tuple[Path, int]:
    """A database holding one completed run whose adapter is ``adapter``."""
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    project = create_project(db, "p")
    run = create_run(
        db, project.id, config={}, dataset_hash="x", dataset_size=1, runs_root=tmp_path / "runs"
    )
    Path(run.run_dir or "").mkdir(parents=True)
    finish_run(db, run.id, "completed", adapter_path=str(adapter))
    return db_path, run.id


def quiet(line: str) -> None:
    """A status callback that shows nothing."""


def test_export_leaves_pickles_behind_and_refuses_them_for_merging(
    tmp_path: Path, scorecard: Scorecard
) -> None:
    adapter = adapter_folder(tmp_path / "adapter")
    for file_name in CODE_FILES:
        (adapter / file_name).write_bytes(PICKLE)
    db_path, run_id = exportable_run(tmp_path, adapter)

    result = export_run(db_path, run_id, tmp_path / "out", on_status=quiet)
    exported = sorted(path.name for path in (tmp_path / "out").iterdir())
    for file_name in CODE_FILES:
        scorecard.payload(
            f"{file_name} left out of an export", neutralised=file_name not in exported
        )
    assert exported == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
    ]
    assert sorted(result.files) == exported

    with pytest.raises(ModelError, match="refusing to load") as refused:
        export_run(db_path, run_id, tmp_path / "merged", merged=True, on_status=quiet)
    scorecard.payload("pickles refused when merging an export", neutralised=refused is not None)
    assert not (tmp_path / "merged").exists()


def test_a_model_that_needs_its_own_code_is_refused_without_running_it(
    tmp_path: Path, scorecard: Scorecard
) -> None:
    sentinel = tmp_path / "code-ran"
    folder = tmp_path / "evil-model"
    folder.mkdir()
    code = f"import pathlib\npathlib.Path({str(sentinel)!r}).write_text('ran')\n"
    (folder / "evil.py").write_text(code, encoding="utf-8")
    auto_map = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    config = {"model_type": "tunesmith-evil", "auto_map": auto_map}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    tokenizer = {
        "tokenizer_class": "EvilTokenizer",
        "auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]},
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer), encoding="utf-8")

    with pytest.raises(ModelError) as refused:
        load_base_model(str(folder), on_status=quiet)
    neutralised = not sentinel.exists() and "\n" not in refused.value.message
    scorecard.payload(
        "a base model with custom code (trust_remote_code off)", neutralised=neutralised
    )
    assert neutralised


def test_resume_takes_only_checkpoints_this_run_wrote_and_nobody_changed(
    tmp_path: Path, scorecard: Scorecard
) -> None:
    root = tmp_path / "checkpoints"

    def checkpoint(step: int, run_id: int = 1) -> Path:
        folder = root / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "optimizer.pt").write_bytes(b"state" * 100)
        (folder / "adapter_model.safetensors").write_bytes(b"weights")
        write_checkpoint_marker(folder, run_id=run_id, step=step)
        return folder

    genuine = checkpoint(5)
    checkpoint(10, run_id=2)
    (checkpoint(15) / "optimizer.pt").write_bytes(PICKLE)
    copied = root / "checkpoint-20"
    copied.mkdir()
    for path in genuine.iterdir():
        (copied / path.name).write_bytes(path.read_bytes())
    (checkpoint(25) / "rng_state.pth").write_bytes(PICKLE)
    (checkpoint(30) / "adapter_model.safetensors").unlink()
    linked = checkpoint(35)
    (linked / "optimizer.pt").unlink()
    (linked / "optimizer.pt").symlink_to(genuine / "optimizer.pt")
    hand_made = root / "checkpoint-40"
    hand_made.mkdir()
    (hand_made / "optimizer.pt").write_bytes(PICKLE)
    (hand_made / CHECKPOINT_MARKER).write_text(json.dumps({"run_id": 1, "step": 40}))
    garbled = checkpoint(45)
    (garbled / CHECKPOINT_MARKER).write_text("{not json")

    chosen = resumable_checkpoint(root, run_id=1)
    for label in (
        "another run's checkpoint",
        "a checkpoint whose optimizer state was swapped",
        "a checkpoint copied under another step",
        "a checkpoint with a file added",
        "a checkpoint with a file missing",
        "a checkpoint holding a link",
        "a hand-made marker without hashes",
        "an unreadable marker",
    ):
        scorecard.payload(f"resume refuses {label}", neutralised=chosen == genuine)
    assert chosen == genuine


def dataset_folder(folder: Path, state: object) -> Path:
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps(state), encoding="utf-8")
    return folder


def test_import_refuses_traversal_and_links_out_of_its_folder(
    tmp_path: Path, scorecard: Scorecard
) -> None:
    outside = tmp_path / "outside.arrow"
    outside.write_bytes(b"secret")
    traversal = dataset_folder(tmp_path / "a", {"_data_files": [{"filename": "../outside.arrow"}]})
    absolute = dataset_folder(tmp_path / "b", {"_data_files": [{"filename": str(outside)}]})
    linked = dataset_folder(tmp_path / "c", {"_data_files": [{"filename": "data.arrow"}]})
    (linked / "data.arrow").symlink_to(outside)
    linked_state = tmp_path / "d"
    linked_state.mkdir()
    (linked_state / "state.json").symlink_to(traversal / "state.json")
    splits = tmp_path / "e"
    splits.mkdir()
    (splits / "dataset_dict.json").write_text(json.dumps({"splits": ["../a"]}), encoding="utf-8")
    for label, folder in (
        ("a '..' data file", traversal),
        ("an absolute data file", absolute),
        ("a data file linked out", linked),
        ("a state.json linked out", linked_state),
        ("a '..' split folder", splits),
    ):
        refused = False
        try:
            read_examples(folder)
        except InputError as error:
            refused = "not read" in error.message
        scorecard.payload(f"import refuses {label}", neutralised=refused)
        assert refused, label


def test_exports_do_not_write_through_links(tmp_path: Path, scorecard: Scorecard) -> None:
    db_path = tmp_path / "t.db"
    invoke(db_path, "project", "new", "p")
    invoke(db_path, "examples", "add", "p", "--prompt", "q", "--response", "a")
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me", encoding="utf-8")
    link = tmp_path / "examples.jsonl"
    link.symlink_to(precious)
    exported = invoke(db_path, "examples", "export", "p", str(link))
    clean = exported.exit_code == 0 and precious.read_text(encoding="utf-8") == "keep me"
    scorecard.payload(
        "examples export onto a link replaces the link, not its target", neutralised=clean
    )
    assert clean and not link.is_symlink()

    adapter = adapter_folder(tmp_path / "adapter")
    db_path, run_id = exportable_run(tmp_path / "model", adapter)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep me", encoding="utf-8")
    linked_target = tmp_path / "linked-target"
    linked_target.symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match="is a link"):
        export_run(db_path, run_id, linked_target, force=True, on_status=quiet)
    scorecard.payload("model export into a linked folder refused", neutralised=True)

    target = tmp_path / "target"
    target.mkdir()
    (target / "escape").symlink_to(outside, target_is_directory=True)
    export_run(db_path, run_id, target, force=True, on_status=quiet)
    clean = (outside / "keep.txt").read_text(encoding="utf-8") == "keep me"
    scorecard.payload(
        "replacing an export holding a link leaves the link's target", neutralised=clean
    )
    assert clean and not (target / "escape").exists()

    (adapter / "escape").symlink_to(outside / "keep.txt")
    with pytest.raises(ModelError, match="links are not allowed"):
        export_run(db_path, run_id, tmp_path / "fresh", on_status=quiet)
    scorecard.payload("model export of an adapter folder holding a link refused", neutralised=True)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com"])
def test_the_server_refuses_to_listen_beyond_loopback_without_a_key(
    host: str, tmp_path: Path, scorecard: Scorecard, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainer.serving.serve import main as serve_main

    db_path = tmp_path / "t.db"
    invoke(db_path, "project", "new", "p")
    from_cli = invoke(db_path, "serve", "p", "--host", host)
    from_server = serve_main(["--base-model", "no-model-is-loaded", "--host", host])
    refused = (
        not is_loopback(host)
        and from_cli.exit_code == 1
        and "needs an API key" in from_cli.stderr
        and from_server == 2
        and "without an API key" in capsys.readouterr().err
    )
    scorecard.payload(f"serving on {host} without a key", neutralised=refused)
    assert refused


def test_loopback_is_the_default_everywhere() -> None:
    import inspect

    from trainer.control.launch import start_server

    assert inspect.signature(start_server).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(start_server).parameters["trust_remote_code"].default is False
    assert inspect.signature(load_base_model).parameters["trust_remote_code"].default is False
    assert all(is_loopback(host) for host in ("127.0.0.1", "::1", "[::1]", "localhost"))
    assert "--trust-remote-code" not in invoke(Path("unused.db"), "serve", "--help").output


class _RecordingEndpoint(BaseHTTPRequestHandler):
    """An OpenAI-style endpoint that refuses every key, echoing it back as OpenAI does."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen.append(key)
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_agent_keys_come_from_the_environment_and_are_never_stored_or_shown(
    tmp_path: Path, scorecard: Scorecard, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-agent-reliability-9876543210"
    endpoint = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingEndpoint)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv(
            "TUNESMITH_AGENT_BASE_URL", f"http://127.0.0.1:{endpoint.server_port}/v1"
        )
        monkeypatch.setenv("TUNESMITH_AGENT_API_KEY", secret)
        monkeypatch.setenv("TUNESMITH_AGENT_MODEL", "some-model")
        db_path = tmp_path / "t.db"
        chat = CliRunner().invoke(
            cli,
            ["--db", str(db_path), "chat", "tickets"],
            input="I need a model that sorts support tickets into billing and technical.\n",
        )
    finally:
        endpoint.shutdown()
        endpoint.server_close()
    assert chat.exit_code == 0, chat.output
    assert secret in _RecordingEndpoint.seen, "the key from the environment was used"
    for label, data in [
        ("the chat's output", chat.output.encode()),
        *((path.name, path.read_bytes()) for path in tmp_path.glob("t.db*")),
    ]:
        clean = secret.encode() not in data
        scorecard.payload(f"agent key kept out of {label}", neutralised=clean)
        assert clean, label


def test_the_database_and_run_folders_are_private(
    tmp_path: Path, tiny_model_dir: Path, completed_tiny_run: TinyRun, scorecard: Scorecard
) -> None:
    home = Path(os.environ["TUNESMITH_HOME"])
    db_path = home / "tunesmith.db"
    db = open_database(db_path)
    project = create_project(db, "p", base_model=str(tiny_model_dir))
    add_examples(db, project.id, [prompt_response("q", "a")], source="typed")
    run = prepare_run(db, project, plan_for_project(db, project))
    trained_run = Path(completed_tiny_run.home) / "runs" / str(completed_tiny_run.run_id)
    checked = [home, db_path, *home.glob("tunesmith.db-*"), Path(run.run_dir or "")]
    checked += [trained_run, *trained_run.rglob("*")]
    assert any(path.name.endswith("-wal") for path in checked)
    for path in checked:
        mode = stat.S_IMODE(path.lstat().st_mode)
        private = mode & 0o077 == 0
        scorecard.payload(f"{path.name} is private ({oct(mode)})", neutralised=private)
        assert private, (path, oct(mode))
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
