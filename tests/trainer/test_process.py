"""A child's error skeleton and how its parent reads a failure back."""

from __future__ import annotations

import os
import sys

import pytest

from store.errors import InputError
from trainer.control.process import (
    SOURCE_ROOT,
    child_command,
    child_environment,
    child_main,
    failure_message,
    reported_error,
)


def test_child_main_returns_the_work_status_or_zero() -> None:
    assert child_main(lambda: None) == 0
    assert child_main(lambda: 3) == 3


def test_a_tunesmith_error_is_one_line_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def work() -> None:
        raise InputError("run 4 is failed;\n only completed runs are evaluated")

    assert child_main(work) == 1
    assert capsys.readouterr().err == "error: run 4 is failed; only completed runs are evaluated\n"


def test_another_error_prints_its_traceback_then_one_line_with_its_type(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def work() -> None:
        raise RuntimeError("CUDA out of memory\nTried to allocate 2 GiB")

    assert child_main(work, failure_status=2) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1] == "error: RuntimeError: CUDA out of memory"


def test_an_interrupt_is_status_130() -> None:
    def work() -> None:
        raise KeyboardInterrupt

    assert child_main(work) == 130


def test_reported_error_reads_only_error_lines() -> None:
    assert reported_error("  error: no eval rows \n") == "no eval rows"
    assert reported_error("status: loading") is None


def test_failure_message_takes_the_last_error_line() -> None:
    stderr = "Traceback ...\nerror: first\nwarning: noise\nerror: the disk is full\n"
    assert failure_message("trainer.export", stderr, 1) == "the disk is full"


def test_failure_message_names_the_signal_of_a_killed_child() -> None:
    assert failure_message("trainer.evaluation", "loading\n", -9) == (
        "trainer.evaluation was killed by signal 9"
    )


def test_failure_message_falls_back_to_the_status_and_last_line() -> None:
    stderr = "Segmentation   fault\n\n" + "x" * 300 + "\n"
    assert failure_message("trainer.export", stderr, 139) == (
        f"trainer.export failed (exit status 139): {'x' * 200}"
    )
    assert failure_message("trainer.export", "", 1) == (
        "trainer.export failed (exit status 1): no message"
    )


def test_a_child_runs_this_interpreter_with_the_checkout_first_on_its_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    assert child_command("trainer.export", ["--force"]) == [
        sys.executable,
        "-m",
        "trainer.export",
        "--force",
    ]
    environment = child_environment({"TUNESMITH_API_KEY": "k"})
    assert environment["PYTHONPATH"] == os.pathsep.join([str(SOURCE_ROOT), "/elsewhere"])
    assert environment["TUNESMITH_API_KEY"] == "k"
    assert environment["TQDM_DISABLE"] == "1"
