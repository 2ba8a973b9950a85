"""Security payloads around the user's files and network: traversal and links, a server beyond
loopback, leaked keys, and file modes."""

from __future__ import annotations

import json
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from store.database import open_database
from store.errors import InputError, ModelError
from store.examples import add_examples, prompt_response
from store.imports import read_examples
from store.projects import create_project
from tests.conftest import TinyRun
from tests.reliability.scorecard import Scorecard
from tests.reliability.security_setup import adapter_folder, exportable_run, invoke, quiet
from trainer.control.jobs import plan_for_project, prepare_run
from trainer.control.launch import is_loopback
from trainer.export import export_run
from trainer.models import load_base_model
from tui.cli.main import cli


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
