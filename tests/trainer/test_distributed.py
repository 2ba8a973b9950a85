"""Launch settings as text: the torchrun commands, strategy options, checks, devices, blame."""

from __future__ import annotations

import json
import os
import shlex
import signal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from textual.widgets import Input

from store.database import open_database
from store.errors import InputError
from store.examples import add_examples
from store.projects import create_project
from store.runs import get_run
from tests.conftest import tiny_task_rows
from tests.tui.pilot import choose, demo_project, settle, shown
from trainer.control import distributed
from trainer.control.distributed import (
    DEEPSPEED_FILE,
    Launch,
    check_available,
    check_launch,
    cuda_device_count,
    launcher_command,
    node_commands,
    read_launch,
    report_rank_failure,
    strategy_arguments,
    write_launch,
)
from tui.app import TunesmithApp
from tui.cli.main import cli
from tui.dialogs.new_run import NewRunScreen

DB = Path("/data/tunesmith.db")


def cli_run(db_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db_path), *args], catch_exceptions=False)


@pytest.fixture
def colours_db(tmp_path: Path) -> Path:
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    project = create_project(db, "colours", base_model=str(tmp_path / "model"))
    add_examples(db, project.id, tiny_task_rows(16), source="imported", split_mode="train")
    db.close()
    return db_path


def no_gpus(monkeypatch: pytest.MonkeyPatch, count: int = 0) -> None:
    monkeypatch.setattr(distributed, "_nvidia_gpus", lambda: count)


def test_one_process_runs_as_before_and_more_go_through_torchrun() -> None:
    assert launcher_command(Launch(), db_path=DB, run_id=3, resume=True, python="py") == [
        "py", "-m", "trainer.training.run", "--db", str(DB), "--run-id", "3", "--resume",
    ]  # fmt: skip
    assert shlex.join(
        launcher_command(Launch(processes=4), db_path=DB, run_id=3, resume=False, python="py")
    ) == (
        "py -m trainer.training.torchrun --standalone --nproc-per-node=4 --max-restarts=0"
        " --shutdown-timeout=300 --module trainer.training.run --db /data/tunesmith.db --run-id 3"
    )
    # A sharding strategy on one process still needs torchrun's environment.
    assert "trainer.training.torchrun" in launcher_command(
        Launch(strategy="fsdp"), db_path=DB, run_id=3, resume=False
    )


def test_every_node_gets_its_rank_and_node_zero_s_address() -> None:
    launch = Launch(processes=8, nodes=2, master_addr="10.0.0.1", master_port=29600)
    lines = node_commands(launch, db_path=DB, run_id=5, resume=False)
    common = (
        "--nnodes=2 --node-rank={} --master-addr=10.0.0.1 --master-port=29600"
        " --nproc-per-node=8 --max-restarts=0 --shutdown-timeout=300 --module trainer.training.run"
        " --db /data/tunesmith.db --run-id 5"
    )
    assert [line.split(" -m trainer.training.torchrun ", 1)[1] for line in lines] == [
        common.format(0),
        common.format(1),
    ]


def test_strategies_become_trainer_arguments(tmp_path: Path) -> None:
    ddp = strategy_arguments("ddp", tmp_path)
    assert ddp["ddp_find_unused_parameters"] is False
    assert ddp["ddp_timeout"] == distributed.COLLECTIVE_TIMEOUT_SECONDS
    fsdp = strategy_arguments("fsdp", tmp_path)
    assert fsdp["fsdp"] is True
    assert fsdp["fsdp_config"]["version"] == 2
    assert fsdp["fsdp_config"]["state_dict_type"] == "FULL_STATE_DICT"
    assert strategy_arguments("deepspeed-zero3", tmp_path)["deepspeed"] == str(
        tmp_path / DEEPSPEED_FILE
    )

    write_launch(tmp_path, Launch(processes=2, strategy="deepspeed-zero3"))
    config = json.loads((tmp_path / DEEPSPEED_FILE).read_text())
    assert config["zero_optimization"]["stage"] == 3
    assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert config["train_micro_batch_size_per_gpu"] == "auto"
    assert read_launch(tmp_path) == Launch(processes=2, strategy="deepspeed-zero3")
    write_launch(tmp_path, Launch(processes=2, strategy="deepspeed-zero2"))
    config = json.loads((tmp_path / DEEPSPEED_FILE).read_text())
    assert config["zero_optimization"] == {
        "stage": 2,
        "overlap_comm": True,
        "contiguous_gradients": True,
    }
    # Runs from before launch files train as one plain process.
    assert read_launch(tmp_path / "elsewhere") == Launch()


@pytest.mark.parametrize(
    ("launch", "batch", "qlora", "error"),
    [
        (Launch(processes=3), 8, False, "does not split evenly over 3 processes"),
        (Launch(processes=2, nodes=2), 8, False, "--nodes 2 needs --master-addr"),
        (Launch(nodes=2, node_rank=2, master_addr="h"), 8, False, "--node-rank must be from 0"),
        (Launch(master_addr="h"), 8, False, "go with --nodes 2 or more"),
        (Launch(strategy="fsdp"), 8, True, "--qlora trains with --strategy ddp only"),
        (Launch(strategy="zero"), 8, False, "use one of ddp, fsdp"),
    ],
)
def test_unusable_launches_are_refused_in_one_line(
    launch: Launch, batch: int, qlora: bool, error: str
) -> None:
    with pytest.raises(InputError, match=error) as raised:
        check_launch(launch, batch_size=batch, qlora=qlora)
    assert "\n" not in raised.value.message


