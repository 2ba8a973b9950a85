"""``tunesmith export``: adapters and merged models that load elsewhere, written safely."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner, Result

from store.database import open_database
from store.errors import InputError
from store.paths import ensure_private_dir
from store.projects import create_project
from store.runs import create_run, finish_run, get_run
from tests.conftest import TinyRun
from trainer import export
from trainer.control.adapter_files import SAFE_ADAPTER_SUFFIXES
from trainer.export import check_target, export_run
from tui.cli.main import cli

ADAPTER_FILES = {"README.md", "adapter_config.json", "adapter_model.safetensors"}


def invoke(db_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db_path), *args], catch_exceptions=False)


def quiet(message: str) -> None:
    """A status callback that shows nothing."""


def adapter_dir(tiny_run: TinyRun) -> Path:
    adapter_path = get_run(open_database(tiny_run.db_path), tiny_run.run_id).adapter_path
    assert adapter_path is not None
    return Path(adapter_path)


def logits(model: Any, tiny_model_dir: Path) -> torch.Tensor:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    input_ids = tokenizer("Name colour number 3.", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        result: torch.Tensor = model.eval()(input_ids=input_ids).logits
    return result


def tiny_base(tiny_model_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


def with_adapter(tiny_model_dir: Path, folder: Path) -> Any:
    from peft import PeftModel

    return PeftModel.from_pretrained(tiny_base(tiny_model_dir), str(folder))


def assert_only_safe_files(folder: Path) -> None:
    files = [path for path in folder.rglob("*") if not path.is_dir()]
    assert files
    assert all(path.name.endswith(SAFE_ADAPTER_SUFFIXES) for path in files), files
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".pickle")]


def test_adapter_export_loads_with_peft_and_answers_like_the_run(
    completed_tiny_run: TinyRun, tiny_model_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "exports" / "colours-adapter"
    result = invoke(
        completed_tiny_run.db_path, "export", str(completed_tiny_run.run_id), str(target)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Exported run {completed_tiny_run.run_id} (LoRA adapter)")
    names = {path.name for path in target.iterdir()}
    assert names >= ADAPTER_FILES | {"tokenizer.json", "tokenizer_config.json"}
    assert_only_safe_files(target)
    # Nothing but the export is left next to it: no staging folder.
    assert [path.name for path in target.parent.iterdir()] == ["colours-adapter"]

    exported = logits(with_adapter(tiny_model_dir, target), tiny_model_dir)
    original = logits(with_adapter(tiny_model_dir, adapter_dir(completed_tiny_run)), tiny_model_dir)
    assert torch.equal(exported, original)
    assert not torch.equal(exported, logits(tiny_base(tiny_model_dir), tiny_model_dir))

    card = (target / "README.md").read_text(encoding="utf-8")
    run = get_run(open_database(completed_tiny_run.db_path), completed_tiny_run.run_id)
    assert run.dataset_hash and run.dataset_hash in card
    assert "library_name: peft" in card
    assert "# colours: run" in card
    assert "Training rows: 16" in card and "Held-out eval rows: 4" in card
    assert "| exact match |" in card
    assert "PeftModel.from_pretrained(base, " in card


def test_merged_export_loads_with_transformers_alone(
    completed_tiny_run: TinyRun, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    target = tmp_path / "merged"
    result = export_run(
        completed_tiny_run.db_path,
        completed_tiny_run.run_id,
        target,
        merged=True,
        dtype="f32",
        on_status=quiet,
    )
    assert result.kind == "merged"
    assert "adapter_config.json" not in result.files
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(result.files)
    assert_only_safe_files(target)
    merged = AutoModelForCausalLM.from_pretrained(target)
    expected = logits(with_adapter(tiny_model_dir, adapter_dir(completed_tiny_run)), tiny_model_dir)
    torch.testing.assert_close(logits(merged, tiny_model_dir), expected, atol=1e-4, rtol=1e-4)
    card = (target / "README.md").read_text(encoding="utf-8")
    assert "library_name: transformers" in card and "merged into its weights" in card


def test_a_merged_export_is_bf16_unless_asked(completed_tiny_run: TinyRun, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    result = invoke(
        completed_tiny_run.db_path,
        "export",
        str(completed_tiny_run.run_id),
        str(tmp_path / "merged"),
        "--merged",
    )
    assert result.exit_code == 0, result.output
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert merged.dtype == torch.bfloat16
    parameters = sum(parameter.numel() for parameter in merged.parameters())
    weights = (tmp_path / "merged" / "model.safetensors").stat().st_size
    assert weights == pytest.approx(2 * parameters, rel=0.01)


def test_the_model_card_names_no_path_of_this_machine(
    completed_tiny_run: TinyRun, tiny_model_dir: Path, tmp_path: Path
) -> None:
    run_id = completed_tiny_run.run_id
    ways: list[tuple[str, dict[str, Any]]] = [
        ("adapter", {}),
        ("merged", {"merged": True}),
        ("gguf", {"gguf": "f16"}),
    ]
    for name, options in ways:
        target = tmp_path / "exports" / name
        export_run(completed_tiny_run.db_path, run_id, target, on_status=quiet, **options)
        card = (target / "README.md").read_text(encoding="utf-8")
        modelfile = target / "Modelfile"
        for text in (card, modelfile.read_text() if modelfile.exists() else ""):
            assert str(tmp_path) not in text and str(tiny_model_dir.parent) not in text
            assert str(completed_tiny_run.home) not in text and str(Path.home()) not in text
        assert f"- Project base model: `{tiny_model_dir.name}`" in card
        assert f"from_pretrained({name!r}" in card and ")  # this folder\n" in card


def test_a_non_empty_folder_is_replaced_only_with_force(
    completed_tiny_run: TinyRun, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    run_id = str(completed_tiny_run.run_id)

    refused = invoke(completed_tiny_run.db_path, "export", run_id, str(target))
    assert refused.exit_code == 1
    assert refused.stderr == f"Error: {target}: is not empty; add --force to replace it\n"
    assert (target / "notes.txt").read_text() == "mine"

    replaced = invoke(completed_tiny_run.db_path, "export", run_id, str(target), "--force")
    assert replaced.exit_code == 0, replaced.output
    assert {path.name for path in target.iterdir()} >= ADAPTER_FILES
    assert not (target / "notes.txt").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


def test_a_failed_export_leaves_the_old_folder_and_no_debris(
    completed_tiny_run: TinyRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("mine")

    def broken_copy(source: Path, staging: Path) -> None:
        (staging / "adapter_model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(export, "copy_model_files", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        export_run(
            completed_tiny_run.db_path,
            completed_tiny_run.run_id,
            target,
            force=True,
            on_status=quiet,
        )
    assert [path.name for path in target.iterdir()] == ["notes.txt"]
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


def test_unsafe_targets_are_refused(completed_tiny_run: TinyRun, tmp_path: Path) -> None:
    db_path = completed_tiny_run.db_path
    run = get_run(open_database(db_path), completed_tiny_run.run_id)
    assert run.run_dir is not None
    run_dir = Path(run.run_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(elsewhere, target_is_directory=True)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")

    cases = [
        (run_dir / "export", "inside the run's own folder"),
        (run_dir, "inside the run's own folder"),
        (completed_tiny_run.home, "holds tunesmith's runs or database"),
        (link, "is a link"),
        (a_file, "is a file"),
    ]
    for target, message in cases:
        with pytest.raises(InputError, match=message):
            check_target(target, run_dir=run_dir, db_path=db_path, force=True)
    assert (elsewhere / "keep.txt").read_text() == "keep"

    via_cli = invoke(db_path, "export", str(run.id), str(run_dir / "export"))
    assert via_cli.exit_code == 1 and "inside the run's own folder" in via_cli.stderr
    assert not (run_dir / "export").exists()


def test_a_full_fine_tune_exports_as_the_model_itself(tiny_model_dir: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "home" / "tunesmith.db"
    db = open_database(db_path)
    project = create_project(db, "full", base_model=str(tiny_model_dir), system_prompt="Be brief.")
    run = create_run(
        db,
        project.id,
        config={"method": "full"},
        dataset_hash="f" * 64,
        dataset_size=3,
        runs_root=ensure_private_dir(tmp_path / "home" / "runs"),
    )
    assert run.run_dir is not None
    model_dir = ensure_private_dir(Path(run.run_dir)) / "adapter"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "training_args.bin").write_bytes(b"a pickle")
    finish_run(db, run.id, "completed", adapter_path=str(model_dir))

    result = export_run(db_path, run.id, tmp_path / "out", merged=True, on_status=quiet)
    assert result.kind == "full"
    expected = {p.name for p in tiny_model_dir.iterdir()} | {"README.md"}
    assert set(result.files) == expected
    assert_only_safe_files(tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "fully fine-tuned" in card and "Be brief." in card and "f" * 64 in card

    with pytest.raises(InputError, match="is a full fine-tune and has no adapter"):
        export_run(db_path, run.id, tmp_path / "lora", gguf_adapter=True, on_status=quiet)
    (model_dir / "training_args.bin").unlink()  # loading refuses pickles; copying leaves them
    as_gguf = export_run(db_path, run.id, tmp_path / "gguf", gguf="f16", on_status=quiet)
    assert (as_gguf.kind, as_gguf.format) == ("full", "gguf")
    assert f"full-run{run.id}-f16.gguf" in as_gguf.files
    modelfile = (tmp_path / "gguf" / "Modelfile").read_text(encoding="utf-8")
    assert 'SYSTEM """Be brief."""' in modelfile
