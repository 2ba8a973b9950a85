"""``tunesmith export --gguf`` and ``--gguf-adapter``: files llama.cpp and Ollama take as they
are, checked by reading them back with the ``gguf`` package and transformers' GGUF loader."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from store.database import open_database
from store.errors import InputError
from store.paths import ensure_private_dir
from store.projects import DEFAULT_BASE_MODEL, create_project
from store.runs import create_run, finish_run, get_run
from tests.conftest import TinyRun
from tests.trainer.ollama_modelfile import parse_modelfile
from trainer.control.snapshot import EVAL_FILE, read_snapshot_rows
from trainer.export import ExportResult, export_run
from trainer.models import embedded_gguf_path
from tui.cli.main import cli

ROTARY = {"attn_q": "num_attention_heads", "attn_k": "num_key_value_heads"}


def quiet(message: str) -> None:
    """A status callback that shows nothing."""


def field(reader: gguf.GGUFReader, key: str) -> Any:
    return reader.fields[key].contents()


def hf_rows(name: str, values: np.ndarray, config: Any) -> np.ndarray:
    """Undo llama.cpp's rotary row order of a q or k tensor, as transformers' reader does."""
    kind = name.split(".")[2] if name.startswith("blk.") else ""
    if kind not in ROTARY:
        return values
    heads = getattr(config, ROTARY[kind])
    grouped = values.reshape(heads, values.shape[0] // heads // 2, 2, *values.shape[1:])
    return grouped.swapaxes(1, 2).reshape(values.shape)


def gguf_weights(path: Path, config: Any) -> dict[str, np.ndarray]:
    """Every tensor of a GGUF file, dequantized, in transformers' row order."""
    reader = gguf.GGUFReader(path)
    return {
        tensor.name: hf_rows(tensor.name, gguf.dequantize(tensor.data, tensor.tensor_type), config)
        for tensor in reader.tensors
    }


def hf_to_gguf_names(state_dict: dict[str, torch.Tensor], blocks: int) -> dict[str, str]:
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, blocks)
    mapped = {key: names.get_name(key, try_suffixes=(".weight", ".bias")) for key in state_dict}
    return {key: value for key, value in mapped.items() if value is not None}


def eval_prompts(db_path: Path, run_id: int, count: int) -> list[list[dict[str, str]]]:
    """The first ``count`` held-out rows' messages up to the answer."""
    run = get_run(open_database(db_path), run_id)
    assert run.run_dir is not None
    rows = read_snapshot_rows(Path(run.run_dir) / EVAL_FILE)
    prompts = [[m for m in row["messages"] if m["role"] != "assistant"] for row in rows]
    return prompts[:count]


def greedy_answers(
    model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], tokens: int
) -> list[list[int]]:
    answers = []
    for messages in prompts:
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=tokens, do_sample=False)
        answers.append(output[0][inputs["input_ids"].shape[1] :].tolist())
    return answers


def same_answers(left: list[list[int]], right: list[list[int]]) -> int:
    return sum(a == b for a, b in zip(left, right, strict=True))


def next_token_share(
    model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], expected: list[list[int]]
) -> float:
    """The share of the expected answers' tokens that ``model`` predicts next, given the prompt
    and the expected answer so far: closeness that one early difference cannot cascade."""
    agreed = total = 0
    for messages, answer in zip(prompts, expected, strict=True):
        prompt = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True
        )["input_ids"]
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([[*prompt, *answer]])).logits[0]
        predicted = logits[len(prompt) - 1 : len(prompt) - 1 + len(answer)].argmax(-1)
        agreed += int((predicted == torch.tensor(answer)).sum())
        total += len(answer)
    return agreed / total