def test_missing_gpus_and_packages_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    no_gpus(monkeypatch)
    with pytest.raises(InputError, match="--strategy fsdp needs CUDA GPUs"):
        check_available(Launch(processes=2, strategy="fsdp"))
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(InputError, match="needs the deepspeed package"):
        check_available(Launch(processes=2, strategy="deepspeed-zero2"))
    # DDP on CPU: gloo, as many processes as asked.
    check_available(Launch(processes=4))
    no_gpus(monkeypatch, 2)
    with pytest.raises(InputError, match=r"needs a GPU each \(NCCL\); this machine has 2"):
        check_available(Launch(processes=4))


@pytest.mark.parametrize(
    ("visible", "count"), [(None, 4), ("0,1", 2), ("", 0), ("3,-1,0", 1), ("0,1,2,3,4,5", 4)]
)
def test_devices_are_counted_as_cuda_would_see_them(
    monkeypatch: pytest.MonkeyPatch, visible: str | None, count: int
) -> None:
    no_gpus(monkeypatch, 4)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert cuda_device_count() == count


def test_cli_prints_the_launch_of_a_prepared_run(colours_db: Path) -> None:
    result = cli_run(colours_db, "train", "colours", "--processes", "2", "--print-launch")
    assert result.exit_code == 0, result.output
    (line,) = result.output.splitlines()
    assert line.endswith(
        f"-m trainer.training.torchrun --standalone --nproc-per-node=2 --max-restarts=0"
        f" --shutdown-timeout=300 --module trainer.training.run --db {colours_db} --run-id 1"
    )
    run = get_run(open_database(colours_db), 1)
    assert run.status == "queued" and run.pid is None
    assert read_launch(Path(run.run_dir or "")) == Launch(processes=2)

    two_nodes = cli_run(
        colours_db,
        "train", "colours", "--nodes", "2", "--processes", "2", "--master-addr", "node0",
        "--strategy", "ddp", "--print-launch",
    )  # fmt: skip
    assert two_nodes.exit_code == 0, two_nodes.output
    lines = two_nodes.output.splitlines()
    assert len(lines) == 2
    for rank, line in enumerate(lines):
        assert f"--nnodes=2 --node-rank={rank} --master-addr=node0 --master-port=29500" in line
        assert line.endswith("--run-id 2")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--processes", "3"], "a batch of 4 rows does not split evenly over 3 processes"),
        (["--nodes", "2"], "--nodes 2 needs --master-addr"),
        (["--processes", "2", "--strategy", "fsdp"], "--strategy fsdp needs CUDA GPUs"),
        (["--strategy", "sharded"], "'sharded' is not one of"),
    ],
)
def test_cli_refuses_a_launch_it_cannot_run(
    colours_db: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], error: str
) -> None:
    no_gpus(monkeypatch)
    result = cli_run(colours_db, "train", "colours", *args)
    assert result.exit_code != 0
    assert error in result.output
    assert get_run_count(colours_db) == 0


def get_run_count(db_path: Path) -> int:
    return int(open_database(db_path).execute("SELECT count(*) FROM runs").fetchone()[0])


def test_a_resume_keeps_the_run_s_launch(colours_db: Path) -> None:
    cli_run(colours_db, "train", "colours", "--processes", "2", "--print-launch")
    result = cli_run(colours_db, "train", "--resume", "1", "--processes", "4")
    assert "--resume keeps the run's processes, nodes and strategy" in result.output


def test_the_rank_killed_first_is_blamed_not_the_ones_torchrun_stopped(tmp_path: Path) -> None:
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    from trainer.training.torchrun import failure_reason

    def failure(rank: int, exitcode: int, message: str | None = None, at: int = 0) -> Any:
        path = tmp_path / f"error-{rank}.json"
        if message is not None:
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("TORCHELASTIC_ERROR_FILE", str(path))
                report_rank_failure(message)
            os.utime(path, (at, at))
        return ProcessFailure(
            local_rank=rank, pid=100 + rank, exitcode=exitcode, error_file=str(path)
        )

    killed = {0: failure(0, -signal.SIGTERM), 1: failure(1, -signal.SIGKILL)}
    assert failure_reason(killed) == (
        1,
        "rank 1 was killed by SIGKILL (pid 101); the others were stopped",
    )
    # Both raised: the first to report caused it (the other lost its peer).
    raised = {
        0: failure(0, 1, "RuntimeError: Connection reset by peer", at=2_000_000_001),
        1: failure(1, 1, "OutOfMemoryError: CUDA out of memory", at=2_000_000_000),
    }
    assert failure_reason(raised) == (1, "rank 1 failed: OutOfMemoryError: CUDA out of memory")
    assert failure_reason({2: failure(2, 3)}) == (2, "rank 2 exited with status 3 (pid 102)")


async def test_the_form_offers_a_process_per_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_gpus(monkeypatch, 2)
    started: list[Launch] = []

    def start_run(database: object, path: Path, project: object, plan: object, launch: Launch):  # type: ignore[no-untyped-def]
        started.append(launch)
        raise InputError("not started in this test")

    monkeypatch.setattr("tui.screens.train.start_run", start_run)
    db_path = tmp_path / "t.db"
    demo_project(db_path)
    app = TunesmithApp(db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, NewRunScreen)
        assert form.query_one("#processes", Input).value == "1"
        assert "2 GPUs here" in shown(form, "#why-processes")
        # Four rows give a batch of 1, which two processes cannot split.
        form.query_one("#processes", Input).value = "2"
        await pilot.pause()
        assert shown(form, "#why-processes") == "The batch of 1 rows must split evenly."
        form.query_one("#field-batch_size", Input).value = "2"
        await pilot.pause()
        assert "one process each" in shown(form, "#why-processes")
        await pilot.press("ctrl+s")
        await settle(pilot)
    assert started == [Launch(processes=2)]
