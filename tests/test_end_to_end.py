"""The whole loop with the real embedded model, as a user runs it from the command line:
import the demo task, train with a few steps, evaluate, compare."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.repo import REPO

DEMO = REPO / "examples" / "support_emails.jsonl"
TUNESMITH = [sys.executable, "-c", "from tui.cli.main import main; main()"]
"""The ``tunesmith`` command, run from this checkout."""


def tunesmith(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TUNESMITH, *args],
        env={**os.environ, "TUNESMITH_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_demo_task_is_learned_by_the_embedded_model(embedded_model_home: Path) -> None:
    home = embedded_model_home
    assert tunesmith(home, "project", "new", "support").returncode == 0
    rows = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines()]
    subset = home / "subset.jsonl"
    # 40 train rows and 4 eval rows keep this under a minute or two on two cores.
    picked = [r for r in rows if r["split"] == "train"][:40] + [
        r for r in rows if r["split"] == "eval"
    ][:4]
    subset.write_text("".join(json.dumps(r) + "\n" for r in picked), encoding="utf-8")
    imported = tunesmith(home, "examples", "import", "support", str(subset))
    assert imported.returncode == 0, imported.stderr
    trained = tunesmith(home, "train", "support", "--max-steps", "12", "--save-every", "6")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "Run 1 completed" in trained.stdout
    assert "step 12/12" in trained.stdout
    evaluated = tunesmith(home, "eval", "support", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout)
    assert scores["run"] == 1 and scores["n"] == 4
    # The base model rambles; twelve steps are enough to learn the JSON shape.
    assert scores["base"]["json_equal"] == 0
    assert scores["tuned"]["json_valid"] == 1
    assert scores["tuned"]["exact_match"] > scores["base"]["exact_match"]
    compared = tunesmith(
        home, "compare", "support", picked[-1]["messages"][0]["content"], "--max-tokens", "60"
    )
    assert compared.returncode == 0, compared.stderr
    tuned_answer = compared.stdout.split("--- run 1 ---", 1)[1].strip()
    assert (
        json.loads(tuned_answer)["issue"]
        == json.loads(picked[-1]["messages"][1]["content"])["issue"]
    )