@pytest.fixture(scope="module")
def tiny_exports(
    completed_tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ExportResult]:
    """The tiny run exported once each way: merged f32 safetensors, GGUF f16 and q8_0, and
    the GGUF LoRA."""
    root = tmp_path_factory.mktemp("gguf-exports")
    db_path, run_id = completed_tiny_run.db_path, completed_tiny_run.run_id
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNESMITH_HOME", str(completed_tiny_run.home))
        return {
            "merged": export_run(
                db_path, run_id, root / "merged", merged=True, dtype="f32", on_status=quiet
            ),
            "f16": export_run(db_path, run_id, root / "f16", gguf="f16", on_status=quiet),
            "q8_0": export_run(db_path, run_id, root / "q8_0", gguf="q8_0", on_status=quiet),
            "lora": export_run(db_path, run_id, root / "lora", gguf_adapter=True, on_status=quiet),
        }


def test_a_gguf_export_holds_the_file_a_modelfile_and_a_card(
    tiny_exports: dict[str, ExportResult], completed_tiny_run: TinyRun
) -> None:
    run_id = completed_tiny_run.run_id
    for quant in ("f16", "q8_0"):
        result = tiny_exports[quant]
        assert result.format == "gguf" and result.kind == "merged"
        assert result.files == ["Modelfile", "README.md", f"colours-run{run_id}-{quant}.gguf"]
    commands = dict(parse_modelfile((tiny_exports["f16"].target / "Modelfile").read_text()))
    assert commands["model"] == f"./colours-run{run_id}-f16.gguf"
    assert commands["template"].startswith("{{ if .System }}<|im_start|>system\n")
    assert commands["stop"] == "<|im_end|>"
    assert commands["num_ctx"] == "512"  # the tiny model's whole context
    assert "system" not in commands  # the project has no system prompt
    card = (tiny_exports["f16"].target / "README.md").read_text()
    assert f"ollama create colours-run{run_id} -f Modelfile" in card
    assert f"llama-cli -m colours-run{run_id}-f16.gguf -cnv" in card
    assert f"gguf_file='colours-run{run_id}-f16.gguf'" in card


def test_gguf_metadata_round_trips_the_tokenizer_and_template(
    tiny_exports: dict[str, ExportResult], tiny_model_dir: Path
) -> None:
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = AutoConfig.from_pretrained(tiny_model_dir)
    path = next(tiny_exports["f16"].target.glob("*.gguf"))
    reader = gguf.GGUFReader(path)

    vocabulary = tokenizer.get_vocab()
    tokens = field(reader, "tokenizer.ggml.tokens")
    assert [vocabulary[token] for token in tokens] == list(range(len(vocabulary)))
    types = field(reader, "tokenizer.ggml.token_type")
    special = {tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens}
    assert special and all(types[i] == gguf.TokenType.CONTROL for i in special)
    assert types.count(gguf.TokenType.NORMAL) == len(tokens) - types.count(gguf.TokenType.CONTROL)
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    assert field(reader, "tokenizer.ggml.merges") == [" ".join(pair) for pair in merges]
    assert field(reader, "tokenizer.ggml.model") == "gpt2"
    assert field(reader, "tokenizer.ggml.pre") == "gpt-2"
    assert field(reader, "tokenizer.ggml.bos_token_id") == tokenizer.bos_token_id
    assert field(reader, "tokenizer.ggml.eos_token_id") == tokenizer.eos_token_id
    assert field(reader, "tokenizer.ggml.padding_token_id") == tokenizer.pad_token_id
    assert field(reader, "tokenizer.ggml.add_bos_token") is False
    assert field(reader, "tokenizer.chat_template") == tokenizer.chat_template
    assert field(reader, "general.architecture") == "llama"
    assert field(reader, "general.type") == "model"
    assert field(reader, "llama.context_length") == config.max_position_embeddings
    assert field(reader, "llama.attention.head_count_kv") == config.num_key_value_heads
    assert field(reader, "general.file_type") == gguf.LlamaFileType.MOSTLY_F16

    # transformers' own reader rebuilds a tokenizer that encodes a chat as the original does.
    read_back = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    chat = [{"role": "user", "content": 'Name colour number 21, in JSON: {"a": 1}.'}]
    assert read_back.apply_chat_template(chat, add_generation_prompt=True) == (
        tokenizer.apply_chat_template(chat, add_generation_prompt=True)
    )


