"""What the security tests set up: a command line call, an adapter folder and a run to export."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from store.database import open_database
from store.projects import create_project
from store.runs import create_run, finish_run
from tui.cli.main import cli

PICKLE = b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93."
"""A pickle that imports ``os.system`` when loaded: the way a pickle runs code."""


def adapter_folder(folder: Path) -> Path:
    """A folder shaped like an adapter: config and weights as JSON and safetensors only."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA"}', encoding="utf-8")
    (folder / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")
    return folder


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


def invoke(db_path: Path, *args: str) -> Result:
    """``tunesmith --db DB_PATH ARGS`` in this process, as a user runs it."""
    return CliRunner().invoke(cli, ["--db", str(db_path), *args])
