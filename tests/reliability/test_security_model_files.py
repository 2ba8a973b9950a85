"""Security payloads in model folders: pickles and custom code are refused, and a resume takes
only checkpoints its run wrote and nobody changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from store.errors import ModelError
from tests.reliability.scorecard import Scorecard
from tests.reliability.security_setup import PICKLE, adapter_folder, exportable_run, quiet
from trainer.control.adapter_files import check_adapter_folder
from trainer.export import export_run
from trainer.models import load_base_model
from trainer.training.checkpoints import (
    CHECKPOINT_MARKER,
    resumable_checkpoint,
    write_checkpoint_marker,
)

CODE_FILES = [
    "adapter_model.bin",
    "pytorch_model.bin",
    "training_args.bin",
    "optimizer.pt",
    "rng_state.pth",
    "weights.pkl",
    "weights.pickle",
    "model.ckpt",
    "array.npy",
    "model.joblib",
    "modeling_evil.py",
    "model.h5",
]


@pytest.mark.parametrize("file_name", CODE_FILES)
def test_a_pickle_or_code_in_an_adapter_folder_is_refused(
    file_name: str, tmp_path: Path, scorecard: Scorecard
) -> None:
    folder = adapter_folder(tmp_path / "adapter")
    (folder / file_name).write_bytes(PICKLE)
    refused = False
    try:
        check_adapter_folder(folder)
    except ModelError as error:
        refused = file_name in error.message and "refusing to load" in error.message
    scorecard.payload(f"{file_name} in an adapter folder refused for loading", neutralised=refused)
    assert refused


def test_export_leaves_pickles_behind_and_refuses_them_for_merging(
    tmp_path: Path, scorecard: Scorecard
) -> None:
    adapter = adapter_folder(tmp_path / "adapter")
    for file_name in CODE_FILES:
        (adapter / file_name).write_bytes(PICKLE)
    db_path, run_id = exportable_run(tmp_path, adapter)

    result = export_run(db_path, run_id, tmp_path / "out", on_status=quiet)
    exported = sorted(path.name for path in (tmp_path / "out").iterdir())
    for file_name in CODE_FILES:
        scorecard.payload(
            f"{file_name} left out of an export", neutralised=file_name not in exported
        )
    assert exported == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
    ]
    assert sorted(result.files) == exported

    with pytest.raises(ModelError, match="refusing to load") as refused:
        export_run(db_path, run_id, tmp_path / "merged", merged=True, on_status=quiet)
    scorecard.payload("pickles refused when merging an export", neutralised=refused is not None)
    assert not (tmp_path / "merged").exists()


def test_a_model_that_needs_its_own_code_is_refused_without_running_it(
    tmp_path: Path, scorecard: Scorecard
) -> None:
    sentinel = tmp_path / "code-ran"
    folder = tmp_path / "evil-model"
    folder.mkdir()
    code = f"import pathlib\npathlib.Path({str(sentinel)!r}).write_text('ran')\n"
    (folder / "evil.py").write_text(code, encoding="utf-8")
    auto_map = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    config = {"model_type": "tunesmith-evil", "auto_map": auto_map}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    tokenizer = {
        "tokenizer_class": "EvilTokenizer",
        "auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]},
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer), encoding="utf-8")

    with pytest.raises(ModelError) as refused:
        load_base_model(str(folder), on_status=quiet)
    neutralised = not sentinel.exists() and "\n" not in refused.value.message
    scorecard.payload(
        "a base model with custom code (trust_remote_code off)", neutralised=neutralised
    )
    assert neutralised


def test_resume_takes_only_checkpoints_this_run_wrote_and_nobody_changed(
    tmp_path: Path, scorecard: Scorecard
) -> None:
    root = tmp_path / "checkpoints"

    def checkpoint(step: int, run_id: int = 1) -> Path:
        folder = root / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "optimizer.pt").write_bytes(b"state" * 100)
        (folder / "adapter_model.safetensors").write_bytes(b"weights")
        write_checkpoint_marker(folder, run_id=run_id, step=step)
        return folder

    genuine = checkpoint(5)
    checkpoint(10, run_id=2)
    (checkpoint(15) / "optimizer.pt").write_bytes(PICKLE)
    copied = root / "checkpoint-20"
    copied.mkdir()
    for path in genuine.iterdir():
        (copied / path.name).write_bytes(path.read_bytes())
    (checkpoint(25) / "rng_state.pth").write_bytes(PICKLE)
    (checkpoint(30) / "adapter_model.safetensors").unlink()
    linked = checkpoint(35)
    (linked / "optimizer.pt").unlink()
    (linked / "optimizer.pt").symlink_to(genuine / "optimizer.pt")
    hand_made = root / "checkpoint-40"
    hand_made.mkdir()
    (hand_made / "optimizer.pt").write_bytes(PICKLE)
    (hand_made / CHECKPOINT_MARKER).write_text(json.dumps({"run_id": 1, "step": 40}))
    garbled = checkpoint(45)
    (garbled / CHECKPOINT_MARKER).write_text("{not json")

    chosen = resumable_checkpoint(root, run_id=1)
    for label in (
        "another run's checkpoint",
        "a checkpoint whose optimizer state was swapped",
        "a checkpoint copied under another step",
        "a checkpoint with a file added",
        "a checkpoint with a file missing",
        "a checkpoint holding a link",
        "a hand-made marker without hashes",
        "an unreadable marker",
    ):
        scorecard.payload(f"resume refuses {label}", neutralised=chosen == genuine)
    assert chosen == genuine
