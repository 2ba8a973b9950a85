"""Shared fixtures: a private home per test, no network, a tiny model and the embedded model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from store.config import CONFIG_FILE_ENV, SETTINGS
from store.database import open_database
from store.examples import NewExample, add_examples, prompt_response
from store.projects import create_project
from trainer.control.jobs import plan_for_project, prepare_run

# Set before any test module imports huggingface_hub, which reads it once at import time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

TINY_MODEL_CONTEXT = 512
"""Context length of the tiny test model, so over-long prompts are cheap to build."""


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Give every test its own empty tunesmith home, no config file or agent model, and the
    Hugging Face hub offline."""
    home = tmp_path / "tunesmith-home"
    monkeypatch.setenv("TUNESMITH_HOME", str(home))
    monkeypatch.delenv("TUNESMITH_DB", raising=False)
    monkeypatch.delenv("TUNESMITH_API_KEY", raising=False)
    # The agent runs guided unless a test configures a model: a developer's own settings
    # must not turn the app's and the CLI's tests to model mode.
    for name in (
        "TUNESMITH_AGENT_API_KEY",
        "OPENAI_API_KEY",
        *(variable for keys in SETTINGS.values() for variable in keys.values()),
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "config.toml"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Llama with the real SmolLM2 tokenizer, saved once per session."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from trainer.models import embedded_gguf_path

    gguf_path = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=TINY_MODEL_CONTEXT,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        # Wider than the default 0.02, so greedy output is varied words, not one repeated token.
        initializer_range=0.3,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model_dir = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir


@pytest.fixture(scope="session")
def embedded_model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tunesmith home holding the real embedded model, converted once per session (~20 s).

    Tests that need it set ``TUNESMITH_HOME`` to this folder; it is how CI proves the embedded
    model converts and answers without a network.
    """
    from trainer.models import ensure_embedded_model

    home = tmp_path_factory.mktemp("embedded-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNESMITH_HOME", str(home))
        ensure_embedded_model(on_status=lambda message: None)
    return home


@dataclass(frozen=True)
class TinyRun:
    """A completed, evaluated training run of the tiny model."""

    home: Path
    db_path: Path
    project: str
    run_id: int


def tiny_task_rows(count: int) -> list[NewExample]:
    """A task the tiny model can learn in a few steps: repeat a colour name."""
    colours = ["red", "green", "blue", "black", "white", "orange", "purple", "yellow"]
    return [
        prompt_response(f"Name colour number {i}.", colours[i % len(colours)]) for i in range(count)
    ]


def interrupted_as_from_a_terminal() -> None:
    """A child's ``preexec_fn``: Ctrl-C (SIGINT) reaches it as from a terminal, whatever this
    test runner does with SIGINT (a shell starts a background job with it ignored, and a child
    inherits that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train_to_the_end(
    db_path: Path, run_id: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``run_id``'s training process here until it ends (the launcher starts it detached);
    its output is what the run's log would hold."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer.training.run",
            "--db",
            str(db_path),
            "--run-id",
            str(run_id),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )


@pytest.fixture(scope="session")
def completed_tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> TinyRun:
    """A run of the tiny model trained to completion (and evaluated) once per session."""
    home = tmp_path_factory.mktemp("tiny-run-home")
    db_path = home / "tunesmith.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNESMITH_HOME", str(home))
        db = open_database(db_path)
        project = create_project(db, "colours", base_model=str(tiny_model_dir))
        add_examples(db, project.id, tiny_task_rows(16), source="imported", split_mode="train")
        add_examples(db, project.id, tiny_task_rows(20)[16:], source="imported", split_mode="eval")
        plan = plan_for_project(db, project, {"max_steps": 6, "batch_size": 4})
        run = prepare_run(db, project, plan)
        train_to_the_end(db_path, run.id, env={**os.environ, "TUNESMITH_HOME": str(home)})
    return TinyRun(home=home, db_path=db_path, project="colours", run_id=run.id)