def test_gguf_tensors_are_the_merged_weights_rounded_to_f16(
    tiny_exports: dict[str, ExportResult],
) -> None:
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(tiny_exports["merged"].target)
    state = merged.state_dict()
    names = hf_to_gguf_names(state, merged.config.num_hidden_layers)
    f16 = gguf_weights(next(tiny_exports["f16"].target.glob("*.gguf")), merged.config)
    q8_0 = gguf_weights(next(tiny_exports["q8_0"].target.glob("*.gguf")), merged.config)

    assert "output.weight" not in f16  # tied: llama.cpp reuses the embedding
    assert set(f16) == {name for key, name in names.items() if key != "lm_head.weight"}
    for key, name in names.items():
        if name not in f16:
            continue
        weight = state[key].numpy()
        if weight.ndim == 1:
            assert np.array_equal(f16[name], weight), name
            continue
        assert np.array_equal(f16[name], weight.astype(np.float16).astype(np.float32)), name
        # q8_0: 8 bits a value and one f16 scale per 32: within half a step, plus the scale's
        # own f16 rounding (2**-11 of it) times the 127 steps.
        step = np.abs(weight).reshape(-1, 32).max(axis=1, keepdims=True) / 127
        error = np.abs(q8_0[name] - weight).reshape(-1, 32)
        assert np.all(error <= step * 0.57 + 1e-7), name


def test_transformers_answers_from_the_gguf_as_from_the_merged_export(
    tiny_exports: dict[str, ExportResult], completed_tiny_run: TinyRun
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_dir = tiny_exports["merged"].target
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    prompts = eval_prompts(completed_tiny_run.db_path, completed_tiny_run.run_id, 4)
    prompts.append([{"role": "user", "content": "Name colour number 3."}])
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    expected = greedy_answers(merged, tokenizer, prompts, 12)

    for quant in ("f16", "q8_0"):
        path = next(tiny_exports[quant].target.glob("*.gguf"))
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
        if quant == "f16":
            assert same_answers(greedy_answers(model, tokenizer, prompts, 12), expected) >= 4
        else:
            assert next_token_share(model, tokenizer, prompts, expected) >= 0.8


def test_the_gguf_lora_rebuilds_the_merged_weights(
    tiny_exports: dict[str, ExportResult], tiny_model_dir: Path, completed_tiny_run: TinyRun
) -> None:
    from transformers import AutoModelForCausalLM

    result = tiny_exports["lora"]
    run_id = completed_tiny_run.run_id
    lora_name = f"colours-run{run_id}-lora-f16.gguf"
    assert result.format == "gguf" and result.kind == "adapter"
    assert result.files == ["Modelfile", "README.md", lora_name]
    reader = gguf.GGUFReader(result.target / lora_name)
    assert field(reader, "general.type") == "adapter"
    assert field(reader, "adapter.type") == "lora"
    alpha = field(reader, "adapter.lora.alpha")
    assert alpha == 32.0

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    merged = AutoModelForCausalLM.from_pretrained(tiny_exports["merged"].target)
    names = hf_to_gguf_names(base.state_dict(), base.config.num_hidden_layers)
    lora = {
        tensor.name: gguf.dequantize(tensor.data, tensor.tensor_type) for tensor in reader.tensors
    }
    adapted = {name.rsplit(".lora_", 1)[0] for name in lora}
    assert len(adapted) == 7 * base.config.num_hidden_layers  # all linear layers
    for key, name in names.items():
        if name not in adapted:
            continue
        lora_a, lora_b = lora[f"{name}.lora_a"], lora[f"{name}.lora_b"]
        # llama.cpp adds (alpha / rank) * B @ A to the weight, in its own row order.
        delta = hf_rows(name, (alpha / lora_a.shape[0]) * (lora_b @ lora_a), base.config)
        rebuilt = base.state_dict()[key].numpy() + delta
        np.testing.assert_allclose(rebuilt, merged.state_dict()[key].numpy(), atol=2e-3)

    commands = parse_modelfile((result.target / "Modelfile").read_text())
    assert commands[:2] == [("model", tiny_model_dir.name), ("adapter", f"./{lora_name}")]
    assert "FROM must be the base model" in (result.target / "Modelfile").read_text()


def _copied_run(
    completed_tiny_run: TinyRun, tmp_path: Path, edit: dict[str, Any] | None = None
) -> tuple[Path, int]:
    """A completed run of a new project whose adapter is the tiny run's, its config edited."""
    source_db = open_database(completed_tiny_run.db_path)
    adapter_path = get_run(source_db, completed_tiny_run.run_id).adapter_path
    assert adapter_path is not None
    db_path = tmp_path / "home" / "tunesmith.db"
    db = open_database(db_path)
    base = json.loads((Path(adapter_path) / "adapter_config.json").read_text())
    project = create_project(db, "copied", base_model=base["base_model_name_or_path"])
    run = create_run(
        db,
        project.id,
        config={},
        dataset_hash="c" * 64,
        dataset_size=1,
        runs_root=ensure_private_dir(tmp_path / "home" / "runs"),
    )
    assert run.run_dir is not None
    adapter = ensure_private_dir(Path(run.run_dir)) / "adapter"
    shutil.copytree(adapter_path, adapter)
    config_path = adapter / "adapter_config.json"
    config_path.write_text(json.dumps({**base, **(edit or {})}))
    finish_run(db, run.id, "completed", adapter_path=str(adapter))
    return db_path, run.id


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ({"use_dora": True}, "DoRA adapter"),
        ({"modules_to_save": ["lm_head"]}, "saves whole modules"),
        ({"peft_type": "IA3"}, "is an IA3 adapter, and llama.cpp applies LoRA adapters only"),
    ],
)
def test_what_a_gguf_lora_cannot_hold_is_refused(
    completed_tiny_run: TinyRun, tmp_path: Path, edit: dict[str, Any], reason: str
) -> None:
    db_path, run_id = _copied_run(completed_tiny_run, tmp_path, edit)
    with pytest.raises(InputError, match=reason):
        export_run(db_path, run_id, tmp_path / "out", gguf_adapter=True, on_status=quiet)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["home"]


