"""A run's recorded pid counts as alive only while it runs a training run or its launcher."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer.control.jobs import is_run_process_alive

SLEEP = "import time; time.sleep(60)"


@pytest.fixture
def sleeper() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


@pytest.mark.parametrize(
    ("arguments", "alive"),
    [
        (["--module", "trainer.training.run"], True),
        (["trainer.training.torchrun", "--standalone"], True),
        (["trainer.serving.serve"], False),
        (["trainer.training.runner"], False),
    ],
)
def test_only_a_run_or_its_launcher_counts(
    sleeper: list[subprocess.Popen[bytes]], arguments: list[str], alive: bool
) -> None:
    process = subprocess.Popen([sys.executable, "-c", SLEEP, *arguments])
    sleeper.append(process)
    # Until the child has exec'd, its command line is empty or this process's.
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    while SLEEP.encode() not in cmdline.read_bytes():
        time.sleep(0.01)
    assert is_run_process_alive(process.pid) is alive


def test_a_zombie_is_gone(sleeper: list[subprocess.Popen[bytes]]) -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass", "trainer.training.run"])
    sleeper.append(process)
    stat = Path(f"/proc/{process.pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    assert not is_run_process_alive(process.pid)
