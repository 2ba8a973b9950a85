"""The command line as a user runs it: projects, import, list, export, add, remove."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from store.database import open_database
from store.examples import list_examples
from store.projects import get_project
from tests.repo import REPO
from tests.store.big_project import NAME, write_big_project
from tui.cli.main import cli
from tui.safe_text import json_text

DEMO = REPO / "examples" / "support_emails.jsonl"

STREAMED_ROWS = 50_000
"""Rows listed and exported in bounded memory: holding them all took some 65 MB more."""
STREAMING_MB = 40
"""What listing or exporting them may add to the CLI's own peak memory: a generous bound
(streaming adds a few MB), well under what holding every row takes."""
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)
"""Runs a command as its only child and prints the child's peak resident memory in KiB."""
TUNESMITH = [sys.executable, "-c", "from tui.cli.main import main; main()"]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "tunesmith.db"


def run(db_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db_path), *args], catch_exceptions=False)


def test_project_new_and_list(db_path: Path) -> None:
    assert run(db_path, "project", "list").stdout.startswith("No projects yet")
    created = run(db_path, "project", "new", "support", "--system-prompt", "Reply in JSON.")
    assert created.exit_code == 0
    assert "Created project 'support'" in created.stdout
    listed = json.loads(run(db_path, "project", "list", "--json").stdout)
    assert listed[0]["name"] == "support"
    assert listed[0]["base_model"] == "SmolLM2-135M-Instruct"
    assert listed[0]["system_prompt"] == "Reply in JSON."
    again = run(db_path, "project", "new", "support")
    assert again.exit_code == 1
    assert again.stderr.strip() == "Error: project 'support' already exists"


def test_import_demo_twice_adds_nothing_the_second_time(db_path: Path) -> None:
    run(db_path, "project", "new", "support")
    first = run(db_path, "examples", "import", "support", str(DEMO))
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("Imported 80 new examples into 'support' (60 train, 20 eval)")
    second = run(db_path, "examples", "import", "support", str(DEMO))
    assert second.exit_code == 0
    assert "Imported 0 new examples" in second.stdout
    assert "80 already present" in second.stdout
    db = open_database(db_path)
    stored = list_examples(db, get_project(db, "support").id)
    assert len(stored) == 80
    assert {e.status for e in stored} == {"approved"}
    assert {e.source for e in stored} == {"imported"}
    assert sum(e.split == "eval" for e in stored) == 20
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_import_with_bad_lines_keeps_valid_rows_and_fails(db_path: Path, tmp_path: Path) -> None:
    run(db_path, "project", "new", "p")
    bad = tmp_path / "mixed.jsonl"
    bad.write_text(
        '{"prompt": "q1", "response": "a1"}\n'
        "{oops\n"
        '{"prompt": "q2", "response": ""}\n'
        '{"prompt": "q3", "response": "a3"}\n',
        encoding="utf-8",
    )
    result = run(db_path, "examples", "import", "p", str(bad), "--split", "train")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{bad}:2: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"{bad}:3: field 'response' is empty",
    ]
    assert "Imported 2 new examples into 'p' (2 train, 0 eval); 2 rows rejected." in result.stdout
    listed = json.loads(run(db_path, "examples", "list", "p", "--json").stdout)
    assert [row["messages"][0]["content"] for row in listed] == ["q1", "q3"]


def test_export_imports_back_to_the_same_rows(db_path: Path, tmp_path: Path) -> None:
    run(db_path, "project", "new", "a")
    run(db_path, "project", "new", "b")
    run(db_path, "examples", "import", "a", str(DEMO))
    run(db_path, "examples", "add", "a", "--prompt", "Hi [/] \x1b[31m", "--response", "ok")
    exported = tmp_path / "a.jsonl"
    assert run(db_path, "examples", "export", "a", str(exported)).stdout.startswith("Exported 81")
    assert run(db_path, "examples", "import", "b", str(exported)).exit_code == 0

    def rows(name: str) -> list[tuple[object, ...]]:
        records = json.loads(run(db_path, "examples", "list", name, "--json").stdout)
        return [(r["messages"], r["split"], r["status"], r["tags"]) for r in records]

    assert rows("a") == rows("b")
    assert len(rows("b")) == 81


def test_add_list_remove(db_path: Path) -> None:
    run(db_path, "project", "new", "p")
    added = run(db_path, "examples", "add", "p", "--prompt", "2+2?", "--response", "4")
    assert added.stdout.startswith("Added 1 example to 'p'")
    duplicate = run(db_path, "examples", "add", "p", "--prompt", "2+2?", "--response", "4")
    assert "already in 'p'" in duplicate.stdout
    listed = run(db_path, "examples", "list", "p").stdout
    assert "approved" in listed
    assert "2+2?" in listed
    example_id = json.loads(run(db_path, "examples", "list", "p", "--json").stdout)[0]["id"]
    assert run(db_path, "examples", "remove", str(example_id)).exit_code == 0
    assert run(db_path, "examples", "list", "p").stdout.startswith("No examples yet")
    gone = run(db_path, "examples", "remove", str(example_id))
    assert gone.exit_code == 1
    assert gone.stderr.strip() == f"Error: example {example_id} was removed"


