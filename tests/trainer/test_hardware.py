"""The training precision: measured on a CPU, kept per machine, bf16 on a CUDA GPU that has it."""

from __future__ import annotations

import json
import platform
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig

from store.database import open_database
from store.paths import home_dir
from store.runs import get_run
from tests.conftest import TinyRun
from trainer.control.process import child_environment
from trainer.training import hardware
from trainer.training.hardware import (
    MEASURED_DIMENSION_LIMIT,
    MEASURED_FILENAME,
    MatmulShape,
    Precision,
    Throughput,
    choose_precision,
    measure_throughput,
)

SHAPE = MatmulShape(tokens=512, hidden=576, intermediate=1536)
MACHINES_CPU_MODEL = hardware.cpu_model
MACHINES_CPU_FLAGS = hardware.cpu_flags
"""The real ones: the other tests run on a fixed CPU."""


class FakeMeasurement:
    """Answers a measurement with fixed rates and counts how often it was asked."""

    def __init__(self, fp32: float, bf16: float) -> None:
        self.rates = Throughput(fp32=fp32, bf16=bf16)
        self.calls = 0

    def __call__(self, shape: MatmulShape) -> Throughput:
        self.calls += 1
        return self.rates


@pytest.fixture(autouse=True)
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU with bf16 instructions, of a fixed model, whatever machine runs the tests."""
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    monkeypatch.setattr(hardware, "cpu_model", lambda: "Test CPU 9000")


def _choose(measure: FakeMeasurement, statuses: list[str] | None = None) -> Precision:
    heard = statuses if statuses is not None else []
    return choose_precision("cpu", SHAPE, on_status=heard.append, measure=measure)


def _kept_file() -> Path:
    return home_dir() / MEASURED_FILENAME


def test_fp32_is_chosen_where_it_measures_faster() -> None:
    precision = _choose(FakeMeasurement(fp32=271, bf16=144))
    assert precision == Precision(
        "fp32", False, "271 vs 144 GFLOP/s measured for bf16 (measured now)"
    )


def test_bf16_is_chosen_where_it_measures_faster() -> None:
    precision = _choose(FakeMeasurement(fp32=120, bf16=600))
    assert precision == Precision(
        "bf16", True, "600 vs 120 GFLOP/s measured for fp32 (measured now)"
    )


def test_bf16_within_the_margin_keeps_fp32() -> None:
    precision = _choose(FakeMeasurement(fp32=100, bf16=105))
    assert not precision.bf16
    assert "not 10% faster" in precision.reason


@pytest.mark.parametrize("supported", [True, False])
def test_cuda_keeps_bf16_where_supported_without_measuring(
    monkeypatch: pytest.MonkeyPatch, supported: bool
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: supported)
    measure = FakeMeasurement(fp32=500, bf16=100)
    precision = choose_precision("cuda", SHAPE, on_status=print, measure=measure)
    assert precision.bf16 is supported
    assert measure.calls == 0
    assert not _kept_file().exists()


def test_a_cpu_without_bf16_instructions_trains_in_fp32_unmeasured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f"})
    measure = FakeMeasurement(fp32=100, bf16=900)
    precision = _choose(measure)
    assert not precision.bf16 and "no bf16 instructions" in precision.reason
    assert measure.calls == 0


def test_several_ranks_go_by_the_kept_measurement_and_never_measure() -> None:
    measure = FakeMeasurement(fp32=271, bf16=144)
    # Nothing kept yet: the CPU's flags, alike on every rank.
    precision = choose_precision("cpu", SHAPE, on_status=print, alone=False, measure=measure)
    assert precision.bf16 and "avx512_bf16" in precision.reason
    assert measure.calls == 0 and not _kept_file().exists()
    # Once a run alone has measured on this machine, every rank goes by that.
    _choose(FakeMeasurement(fp32=271, bf16=144))
    precision = choose_precision("cpu", SHAPE, on_status=print, alone=False, measure=measure)
    assert not precision.bf16 and precision.reason.endswith(f"kept in {MEASURED_FILENAME})")
    assert measure.calls == 0


def test_the_measurement_is_kept_and_not_repeated() -> None:
    first = FakeMeasurement(fp32=271, bf16=144)
    _choose(first)
    again = FakeMeasurement(fp32=1, bf16=1000)
    precision = _choose(again)
    assert again.calls == 0
    assert not precision.bf16
    assert precision.reason.startswith("271 vs 144 GFLOP/s measured for bf16 (measured ")
    assert precision.reason.endswith(f"kept in {MEASURED_FILENAME})")
    assert stat.S_IMODE(_kept_file().stat().st_mode) == 0o600


def test_another_cpu_model_or_torch_version_is_measured_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _choose(FakeMeasurement(fp32=271, bf16=144))
    monkeypatch.setattr(hardware, "cpu_model", lambda: "Other CPU 1")
    other_cpu = FakeMeasurement(fp32=100, bf16=400)
    assert _choose(other_cpu).bf16 and other_cpu.calls == 1
    monkeypatch.setattr(torch, "__version__", "9.9.9+cpu")
    other_torch = FakeMeasurement(fp32=100, bf16=400)
    _choose(other_torch)
    assert other_torch.calls == 1
    other_shape = FakeMeasurement(fp32=100, bf16=400)
    choose_precision("cpu", MatmulShape(512, 64, 128), on_status=print, measure=other_shape)
    assert other_shape.calls == 1
    assert len(json.loads(_kept_file().read_text(encoding="utf-8"))) == 4


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        ('{"Test CPU', "not JSON at line 1"),
        ("[1, 2]", "not a JSON object"),
        (b"\xff\xfe{}", "not UTF-8 text"),
    ],
    ids=["truncated", "a list", "not text"],
)
def test_a_corrupt_kept_file_is_ignored_with_a_warning(text: str | bytes, warning: str) -> None:
    path = _kept_file()
    path.parent.mkdir(parents=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    statuses: list[str] = []
    measure = FakeMeasurement(fp32=100, bf16=400)
    assert _choose(measure, statuses).bf16
    assert measure.calls == 1
    assert len(statuses) == 1 and str(path) in statuses[0] and warning in statuses[0]
    # Measured again and written whole: the next run reads it.
    assert len(json.loads(path.read_text(encoding="utf-8"))) == 1


def test_a_malformed_entry_is_measured_again_with_a_warning() -> None:
    _choose(FakeMeasurement(fp32=271, bf16=144))
    path = _kept_file()
    kept = json.loads(path.read_text(encoding="utf-8"))
    (key,) = kept
    kept[key]["bf16_gflops"] = "fast"
    path.write_text(json.dumps(kept), encoding="utf-8")
    statuses: list[str] = []
    measure = FakeMeasurement(fp32=100, bf16=400)
    assert _choose(measure, statuses).bf16
    assert measure.calls == 1
    assert len(statuses) == 1 and "ignoring the measurement" in statuses[0]


def test_a_home_that_cannot_be_written_still_gives_a_precision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("TUNESMITH_HOME", str(blocker / "home"))
    statuses: list[str] = []
    precision = _choose(FakeMeasurement(fp32=271, bf16=144), statuses)
    assert not precision.bf16
    assert len(statuses) == 1 and statuses[0].startswith("Could not keep")


def test_the_measured_shape_is_the_models_mlp_capped() -> None:
    small = LlamaConfig(hidden_size=576, intermediate_size=1536)
    assert MatmulShape.of_model(small) == SHAPE
    large = LlamaConfig(hidden_size=1536, intermediate_size=8960)
    assert MatmulShape.of_model(large).intermediate == MEASURED_DIMENSION_LIMIT
    assert str(SHAPE) == "512x576x1536"


def test_a_real_measurement_gives_both_rates() -> None:
    rates = measure_throughput(MatmulShape(tokens=64, hidden=64, intermediate=128), repeats=2)
    assert rates.fp32 > 0 and rates.bf16 > 0
    assert rates.best == max(rates.fp32, rates.bf16)


def test_this_machines_cpu_has_a_model_name() -> None:
    assert MACHINES_CPU_MODEL().strip()


def test_a_run_keeps_its_measurement_in_its_home(completed_tiny_run: TinyRun) -> None:
    # The run measured on this machine's CPU, where that has bf16 to weigh against fp32.
    if torch.cuda.is_available():
        pytest.skip("a CUDA run keeps bf16 without measuring")
    if MACHINES_CPU_FLAGS() and not set(hardware.CPU_BF16_FLAGS) & MACHINES_CPU_FLAGS():
        pytest.skip("this CPU has no bf16 instructions: fp32 without measuring")
    kept = json.loads((completed_tiny_run.home / MEASURED_FILENAME).read_text(encoding="utf-8"))
    (key,) = kept
    assert key == f"{MACHINES_CPU_MODEL()} | torch {torch.__version__} | 512x32x64"
    rates = kept[key]
    bf16 = rates["bf16_gflops"] >= hardware.BF16_MARGIN * rates["fp32_gflops"]
    config = get_run(open_database(completed_tiny_run.db_path), completed_tiny_run.run_id).config
    assert config["precision"] == ("bf16" if bf16 else "fp32")


PAGE_FAULTS = """
import resource, sys, torch
from trainer.training.hardware import keep_freed_memory
kept = sys.argv[1] == "kept" and keep_freed_memory()
def step():
    for _ in range(4):
        tensor = torch.empty(64 * 2**20 // 4)
        tensor.fill_(1.0)
        del tensor
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
"""Allocates, touches and frees 64 MiB tensors as a step would; prints the page faults of the
second step."""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_freed_memory_is_kept_so_a_second_step_takes_no_page_faults() -> None:
    faults = {}
    for setting in ("default", "kept"):
        done = subprocess.run(
            [sys.executable, "-c", PAGE_FAULTS, setting],
            capture_output=True,
            text=True,
            check=True,
            env=child_environment(),
        )
        applied, count = done.stdout.split()
        assert applied == str(setting == "kept")
        faults[setting] = int(count)
    # 4 x 64 MiB in 4 KiB pages, each zeroed by the kernel again when glibc maps it afresh.
    assert faults["default"] > 4 * 64 * 256 // 2
    assert faults["kept"] < faults["default"] / 20
