"""Runs on several processes, GPUs or machines: settings, launcher command, devices (no torch).

A run with more than one process is started under torchrun (``torch.distributed.run``) through
``trainer.training.torchrun``; ``trainer.training.run`` then reads its rank from the environment
torchrun sets.
The CLI and the app import this module, so it must stay free of torch.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from store.atomic import write_atomically
from store.errors import InputError

STRATEGIES = ("ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3")
"""How the ranks share the model: DDP copies it whole; FSDP and ZeRO-3 shard the weights."""
RUN_MODULE = "trainer.training.run"
"""The module a training run (or each of its ranks) runs."""

LAUNCHER_MODULE = "trainer.training.torchrun"
"""The module that starts a run's ranks under torchrun; its pid is the run's."""

LAUNCH_FILE = "launch.json"
"""The run's launch settings in its folder, so a resume starts the same ranks again."""
DEEPSPEED_FILE = "deepspeed.json"
"""The DeepSpeed config generated for a ``deepspeed-*`` strategy, in the run's folder."""
DEFAULT_MASTER_PORT = 29500
"""torchrun's own default port for the rendezvous on node 0."""
SHUTDOWN_TIMEOUT_SECONDS = 300
"""How long torchrun lets the ranks finish a step and checkpoint after a stop before killing
them. It also bounds how long a dead rank can leave the others stuck in a collective."""
COLLECTIVE_TIMEOUT_SECONDS = 600
"""gloo / NCCL timeout: long enough for rank 0 to write and hash a checkpoint while the others
wait at the barrier, short enough that a lost node fails the run instead of hanging it."""
LAUNCHER_PID_VARIABLE = "TUNESMITH_LAUNCHER_PID"
"""Set by ``trainer.training.torchrun`` for its ranks: rank 0 records this pid, so a stop reaches
the launcher, which forwards it to every rank."""


@dataclass(frozen=True)
class Launch:
    """How many processes on how many machines train one run, and how they share the model."""

    processes: int = 1
    """Processes on each node (one per GPU on a CUDA machine)."""
    nodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int = DEFAULT_MASTER_PORT
    strategy: str = "ddp"

    @property
    def world_size(self) -> int:
        """Ranks in all."""
        return self.processes * self.nodes

    @property
    def under_torchrun(self) -> bool:
        """Whether the run needs torchrun (one plain process trains alone, as before)."""
        return self.world_size > 1 or self.strategy != "ddp"


def check_launch(launch: Launch, *, batch_size: int, qlora: bool) -> None:
    """Raise InputError, in one line, when ``launch`` cannot train a run with these settings."""
    if launch.strategy not in STRATEGIES:
        raise InputError(f"--strategy {launch.strategy}: use one of {', '.join(STRATEGIES)}")
    if launch.processes < 1 or launch.nodes < 1:
        raise InputError("--processes and --nodes must be 1 or more")
    if launch.nodes == 1 and (launch.node_rank or launch.master_addr):
        raise InputError("--node-rank and --master-addr go with --nodes 2 or more")
    if launch.nodes > 1 and not launch.master_addr:
        raise InputError(
            f"--nodes {launch.nodes} needs --master-addr: the address node 0 is reached at"
        )
    if not 0 <= launch.node_rank < launch.nodes:
        raise InputError(f"--node-rank must be from 0 to {launch.nodes - 1}")
    if not 1 <= launch.master_port <= 65535:
        raise InputError("--master-port must be from 1 to 65535")
    if batch_size % launch.world_size:
        raise InputError(
            f"a batch of {batch_size} rows does not split evenly over {launch.world_size} "
            f"processes; use a --batch-size that is a multiple of {launch.world_size}"
        )
    if qlora and launch.strategy != "ddp":
        raise InputError(f"--qlora trains with --strategy ddp only, not {launch.strategy}")


def check_available(launch: Launch) -> None:
    """Raise InputError when this machine cannot run ``launch`` (a missing package or GPU)."""
    if launch.strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        raise InputError(
            f"--strategy {launch.strategy} needs the deepspeed package: pip install deepspeed"
        )
    devices = cuda_device_count()
    if launch.strategy != "ddp" and devices == 0:
        # Both shard weights over GPUs; their CPU paths are not supported by accelerate.
        raise InputError(f"--strategy {launch.strategy} needs CUDA GPUs; this machine has none")
    if devices and launch.processes > devices:
        raise InputError(
            f"--processes {launch.processes} needs a GPU each (NCCL); this machine has {devices}"
        )


def launcher_command(
    launch: Launch, *, db_path: Path, run_id: int, resume: bool, python: str = sys.executable
) -> list[str]:
    """The command that starts this node's share of run ``run_id``."""
    run_args = ["--db", str(db_path), "--run-id", str(run_id), *(["--resume"] if resume else [])]
    if not launch.under_torchrun:
        return [python, "-m", RUN_MODULE, *run_args]
    if launch.nodes == 1:
        # A free port on this machine, picked by torchrun: two runs never collide.
        rendezvous = ["--standalone"]
    else:
        rendezvous = [
            f"--nnodes={launch.nodes}",
            f"--node-rank={launch.node_rank}",
            f"--master-addr={launch.master_addr}",
            f"--master-port={launch.master_port}",
        ]
    return [
        python,
        "-m",
        LAUNCHER_MODULE,
        *rendezvous,
        f"--nproc-per-node={launch.processes}",
        # A dead rank fails the run: restarting it would replay steps from no checkpoint.
        "--max-restarts=0",
        f"--shutdown-timeout={SHUTDOWN_TIMEOUT_SECONDS}",
        "--module",
        RUN_MODULE,
        *run_args,
    ]