def test_terminal_escapes_in_rows_are_not_printed(db_path: Path) -> None:
    run(db_path, "project", "new", "p")
    run(db_path, "examples", "add", "p", "--prompt", "\x1b]0;pwned\x07title", "--response", "ok")
    listed = run(db_path, "examples", "list", "p").stdout
    assert "\x1b" not in listed
    assert "\x07" not in listed
    assert "]0;pwnedtitle" in listed


def test_errors_are_one_line_without_traceback(db_path: Path, tmp_path: Path) -> None:
    run(db_path, "project", "new", "p")
    for args, message in [
        (["examples", "list", "nope"], "Error: no project named 'nope' (projects: p)"),
        (
            ["examples", "import", "p", str(tmp_path / "missing.jsonl")],
            f"Error: {tmp_path / 'missing.jsonl'}: no such file or folder",
        ),
        (["project", "new", "a b"], "Error: project name 'a b': use 1-64 letters"),
    ]:
        result = run(db_path, *args)
        assert result.exit_code == 1
        assert result.stderr.startswith(message)
        assert len(result.stderr.strip().splitlines()) == 1


def test_console_script_uses_home_and_db_override(tmp_path: Path) -> None:
    script = shutil.which("tunesmith", path=str(Path(sys.executable).parent))
    assert script is not None, "the console script is installed with the package"
    env = {**os.environ, "TUNESMITH_HOME": str(tmp_path / "home")}
    env.pop("TUNESMITH_DB", None)
    subprocess.run([script, "project", "new", "p"], env=env, check=True, capture_output=True)
    assert (tmp_path / "home" / "tunesmith.db").exists()
    other = tmp_path / "other.db"
    listed = subprocess.run(
        [script, "--db", str(other), "project", "list"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert listed.stdout.startswith("No projects yet")
    assert other.exists()


def test_project_new_takes_its_default_base_model_from_the_settings(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNESMITH_BASE_MODEL", "HuggingFaceTB/SmolLM2-360M-Instruct")
    shown = CliRunner().invoke(cli, ["project", "new", "--help"])
    assert "[default: HuggingFaceTB/SmolLM2-360M-Instruct]" in " ".join(shown.stdout.split())
    assert run(db_path, "project", "new", "support").exit_code == 0
    listed = json.loads(run(db_path, "project", "list", "--json").stdout)
    assert listed[0]["base_model"] == "HuggingFaceTB/SmolLM2-360M-Instruct"


def test_project_new_reads_the_base_model_from_the_config_file(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[defaults]\nbase_model = "./my-model"\n', encoding="utf-8")
    monkeypatch.setenv("TUNESMITH_CONFIG", str(config))
    assert run(db_path, "project", "new", "support").exit_code == 0
    listed = json.loads(run(db_path, "project", "list", "--json").stdout)
    assert listed[0]["base_model"] == "./my-model"


def test_list_json_is_the_array_json_text_writes(db_path: Path) -> None:
    run(db_path, "project", "new", "p")
    assert run(db_path, "examples", "list", "p", "--json").stdout == "[]\n"
    run(db_path, "examples", "import", "p", str(DEMO))
    run(db_path, "examples", "add", "p", "--prompt", "Hi \u202e [/] \x1b[31m", "--response", "ok")
    listed = run(db_path, "examples", "list", "p", "--json").stdout
    records = json.loads(listed)
    assert [r["id"] for r in records] == list(range(1, 82))
    # Written an element at a time, byte for byte what one json_text of the list writes.
    assert listed == json_text(records) + "\n"
    assert "\\u202e" in listed and "\x1b" not in listed


def peak_rss_mb(*args: str) -> float:
    """The peak resident memory of ``tunesmith ARGS`` run in a process of its own, in MB."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *TUNESMITH, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout) / 1024


def test_list_and_export_stream_in_bounded_memory(tmp_path: Path) -> None:
    db_path = write_big_project(tmp_path / "big.db", STREAMED_ROWS)
    db = ["--db", str(db_path)]
    started = peak_rss_mb(*db, "project", "list")
    listed = peak_rss_mb(*db, "examples", "list", NAME, "--json")
    exported = tmp_path / "big.jsonl"
    written = peak_rss_mb(*db, "examples", "export", NAME, str(exported))
    assert listed - started < STREAMING_MB, (started, listed)
    assert written - started < STREAMING_MB, (started, written)
    with exported.open(encoding="utf-8") as rows:
        assert sum(1 for _ in rows) == STREAMED_ROWS
