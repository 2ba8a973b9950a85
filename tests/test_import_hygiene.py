"""The TUI process never loads the ML stack: importing the app and the CLI pulls in no torch & co.

Each check runs in a fresh interpreter, so modules other tests imported cannot hide a leak.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.repo import REPO

FORBIDDEN = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")
"""Top-level packages that only the trainer's processes may import."""

PROBE = """
import importlib, importlib.util, json, sys
forbidden = {forbidden!r}
imported = []
for name in {modules!r}:
    if importlib.util.find_spec(name) is None:
        continue
    importlib.import_module(name)
    imported.append(name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
print(json.dumps({{"imported": imported, "loaded": loaded}}))
"""


def probe(modules: list[str], home: Path, extra_path: Path | None = None) -> dict[str, list[str]]:
    """Import ``modules`` (where they exist) in a new interpreter; list forbidden ones loaded."""
    env = {**os.environ, "TUNESMITH_HOME": str(home)}
    env.pop("TUNESMITH_DB", None)
    python_path = [str(REPO)] + ([str(extra_path)] if extra_path else [])
    env["PYTHONPATH"] = os.pathsep.join(python_path)
    completed = subprocess.run(
        [sys.executable, "-c", PROBE.format(forbidden=FORBIDDEN, modules=modules)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, list[str]] = json.loads(completed.stdout.splitlines()[-1])
    return result


def test_the_app_and_the_cli_import_no_ml_stack(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = probe(["tui.app", "tui.cli.main"], home)
    assert "tui.app" in result["imported"]
    assert result["loaded"] == []
    # Importing opens no database and creates no folder.
    assert not home.exists()


def test_the_probe_sees_a_forbidden_import(tmp_path: Path) -> None:
    # A stand-in "torch" and a module that imports it: the probe must report the leak.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("")
    (tmp_path / "leaky.py").write_text("import torch\n")
    result = probe(["leaky"], tmp_path / "home", extra_path=tmp_path)
    assert result["loaded"] == ["torch"]
