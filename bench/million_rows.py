"""Benchmark: a project of a million examples, from the command line and in the Dataset area.

Writes a JSONL file of ROWS support tickets, then times and measures the peak memory of:
``examples import``, ``examples list --json`` (to /dev/null), ``examples export``, and the app
opening the project at 80x24 (headless, Pilot): the time to the first rows and counts on
screen, to the project-wide checks, to the last row (End), to a filter's first rows, and the
app's peak memory. Each step runs in a process of its own, its peak memory read with
``getrusage`` by a parent that has no other child.

Prints the CPU model and the load average, since the machine is shared.

    python bench/million_rows.py [--rows N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ROWS = 1_000_000
TUNESMITH = [sys.executable, "-c", "from tui.cli.main import main; main()"]

PEAK_RSS = (
    "import resource, subprocess, sys, time\n"
    "started = time.perf_counter()\n"
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
    "print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)
"""Runs a command as its only child; prints its wall time and peak resident memory (KiB)."""


def write_tickets(path: Path, rows: int) -> None:
    """``rows`` chat-format tickets, one per line, each with an instruction, text and a label."""
    labels = ("billing", "bug", "account")
    words = [
        "refund",
        "charge",
        "card",
        "login",
        "crash",
        "app",
        "slow",
        "screen",
        "battery",
        "order",
        "late",
        "broken",
    ]
    with path.open("w", encoding="utf-8") as handle:
        for number in range(rows):
            text = " ".join(words[(number * 7 + k * 3) % len(words)] for k in range(12))
            prompt = f"Classify this ticket as billing, bug or account:\n{text} #{number}"
            messages = [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": labels[number % 3]},
            ]
            handle.write(json.dumps({"messages": messages}) + "\n")


def measured(*command: str) -> tuple[float, float]:
    """The wall time (s) and peak memory (MB) of ``command`` in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    seconds, kib = done.stdout.split()
    return float(seconds), int(kib) / 1024


def cpu_model() -> str:
    """The CPU model as ``lscpu`` names it."""
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    return next(
        (line.split(":", 1)[1].strip() for line in listing.splitlines() if "Model name" in line),
        "unknown",
    )


def dataset_area(db_path: Path) -> dict[str, float]:
    """Open the project in the app and time what the Dataset area shows (this process)."""
    sys.path.insert(0, str(REPO))
    from textual.widgets import Input, Static

    from tui.app import TunesmithApp
    from tui.screens.dataset import DatasetScreen
    from tui.widgets.dataset.examples_table import ExamplesTable

    async def run() -> dict[str, float]:
        app = TunesmithApp(db_path)
        figures: dict[str, float] = {}
        started = time.perf_counter()
        async with app.run_test(size=(80, 24)) as pilot:

            async def when(condition: Any, timeout: float = 600.0) -> float:
                """The moment ``condition`` holds, polled beside the app: Pilot's key press
                returns only once the app is idle, the checks over the project done too."""
                started = time.perf_counter()
                while not condition():
                    if time.perf_counter() - started > timeout:
                        raise TimeoutError
                    await asyncio.sleep(0.005)
                return time.perf_counter()

            def screen() -> DatasetScreen | None:
                return app.screen if isinstance(app.screen, DatasetScreen) else None

            def summary() -> str:
                current = screen()
                return (
                    str(current.query_one("#dataset-summary", Static).render()) if current else ""
                )

            def rows_shown() -> bool:
                current = screen()
                return bool(current and current.query_one(ExamplesTable).row_count)

            def checked() -> bool:
                current = screen()
                return bool(current and current.project_checks is not None)

            await when(lambda: app.screen.query("#picker-projects"))
            figures["picker_s"] = (
                await when(lambda: app.screen.query_one("#picker-projects").display) - started
            )
            first_rows = asyncio.ensure_future(
                when(lambda: rows_shown() and summary()[:1].isdigit())
            )
            checks_done = asyncio.ensure_future(when(checked))
            pressed = time.perf_counter()
            await pilot.press("enter")
            figures["first_rows_s"] = await first_rows - pressed
            figures["checks_s"] = await checks_done - pressed
            current = screen()
            assert current is not None
            table = current.query_one(ExamplesTable)
            at_end = asyncio.ensure_future(
                when(lambda: table.window_start + table.cursor_row == table.total - 1)
            )
            ended = time.perf_counter()
            await pilot.press("end")
            figures["end_s"] = await at_end - ended
            await pilot.press("slash")
            matched = asyncio.ensure_future(when(lambda: "match 'refund'" in summary()))
            filtered = time.perf_counter()
            # Pasted, as one change of the filter.
            current.query_one("#dataset-filter", Input).value = "refund"
            figures["filter_s"] = await matched - filtered
            figures["summary_lines"] = float(summary().count("\n") + 1)
            print(summary(), file=sys.stderr)
        return figures

    figures = asyncio.run(run())
    figures["app_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--dataset-area", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.dataset_area is not None:
        print(json.dumps(dataset_area(arguments.dataset_area)))
        return
    print(f"cpu: {cpu_model()}, {os.cpu_count()} CPUs; load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        os.environ["TUNESMITH_HOME"] = str(home / "home")
        tickets = home / "tickets.jsonl"
        write_tickets(tickets, arguments.rows)
        db = ["--db", str(home / "t.db")]
        subprocess.run([*TUNESMITH, *db, "project", "new", "big"], check=True, capture_output=True)
        steps = {
            "start (project list)": [*db, "project", "list"],
            "examples import": [*db, "examples", "import", "big", str(tickets)],
            "examples list --json": [*db, "examples", "list", "big", "--json"],
            "examples export": [*db, "examples", "export", "big", str(home / "out.jsonl")],
        }
        for name, arguments_of_step in steps.items():
            seconds, megabytes = measured(*TUNESMITH, *arguments_of_step)
            print(f"{name}: {seconds:.1f} s, peak {megabytes:.0f} MB", flush=True)
        area = [sys.executable, str(Path(__file__).resolve()), "--dataset-area", str(home / "t.db")]
        done = subprocess.run(area, check=True, capture_output=True, text=True, cwd=REPO)
        figures = json.loads(done.stdout.splitlines()[-1])
        line = (
            "dataset area: the picker shown {picker_s:.2f} s after start; first rows and counts"
            " {first_rows_s:.2f} s after Enter in it, checks done {checks_s:.1f} s;"
            " End {end_s:.2f} s; filter 'refund' {filter_s:.1f} s; app peak {app_peak_mb:.0f} MB"
        )
        print(line.format(**figures))
        print("summary as shown:\n" + done.stderr.strip())
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
