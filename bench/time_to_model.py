"""Benchmark: wall time from ``tunesmith train`` to a completed, evaluated run on the demo task.

Runs the command line as a user would, in a fresh home that already holds the converted
embedded model (its one-time conversion is not counted), with default settings. Prints:

    time-to-model: ours X s to a completed, evaluated run; tuned exact match Y, base Z
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainer.models import ensure_embedded_model

REPO = Path(__file__).resolve().parent.parent
TUNESMITH = [sys.executable, "-c", "from tui.cli.main import main; main()"]


def main() -> None:
    """Import the demo task, train with defaults, evaluate, and print the timing line."""
    converted = ensure_embedded_model(print)
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        shutil.copytree(converted, home / "models" / converted.name)
        env = {**os.environ, "TUNESMITH_HOME": str(home)}

        def tunesmith(*args: str) -> str:
            done = subprocess.run(
                [*TUNESMITH, *args], env=env, capture_output=True, text=True, check=True
            )
            return done.stdout

        tunesmith("project", "new", "support")
        tunesmith("examples", "import", "support", str(REPO / "examples/support_emails.jsonl"))
        start = time.perf_counter()
        tunesmith("train", "support")
        scores = json.loads(tunesmith("eval", "support", "--json"))
        seconds = time.perf_counter() - start
    print(
        f"time-to-model: ours {seconds:.0f} s to a completed, evaluated run; tuned exact match"
        f" {scores['tuned']['exact_match']:.2f}, base {scores['base']['exact_match']:.2f}"
    )


if __name__ == "__main__":
    main()