def test_an_rslora_adapter_keeps_its_scale_in_the_gguf_alpha(
    completed_tiny_run: TinyRun, tmp_path: Path
) -> None:
    db_path, run_id = _copied_run(completed_tiny_run, tmp_path, {"use_rslora": True})
    adapter = Path(str(get_run(open_database(db_path), run_id).adapter_path))
    config = json.loads((adapter / "adapter_config.json").read_text())
    result = export_run(db_path, run_id, tmp_path / "out", gguf_adapter=True, on_status=quiet)
    reader = gguf.GGUFReader(next(result.target.glob("*.gguf")))
    # llama.cpp scales by alpha / rank: that is rsLoRA's alpha / sqrt(rank) at this alpha.
    alpha = field(reader, "adapter.lora.alpha")
    assert alpha / config["r"] == pytest.approx(config["lora_alpha"] / math.sqrt(config["r"]))


def test_an_adapter_on_the_embeddings_is_refused(
    completed_tiny_run: TinyRun, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    db_path, run_id = _copied_run(completed_tiny_run, tmp_path)
    adapter = Path(str(get_run(open_database(db_path), run_id).adapter_path))
    shutil.rmtree(adapter)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    embedded = get_peft_model(model, LoraConfig(r=4, target_modules=["embed_tokens", "q_proj"]))
    embedded.save_pretrained(str(adapter))

    with pytest.raises(InputError, match=r"adapts the embeddings \(.*embed_tokens"):
        export_run(db_path, run_id, tmp_path / "out", gguf_adapter=True, on_status=quiet)
    # The merged GGUF has no such limit: the embedding change is in its weights.
    merged = export_run(db_path, run_id, tmp_path / "merged", gguf="f16", on_status=quiet)
    assert merged.kind == "merged"


def test_a_template_ollama_cannot_be_given_is_left_to_the_gguf(
    completed_tiny_run: TinyRun, tmp_path: Path
) -> None:
    db_path, run_id = _copied_run(completed_tiny_run, tmp_path)
    adapter = Path(str(get_run(open_database(db_path), run_id).adapter_path))
    # Gemma-style: the system prompt is folded into the first user turn.
    folded = (
        "{% if messages[0]['role'] == 'system' %}"
        "{% set system = messages[0]['content'] + '\n\n' %}{% set rest = messages[1:] %}"
        "{% else %}{% set system = '' %}{% set rest = messages %}{% endif %}"
        "{% for message in rest %}<turn>{{ message['role'] }}\n"
        "{{ system if loop.first else '' }}{{ message['content'] }}</turn>\n{% endfor %}"
        "{% if add_generation_prompt %}<turn>assistant\n{% endif %}"
    )
    (adapter / "chat_template.jinja").write_text(folded)
    statuses: list[str] = []

    result = export_run(db_path, run_id, tmp_path / "out", gguf="f16", on_status=statuses.append)

    modelfile = (result.target / "Modelfile").read_text()
    assert "template" not in dict(parse_modelfile(modelfile))
    assert "# No TEMPLATE: the model's chat template" in modelfile
    assert "does not give the system prompt a turn of its own" in modelfile
    assert any(line.startswith("Modelfile: No TEMPLATE") for line in statuses)
    reader = gguf.GGUFReader(next(result.target.glob("*.gguf")))
    assert field(reader, "tokenizer.chat_template") == folded


def test_the_cli_exports_gguf_and_checks_its_flags(
    completed_tiny_run: TinyRun, tmp_path: Path
) -> None:
    def invoke(*args: str) -> Any:
        return CliRunner().invoke(
            cli, ["--db", str(completed_tiny_run.db_path), "export", *args], catch_exceptions=False
        )

    run_id = str(completed_tiny_run.run_id)
    for flags, error in [
        (["--gguf", "--merged"], "Error: --merged and --gguf cannot be combined; choose one\n"),
        (["--quant", "q8_0"], "Error: --quant goes with --gguf (a GGUF LoRA is always f16)\n"),
        (["--dtype", "f16"], "Error: --dtype goes with --merged\n"),
    ]:
        refused = invoke(run_id, str(tmp_path / "refused"), *flags)
        assert refused.exit_code == 1 and refused.stderr == error
    assert not (tmp_path / "refused").exists()

    result = invoke(run_id, str(tmp_path / "q8"), "--gguf", "--quant", "q8_0")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Exported run {run_id} (GGUF model, q8_0)")
    assert f"colours-run{run_id}-q8_0.gguf" in result.stdout
    assert "ollama create NAME -f Modelfile" in result.stdout


@pytest.mark.skipif(shutil.which("ollama") is None, reason="no ollama binary on PATH")
def test_ollama_creates_and_runs_the_exported_model(tiny_exports: dict[str, ExportResult]) -> None:
    folder = tiny_exports["f16"].target
    name = f"tunesmith-test-{int(time.time())}"
    created = subprocess.run(
        ["ollama", "create", name, "-f", "Modelfile"], cwd=folder, capture_output=True, text=True
    )
    assert created.returncode == 0, created.stderr
    try:
        answered = subprocess.run(
            ["ollama", "run", name, "Name colour number 3."],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert answered.returncode == 0, answered.stderr
    finally:
        subprocess.run(["ollama", "rm", name], capture_output=True)


@pytest.mark.slow
def test_the_embedded_model_exports_to_gguf_that_answers_as_it_does(
    embedded_model_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.models import load_base_model

    monkeypatch.setenv("TUNESMITH_HOME", str(embedded_model_home))
    db_path = tmp_path / "embedded.db"
    db = open_database(db_path)
    system = 'Reply with one JSON object: {"category": ...}.'
    project = create_project(db, "support", base_model=DEFAULT_BASE_MODEL, system_prompt=system)
    run = create_run(
        db,
        project.id,
        config={},
        dataset_hash="e" * 64,
        dataset_size=1,
        runs_root=ensure_private_dir(tmp_path / "runs"),
    )
    assert run.run_dir is not None
    # A real peft adapter whose B matrices are set, so the merge changes every adapted weight.
    base, tokenizer = load_base_model(DEFAULT_BASE_MODEL, on_status=quiet)
    torch.manual_seed(0)
    tuned = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    for name, parameter in tuned.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.002)
    adapter = ensure_private_dir(Path(run.run_dir)) / "adapter"
    tuned.save_pretrained(str(adapter))
    tokenizer.save_pretrained(adapter)
    finish_run(db, run.id, "completed", adapter_path=str(adapter))

    timings: dict[str, float] = {}
    exports: dict[str, ExportResult] = {}
    ways: list[tuple[str, dict[str, Any]]] = [
        ("merged", {"merged": True, "dtype": "f32"}),
        ("f16", {"gguf": "f16"}),
        ("q8_0", {"gguf": "q8_0"}),
        ("lora", {"gguf_adapter": True}),
    ]
    for label, options in ways:
        started = time.monotonic()
        exports[label] = export_run(db_path, run.id, tmp_path / label, on_status=quiet, **options)
        timings[label] = time.monotonic() - started
    sizes = {
        label: sum(path.stat().st_size for path in export.target.glob("*.gguf"))
        for label, export in exports.items()
    }
    print(f"\nembedded export: GGUF bytes {sizes}, seconds {timings}")

    # The metadata matches the GGUF file the embedded model was converted from.
    shipped = gguf.GGUFReader(embedded_gguf_path())
    ours = gguf.GGUFReader(next(exports["f16"].target.glob("*.gguf")))
    for key in (
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.chat_template",
        "llama.context_length",
        "llama.rope.freq_base",
    ):
        assert field(ours, key) == field(shipped, key), key
    merged = AutoModelForCausalLM.from_pretrained(exports["merged"].target, dtype=torch.float32)
    parameters = sum(parameter.numel() for parameter in merged.parameters())
    assert sizes["f16"] == pytest.approx(2 * parameters, rel=0.01)
    assert sizes["q8_0"] == pytest.approx(34 / 32 * parameters, rel=0.02)

    modelfile = (exports["f16"].target / "Modelfile").read_text()
    commands = dict(parse_modelfile(modelfile))
    assert commands["template"].startswith("{{ if .System }}<|im_start|>system\n{{ .System }}")
    assert "{{ range $i, $_ := .Messages }}" in commands["template"]
    assert commands["system"] == system
    assert commands["num_ctx"] == "4096"
    lora_modelfile = parse_modelfile((exports["lora"].target / "Modelfile").read_text())
    assert lora_modelfile[0] == ("model", f"./{embedded_gguf_path().name}")
    assert (exports["lora"].target / embedded_gguf_path().name).is_file()

    demo = Path(__file__).resolve().parents[2] / "examples" / "support_emails.jsonl"
    rows = [json.loads(line) for line in demo.read_text(encoding="utf-8").splitlines()][:5]
    prompts = [[m for m in row["messages"] if m["role"] != "assistant"] for row in rows]
    tokenizer = AutoTokenizer.from_pretrained(exports["merged"].target)
    expected = greedy_answers(merged, tokenizer, prompts, tokens=16)
    for quant in ("f16", "q8_0"):
        path = next(exports[quant].target.glob("*.gguf"))
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
        answers = greedy_answers(model, tokenizer, prompts, tokens=16)
        identical = same_answers(answers, expected)
        share = next_token_share(model, tokenizer, prompts, expected)
        print(f"{quant}: {identical} of 5 greedy answers identical, next token {share:.0%}")
        assert identical >= 4 if quant == "f16" else share >= 0.8