def node_commands(launch: Launch, *, db_path: Path, run_id: int, resume: bool) -> list[str]:
    """The launcher command of every node, as shell lines (node 0 first)."""
    return [
        shlex.join(
            launcher_command(
                replace(launch, node_rank=rank), db_path=db_path, run_id=run_id, resume=resume
            )
        )
        for rank in range(launch.nodes)
    ]


def write_launch(run_dir: Path, launch: Launch) -> None:
    """Keep the launch settings (and a DeepSpeed config) in the run's folder."""
    write_atomically(run_dir / LAUNCH_FILE, json.dumps(asdict(launch)))
    if launch.strategy.startswith("deepspeed"):
        config = deepspeed_config(int(launch.strategy.removeprefix("deepspeed-zero")))
        write_atomically(run_dir / DEEPSPEED_FILE, json.dumps(config, indent=2))


def read_launch(run_dir: Path) -> Launch:
    """The launch settings kept in ``run_dir``; one plain process for runs that have none."""
    path = run_dir / LAUNCH_FILE
    if not path.is_file():
        return Launch()
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        known = {field.name for field in fields(Launch)}
        return Launch(**{key: value for key, value in values.items() if key in known})
    except (OSError, ValueError, TypeError) as error:
        raise InputError(f"{path} is not a launch file tunesmith wrote: {error}") from error


def deepspeed_config(stage: int) -> dict[str, Any]:
    """A ZeRO stage 2 or 3 config; "auto" lets the Trainer fill in batch, precision and clipping."""
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if stage == 3:
        # The final adapter or model is saved whole, loadable without DeepSpeed.
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
    }


def strategy_arguments(strategy: str, run_dir: Path) -> dict[str, Any]:
    """The TrainingArguments (TRL's SFTConfig) that select ``strategy``."""
    if strategy == "fsdp":
        return {
            "fsdp": True,
            "fsdp_config": {
                "version": 2,
                "reshard_after_forward": True,
                "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                "state_dict_type": "FULL_STATE_DICT",
            },
            "ddp_timeout": COLLECTIVE_TIMEOUT_SECONDS,
        }
    if strategy.startswith("deepspeed"):
        return {
            "deepspeed": str(run_dir / DEEPSPEED_FILE),
            "ddp_timeout": COLLECTIVE_TIMEOUT_SECONDS,
        }
    # LoRA trains every adapter weight each step, so DDP need not search for unused ones.
    return {"ddp_find_unused_parameters": False, "ddp_timeout": COLLECTIVE_TIMEOUT_SECONDS}


@dataclass(frozen=True)
class Rank:
    """This process's place among the ranks, from the variables torchrun sets."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_zero(self) -> bool:
        """Rank 0 alone writes the run row, progress rows, checkpoints and the adapter."""
        return self.rank == 0


def current_rank() -> Rank:
    """This process's rank (rank 0 of 1 outside torchrun)."""
    return Rank(
        rank=int(os.environ.get("RANK", "0")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
    )


def recorded_pid() -> int:
    """The pid a run's row records: its launcher under ``trainer.training.torchrun``, else ours."""
    return int(os.environ.get(LAUNCHER_PID_VARIABLE, os.getpid()))


def launcher_reports_failures() -> bool:
    """Whether ``trainer.training.torchrun`` will record this run's failure, naming the rank that
    caused it; rank 0 then leaves errors that may only echo a lost peer to it."""
    return LAUNCHER_PID_VARIABLE in os.environ and current_rank().world_size > 1


def report_rank_failure(message: str) -> None:
    """Leave this rank's one-line error where torchrun's agent collects it (its error file)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    # A layout torch's ProcessFailure reads back, its message a plain string.
    data = {"message": message, "timestamp": str(int(time.time()))}
    # Whole or absent: the agent reads it once this rank exits, however it exits.
    with contextlib.suppress(OSError):
        write_atomically(Path(path), json.dumps(data))


def cpu_threads_per_rank(local_world_size: int) -> int:
    """Threads for each of the ranks sharing this machine's cores (oversubscribing is slower)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, local_world_size))


def cuda_device_count() -> int:
    """CUDA devices this process may use, found without torch (the app never imports it)."""
    physical = _nvidia_gpus()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or physical == 0:
        return physical
    # As CUDA reads it: ids up to the first invalid one (such as -1) are visible.
    count = 0
    for part in visible.split(","):
        if not part.strip() or part.strip().startswith("-"):
            break
        count += 1
    return min(count, physical)


def _nvidia_gpus() -> int:
    """NVIDIA GPUs the driver reports: /proc first, else ``nvidia-smi -L``; 0 without a driver."""
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return sum(1 for entry in proc.iterdir() if entry.is_dir())
    try:
        listed = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return 0
    if listed.returncode != 0:
        return 0
    return sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))
