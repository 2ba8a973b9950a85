"""Checkpoints that appear only when complete, and the one a resume may trust.

The Trainer writes each checkpoint into ``checkpoints/.staging/``; it is then marked with
``tunesmith-checkpoint.json`` (its run, its step and the sha256 of every file) and renamed into
place. A resume takes the newest marked folder whose files still match its marker. A save that
fails on a full disk removes its staging folder and names the checkpoint left intact.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from store.atomic import publish_folder, write_atomically
from store.clock import now_iso
from store.database import open_database
from store.errors import is_disk_full
from store.runs import set_checkpoint
from trainer.training.completion_head import FastSFTTrainer
from trainer.training.reporting import TrainingFailed, log

CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_MARKER = "tunesmith-checkpoint.json"
"""Written last into a checkpoint: its run, step and the sha256 of every file in it. Only
folders whose marker names this run and whose files still match it are resumed from."""
NEARLY_FULL_BYTES = 1024**2
"""Free space under which a failed save is put down to a full disk (torch's message hides it)."""


class AtomicCheckpointTrainer(FastSFTTrainer):
    """An SFTTrainer whose checkpoints appear only when complete.

    Each checkpoint is written into a staging folder, marked, and renamed into place; a
    process killed mid-save leaves only staging debris, which is never resumed from.
    """

    def __init__(
        self,
        *args: Any,
        db_path: Path,
        run_id: int,
        keep: int,
        best_step: Callable[[], int | None] = lambda: None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._staging = False
        self._db = open_database(db_path)
        self._run_id = run_id
        self._keep = keep
        self._best_step = best_step
        """The step whose checkpoint is kept beyond the newest ``keep``: the best so far."""

    def _get_output_dir(self, trial: Any) -> str:
        if self._staging:
            return str(Path(str(self.args.output_dir)) / ".staging")
        return str(super()._get_output_dir(trial))

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        root = Path(str(self.args.output_dir))
        staging = root / ".staging"
        # Several ranks write one checkpoint (each its RNG state, shards under FSDP/ZeRO);
        # rank 0 alone clears, marks and renames it, between barriers.
        zero = self.is_world_process_zero()
        if zero:
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        step = self.state.global_step
        written = staging / f"{CHECKPOINT_PREFIX}{step}"
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
            self.accelerator.wait_for_everyone()
            if zero:
                write_checkpoint_marker(written, run_id=self._run_id, step=step)
        except Exception as error:
            what = f"the checkpoint at step {step}"
            drop_staging(error, staging, what, folder=root, checkpoints=root, run_id=self._run_id)
            raise
        finally:
            self._staging = False
        if zero:
            publish_folder(written, root / f"{CHECKPOINT_PREFIX}{step}")
            shutil.rmtree(staging, ignore_errors=True)
            best = f"{CHECKPOINT_PREFIX}{self._best_step()}"
            for old in complete_checkpoints(root)[: -self._keep]:
                if old.name != best:
                    _remove_checkpoint(old)
            set_checkpoint(self._db, self._run_id, step)
            log(f"Checkpoint saved at step {step}")
        self.accelerator.wait_for_everyone()


def complete_checkpoints(root: Path) -> list[Path]:
    """Checkpoint folders that hold a marker (were written completely), oldest first."""
    if not root.is_dir():
        return []
    found = [
        path
        for path in root.glob(f"{CHECKPOINT_PREFIX}*")
        if path.is_dir()
        and path.name.removeprefix(CHECKPOINT_PREFIX).isdigit()
        and (path / CHECKPOINT_MARKER).is_file()
    ]
    return sorted(found, key=lambda path: int(path.name.removeprefix(CHECKPOINT_PREFIX)))


def write_checkpoint_marker(folder: Path, *, run_id: int, step: int) -> None:
    """Mark ``folder`` as run ``run_id``'s complete checkpoint at ``step``, hashing its files."""
    marker = {
        "run_id": run_id,
        "step": step,
        "written_at": now_iso(),
        "files": _file_digests(folder),
    }
    write_atomically(folder / CHECKPOINT_MARKER, json.dumps(marker))


def checkpoint_problem(folder: Path, run_id: int) -> str | None:
    """Why run ``run_id`` must not resume from ``folder``, or None when tunesmith wrote it so."""
    try:
        marker = json.loads((folder / CHECKPOINT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "its marker is unreadable"
    if not isinstance(marker, dict) or not isinstance(marker.get("files"), dict):
        return "its marker lists no files"
    if marker.get("run_id") != run_id:
        return f"it was written by run {marker.get('run_id')!r}, not run {run_id}"
    if f"{CHECKPOINT_PREFIX}{marker.get('step')}" != folder.name:
        return f"its marker names step {marker.get('step')!r}"
    if any(path.is_symlink() for path in folder.rglob("*")):
        return "it holds a link"
    actual = _file_digests(folder)
    for name in sorted(set(actual) | set(marker["files"])):
        if actual.get(name) != marker["files"].get(name):
            return f"{name} is not the file that was saved"
    return None


def resumable_checkpoint(root: Path, run_id: int) -> Path | None:
    """The newest checkpoint in ``root`` that run ``run_id`` wrote and nobody changed since."""
    for folder in reversed(complete_checkpoints(root)):
        problem = checkpoint_problem(folder, run_id)
        if problem is None:
            return folder
        log(f"Not resuming from {folder.name}: {problem}")
    return None


def _file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` but the marker, by relative path."""
    digests: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != CHECKPOINT_MARKER:
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            digests[path.relative_to(folder).as_posix()] = digest
    return digests


def _remove_checkpoint(folder: Path) -> None:
    """Delete a checkpoint, its marker first, so a kill midway never leaves a marked husk."""
    (folder / CHECKPOINT_MARKER).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def drop_staging(
    error: Exception, staging: Path, what: str, *, folder: Path, checkpoints: Path, run_id: int
) -> None:
    """After a failed save of ``what`` into ``folder``, remove its half-written ``staging``;
    a full disk becomes a TrainingFailed that names the last checkpoint and how to go on,
    anything else is the caller's to re-raise."""
    full = is_disk_full(error) or _nearly_full(folder)
    shutil.rmtree(staging, ignore_errors=True)
    if full:
        raise TrainingFailed(
            f"the disk is full: {what} could not be saved in {folder};"
            f" {_last_checkpoint_note(checkpoints)}. Free some space, then resume:"
            f" tunesmith train --resume {run_id}"
        ) from error


def _nearly_full(folder: Path) -> bool:
    """Whether the file system holding ``folder`` has almost no space left."""
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def _last_checkpoint_note(root: Path) -> str:
    """Which earlier checkpoint a failed save left in place, for the error message."""
    checkpoints = complete_checkpoints(root)
    if not checkpoints:
        return "there is no earlier checkpoint"
    return f"the last complete checkpoint ({checkpoints[-1].name}) is intact"
