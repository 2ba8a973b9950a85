"""The running app, not only its import, stays free of the ML stack: a fresh interpreter drives
every area and dialog headless, then lists the forbidden modules it loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.repo import REPO
from tests.test_import_hygiene import FORBIDDEN

DRIVE_EVERY_AREA = """
import asyncio, json, sys
from pathlib import Path
from store.database import open_database
from store.examples import add_examples, prompt_response
from store.projects import create_project
from tui.app import TunesmithApp

db_path = Path(sys.argv[1])
db = open_database(db_path)
project = create_project(db, "p")
add_examples(db, project.id, [prompt_response(f"q{i}", "a") for i in range(5)], source="typed")
db.close()

async def drive() -> list[str]:
    app = TunesmithApp(db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.5)
        visited = []
        for keys in (["e", "escape"], ["i", "escape"], ["3"], ["n"], ["escape", "4"],
                     ["tab"], ["escape", "question_mark"], ["escape", "1"],
                     [*"sort reviews by mood", "enter"], ["ctrl+t"], ["f3"]):
            await pilot.press(*keys)
            await app.workers.wait_for_complete()
            await pilot.pause(0.2)
            visited.append(type(app.screen).__name__)
        return visited

visited = asyncio.run(drive())
loaded = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in FORBIDDEN})
print(json.dumps({"visited": visited, "loaded": loaded}))
"""


def test_driving_every_area_and_dialog_loads_no_ml_stack(tmp_path: Path) -> None:
    env = {**os.environ, "TUNESMITH_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    env.pop("TUNESMITH_DB", None)
    script = f"FORBIDDEN = {FORBIDDEN!r}\n" + DRIVE_EVERY_AREA
    completed = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "t.db")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.splitlines()[-1])
    assert result["visited"] == [
        "DatasetScreen",
        "DatasetScreen",
        "TrainScreen",
        "NewRunScreen",
        "CompareScreen",
        "CompareScreen",
        "HelpScreen",
        "ChatScreen",
        "ChatScreen",
        "ChatScreen",
        "DatasetScreen",
    ]
    assert result["loaded"] == []
