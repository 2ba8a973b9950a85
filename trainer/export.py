"""Export a run: ``python -m trainer.export --db PATH --run-id N --dir DIR [--force]
[--merged [--dtype bf16|f16|f32] | --gguf [--quant f16|q8_0] | --gguf-adapter]``.

The adapter (or a merged or fully fine-tuned model) goes with its tokenizer and a model card
into a staging folder next to DIR, which is renamed into place only once complete: a failed
export leaves no half-written folder. ``--gguf`` writes the merged model as one GGUF file and
an Ollama Modelfile instead, ``--gguf-adapter`` the adapter as a GGUF LoRA. Only safetensors,
GGUF, JSON and text are ever written: formats that hold data, never code.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from store.atomic import publish_folder
from store.database import open_database
from store.errors import InputError, ModelError, TunesmithError, is_disk_full
from store.evals import Evaluation, latest_evaluation
from store.projects import DEFAULT_BASE_MODEL, Project, get_project_by_id
from store.runs import Run, get_run
from trainer.control.adapter_files import (
    ADAPTER_CONFIG,
    SAFE_ADAPTER_SUFFIXES,
    adapter_type,
    check_adapter_folder,
)
from trainer.control.config import stored_method
from trainer.control.eval_report import (
    change_cell,
    field_lines,
    label_lines,
    metric_rows,
    notes,
    percent,
)
from trainer.control.modelfile import (
    GGUF_QUANTS,
    MERGED_DTYPES,
    ChatRenderer,
    GgufQuant,
    MergedDtype,
    Modelfile,
    chat_format,
    context_size,
    stop_tokens,
)
from trainer.control.process import child_main
from trainer.control.snapshot import EVAL_FILE, read_snapshot_rows

MODEL_CARD = "README.md"
MODELFILE = "Modelfile"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The hub model the embedded default was quantized from."""

EXPORTED_SUFFIXES = (*SAFE_ADAPTER_SUFFIXES, ".gguf")
"""File types an export may hold: the adapter folder's, and GGUF (tensors and metadata)."""

ExportKind = Literal["adapter", "merged", "full"]
ExportFormat = Literal["safetensors", "gguf"]
StatusCallback = Callable[[str], None]

_UNSUPPORTED_LORA = {
    "use_dora": "it is a DoRA adapter, whose magnitude vectors a GGUF LoRA cannot hold",
    "modules_to_save": "it saves whole modules, which a GGUF LoRA cannot hold",
    "alpha_pattern": "its alpha differs by module, and a GGUF LoRA has one alpha",
}
"""What llama.cpp's LoRA format cannot hold, by the adapter_config.json key that asks for it."""

_UNTARGETABLE = {"embed_tokens": "the embeddings", "lm_head": "the output head (lm_head)"}
"""Modules whose adapters llama.cpp does not apply: it looks embeddings up, it does not
multiply them, and its output head may be the embedding itself."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote, and where."""

    target: Path
    kind: ExportKind
    files: list[str]
    format: ExportFormat = "safetensors"


def export_run(
    db_path: Path,
    run_id: int,
    target: Path,
    *,
    merged: bool = False,
    dtype: MergedDtype = "bf16",
    gguf: GgufQuant | None = None,
    gguf_adapter: bool = False,
    force: bool = False,
    on_status: StatusCallback,
) -> ExportResult:
    """Write run ``run_id``'s adapter (or merged model), tokenizer and model card to ``target``;
    with ``gguf``, the merged model as a GGUF file and a Modelfile; with ``gguf_adapter``, the
    adapter as a GGUF LoRA and a Modelfile."""
    db = open_database(db_path)
    run = get_run(db, run_id)
    if run.status != "completed" or not run.adapter_path or not run.run_dir:
        raise InputError(f"run {run_id} is {run.status}; only completed runs are exported")
    source = Path(run.adapter_path)
    check_source_folder(source)
    target = check_target(target, run_dir=Path(run.run_dir), db_path=db_path, force=force)
    project = get_project_by_id(db, run.project_id)
    kind: ExportKind
    if stored_method(run.config) == "full" or not (source / ADAPTER_CONFIG).is_file():
        if gguf_adapter:
            raise InputError(
                f"run {run.id} is a full fine-tune and has no adapter; export it with --gguf"
            )
        kind = "full"
    else:
        kind = "merged" if merged or gguf else "adapter"
        refusal = export_refusal(
            adapter_type(source), merged=kind == "merged", gguf_adapter=gguf_adapter
        )
        if refusal:
            raise InputError(f"run {run.id} {refusal}")
    export_format: ExportFormat = "gguf" if gguf or gguf_adapter else "safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".export", dir=target.parent))
    try:
        if gguf:
            write_gguf_model(project, run, source, kind, staging, gguf, on_status)
        elif gguf_adapter:
            write_gguf_adapter(project, run, source, staging, on_status)
        elif kind == "merged":
            write_merged_model(project.base_model, source, staging, dtype, on_status)
        else:
            on_status(f"Copying the {'model' if kind == 'full' else 'adapter'} of run {run.id}...")
            copy_model_files(source, staging)
        card = model_card(
            project=project,
            run=run,
            kind=kind,
            base_source=_trained_base(source, project),
            eval_rows=len(read_snapshot_rows(Path(run.run_dir) / EVAL_FILE)),
            evaluation=latest_evaluation(db, run.id),
            folder=target,
            gguf_files=sorted(path.name for path in staging.glob("*.gguf")),
        )
        (staging / MODEL_CARD).write_text(card, encoding="utf-8")
        files = check_export_files(staging)
        publish_folder(staging, target)
    except Exception as error:
        if is_disk_full(error):
            raise TunesmithError(
                f"the disk is full: run {run.id} could not be exported to {target}, which is"
                " as it was; free some space and export again",
                title="Disk full",
            ) from error
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(target=target, kind=kind, files=files, format=export_format)


def gguf_file_name(project: Project, run: Run, what: str) -> str:
    """``<project>-run<id>-<what>.gguf``: the project's name is already safe in a file name."""
    return f"{project.name}-run{run.id}-{what}.gguf"


def check_source_folder(source: Path) -> None:
    """Refuse a run folder whose adapter is missing or holds links."""
    if not source.is_dir():
        raise ModelError(f"{source}: the run's adapter folder is gone")
    for child in source.iterdir():
        if child.is_symlink():
            raise ModelError(f"{child}: links are not allowed in an adapter folder")


def check_target(target: Path, *, run_dir: Path, db_path: Path, force: bool) -> Path:
    """The absolute export folder, if writing there is safe; else a one-line InputError."""
    absolute = Path(os.path.normpath(target.expanduser().absolute()))
    if absolute.is_symlink():
        raise InputError(f"{absolute}: is a link; give the path of a real folder")
    if absolute.exists() and not absolute.is_dir():
        raise InputError(f"{absolute}: is a file; give a folder to export into")
    resolved = absolute.resolve()
    run_folder = run_dir.resolve()
    if resolved == run_folder or run_folder in resolved.parents:
        raise InputError(f"{absolute}: is inside the run's own folder; export somewhere else")
    if resolved in run_folder.parents or resolved in db_path.resolve().parents:
        raise InputError(f"{absolute}: holds tunesmith's runs or database; export somewhere else")
    if absolute.is_dir() and any(absolute.iterdir()):
        if not force:
            raise InputError(f"{absolute}: is not empty; add --force to replace it")
        cwd = Path.cwd().resolve()
        if resolved in (cwd, Path.home().resolve()) or resolved in cwd.parents:
            raise InputError(
                f"{absolute}: is your home or current folder; --force will not replace it"
            )
    return absolute


def copy_model_files(source: Path, staging: Path) -> None:
    """Copy the weights, configs and tokenizer of ``source``; pickles and sub-folders stay."""
    for child in sorted(source.iterdir()):
        if child.name == MODEL_CARD or child.is_symlink() or not child.is_file():
            continue
        if child.name.endswith(SAFE_ADAPTER_SUFFIXES):
            shutil.copyfile(child, staging / child.name, follow_symlinks=False)


def write_merged_model(
    base_model: str, adapter: Path, staging: Path, dtype: MergedDtype, on_status: StatusCallback
) -> None:
    """Save the base model with the adapter merged into its weights, in ``dtype``, and the
    tokenizer."""
    import torch

    model, tokenizer = merged_model(base_model, adapter, on_status)
    on_status(f"Saving the merged model in {dtype}...")
    torch_dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[dtype]
    model.to(torch_dtype).save_pretrained(staging)
    tokenizer.save_pretrained(staging)


def export_refusal(kind: str | None, *, merged: bool, gguf_adapter: bool) -> str | None:
    """Why an adapter of peft type ``kind`` cannot leave as asked (merged into the model, or
    as a GGUF LoRA), as the end of a sentence about its run; None when it can."""
    if kind == "PROMPT_TUNING" and (merged or gguf_adapter):
        return (
            "is prompt tuning: its learned tokens go before every prompt and are no weights to"
            " merge or to write as a GGUF LoRA; export the adapter (peft loads it) or serve it"
            " with tunesmith serve"
        )
    if kind == "IA3" and gguf_adapter:
        return (
            "is an IA3 adapter, and llama.cpp applies LoRA adapters only; export it merged"
            " with --gguf"
        )
    return None


def merged_model(base_model: str, adapter: Path, on_status: StatusCallback) -> tuple[Any, Any]:
    """The base model (float32) with the adapter merged into its weights, and the tokenizer
    the adapter was trained with."""
    # The ML stack loads only here, so copying an adapter or refusing a folder is quick.
    from peft import PeftModel
    from transformers import AutoTokenizer

    from trainer.models import load_base_model

    check_adapter_folder(adapter)
    model, tokenizer = load_base_model(base_model, on_status=on_status)
    on_status("Merging the adapter into the base weights...")
    tuned: Any = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    if (adapter / "tokenizer_config.json").is_file():
        # The tokenizer saved with the run is the one the adapter was trained with.
        tokenizer = AutoTokenizer.from_pretrained(adapter)
    return tuned.merge_and_unload(), tokenizer


def write_gguf_model(
    project: Project,
    run: Run,
    source: Path,
    kind: ExportKind,
    staging: Path,
    quant: GgufQuant,
    on_status: StatusCallback,
) -> None:
    """Write the tuned model as one GGUF file with its vocabulary and chat template, and a
    Modelfile that runs it in Ollama."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer import gguf

    if kind == "full":
        check_adapter_folder(source)
        on_status(f"Loading the model of run {run.id}...")
        model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        tokenizer: Any = AutoTokenizer.from_pretrained(source)
    else:
        model, tokenizer = merged_model(project.base_model, source, on_status)
    shape = gguf.llama_shape(model.config)
    words = gguf.vocabulary(tokenizer, shape.vocab_size, pre=_source_pre_tokenizer(project))
    name = gguf_file_name(project, run, quant)
    on_status(f"Writing {name} ({quant})...")
    gguf.write_model(
        staging / name,
        model.state_dict(),
        shape,
        words,
        quant=quant,
        name=f"{project.name}-run{run.id}",
        on_status=on_status,
    )
    modelfile = _modelfile(
        project,
        f"./{name}",
        _renderer(tokenizer),
        words.special_tokens,
        tokenizer.eos_token,
        shape.context,
    )
    _write_modelfile(staging, modelfile, on_status)


def write_gguf_adapter(
    project: Project, run: Run, source: Path, staging: Path, on_status: StatusCallback
) -> None:
    """Write the adapter as a GGUF LoRA, and a Modelfile that applies it to its base model;
    for the embedded base, the GGUF file it was converted from goes along as that base."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer

    from trainer import gguf
    from trainer.models import embedded_gguf_path, resolve_base_model

    check_adapter_folder(source)
    config = _lora_config(source)
    pairs = _lora_pairs(load_file(source / ADAPTER_WEIGHTS))
    base = resolve_base_model(project.base_model, on_status)
    shape = gguf.llama_shape(AutoConfig.from_pretrained(base))
    tokenizer: Any = AutoTokenizer.from_pretrained(
        source if (source / "tokenizer_config.json").is_file() else base
    )
    words = gguf.vocabulary(tokenizer, shape.vocab_size, pre=_source_pre_tokenizer(project))
    name = gguf_file_name(project, run, "lora-f16")
    on_status(f"Writing {name}...")
    gguf.write_lora(
        staging / name,
        pairs,
        shape,
        alpha=_gguf_alpha(config),
        name=f"{project.name}-run{run.id}-lora",
        on_status=on_status,
    )
    notes: list[str] = []
    if project.base_model == DEFAULT_BASE_MODEL:
        shipped = embedded_gguf_path()
        on_status(f"Copying the base model {shipped.name}...")
        shutil.copyfile(shipped, staging / shipped.name)
        model = f"./{shipped.name}"
        notes.append(
            f"FROM is tunesmith's embedded base model as shipped ({EMBEDDED_HUB_ID}, Q4_1):"
            " the weights the adapter was trained on."
        )
    else:
        model = public_model_name(project.base_model)
        notes.append(
            f"FROM must be the base model {model} (the weights the adapter was trained on) in"
            " Ollama: an Ollama model name or a path to its GGUF file."
        )
    modelfile = _modelfile(
        project,
        model,
        _renderer(tokenizer),
        words.special_tokens,
        tokenizer.eos_token,
        shape.context,
        adapter=f"./{name}",
        notes=notes,
    )
    _write_modelfile(staging, modelfile, on_status)


def _write_modelfile(staging: Path, modelfile: Modelfile, on_status: StatusCallback) -> None:
    if modelfile.template is None:
        on_status(f"Modelfile: {modelfile.notes[-1]}")
    (staging / MODELFILE).write_text(modelfile.text(), encoding="utf-8")


def _lora_config(adapter: Path) -> dict[str, Any]:
    """The adapter's peft config, if a GGUF LoRA can hold what it describes."""
    try:
        config = json.loads((adapter / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except ValueError as error:
        raise ModelError(f"{adapter / ADAPTER_CONFIG}: not JSON ({error})") from error
    if not isinstance(config, dict):
        raise ModelError(f"{adapter / ADAPTER_CONFIG}: not a JSON object")
    if config.get("peft_type", "LORA") != "LORA":
        raise InputError(f"the adapter is {config['peft_type']}, and GGUF holds LoRA adapters")
    for key, reason in _UNSUPPORTED_LORA.items():
        if config.get(key):
            raise InputError(f"the adapter cannot be written as a GGUF LoRA: {reason}")
    if config.get("bias", "none") != "none":
        raise InputError(
            "the adapter cannot be written as a GGUF LoRA: it trains biases, which a GGUF"
            " LoRA cannot hold"
        )
    return config


def _gguf_alpha(config: dict[str, Any]) -> float:
    """The alpha a GGUF LoRA scales by, as llama.cpp does: alpha / rank. An rsLoRA adapter's
    scale, alpha / sqrt(rank), is that at alpha x sqrt(rank)."""
    rank = float(config.get("r") or 1)
    alpha = float(config.get("lora_alpha") or rank)
    return alpha * math.sqrt(rank) if config.get("use_rslora") else alpha


def _lora_pairs(tensors: dict[str, Any]) -> dict[str, Any]:
    """peft's saved tensors as ``{base weight name}.lora_a`` / ``.lora_b``; anything else a
    GGUF LoRA cannot hold is refused, naming it."""
    pairs: dict[str, Any] = {}
    for key, tensor in tensors.items():
        name = key.removeprefix("base_model.model.")
        untargetable = sorted(set(name.split(".")) & _UNTARGETABLE.keys())
        if untargetable:
            raise InputError(
                f"the adapter cannot be written as a GGUF LoRA: it adapts"
                f" {_UNTARGETABLE[untargetable[0]]} ({key}), which llama.cpp does not adapt"
            )
        for part in ("a", "b"):
            suffix = f".lora_{part.upper()}.weight"
            if name.endswith(suffix):
                pairs[f"{name.removesuffix(suffix)}.weight.lora_{part}"] = tensor
                break
        else:
            raise InputError(f"the adapter cannot be written as a GGUF LoRA: it holds {key}")
    for base in sorted({name.rsplit(".", 1)[0] for name in pairs}):
        if f"{base}.lora_a" not in pairs or f"{base}.lora_b" not in pairs:
            raise ModelError(f"the adapter's {base} lacks its lora_A or lora_B")
    return pairs


def _source_pre_tokenizer(project: Project) -> str | None:
    """llama.cpp's name for the embedded model's pre-tokenizer, from the GGUF it came from.

    Its tokenizer, read back from that file by transformers, keeps the regex but loses the
    name; ``smollm`` tells llama.cpp to leave spaces as they are when it decodes, as
    transformers does."""
    if project.base_model != DEFAULT_BASE_MODEL:
        return None
    from gguf import GGUFReader

    from trainer.models import embedded_gguf_path

    field = GGUFReader(embedded_gguf_path()).fields.get("tokenizer.ggml.pre")
    return str(field.contents()) if field is not None else None


def _renderer(tokenizer: Any) -> ChatRenderer | None:
    """The tokenizer's own chat template rendering, if it has a template."""
    if not isinstance(tokenizer.chat_template, str):
        return None

    def render(messages: list[dict[str, str]], generate: bool) -> str:
        return str(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generate)
        )

    return render


def _modelfile(
    project: Project,
    model: str,
    render: ChatRenderer | None,
    special_tokens: list[str],
    eos_token: str | None,
    context: int,
    *,
    adapter: str | None = None,
    notes: list[str] | None = None,
) -> Modelfile:
    """The Modelfile of an export; a chat template Ollama cannot be given is left to Ollama,
    which takes it from the GGUF, with a note saying why."""
    notes = list(notes or [])
    template = None
    stops = [eos_token] if eos_token else []
    if render is None:
        notes.append("No TEMPLATE: the model has no chat template; prompts go in as they are.")
    else:
        try:
            measured = chat_format(render)
        except InputError as error:
            notes.append(
                "No TEMPLATE: the model's chat template (tokenizer.chat_template in the GGUF)"
                f" cannot be written as an Ollama template: {error.message}. Ollama picks a"
                " template from the GGUF; check it with: ollama show NAME --template"
            )
        else:
            template = measured.go_template()
            stops = stop_tokens(measured, special_tokens, eos_token)
    return Modelfile(
        model=model,
        adapter=adapter,
        template=template,
        system=project.system_prompt or None,
        stops=stops,
        num_ctx=context_size(context),
        notes=notes,
    )


def check_export_files(staging: Path) -> list[str]:
    """The names of the files in ``staging``; a link or a non-safe file type is an error."""
    names: list[str] = []
    for root, folders, files in os.walk(staging):
        for name in folders + files:
            path = Path(root) / name
            relative = path.relative_to(staging).as_posix()
            if path.is_symlink():
                raise ModelError(f"{relative}: an export must not contain links")
            if path.is_file():
                if name != MODELFILE and not name.endswith(EXPORTED_SUFFIXES):
                    raise ModelError(f"{relative}: refusing to export a file of this type")
                names.append(relative)
    return sorted(names)


def _trained_base(source: Path, project: Project) -> str:
    """What the adapter was trained on, as peft records it (else the project's base model)."""
    config_path = source / ADAPTER_CONFIG
    if config_path.is_file():
        try:
            recorded = json.loads(config_path.read_text(encoding="utf-8"))
        except ValueError:
            recorded = {}
        if isinstance(recorded, dict) and isinstance(recorded.get("base_model_name_or_path"), str):
            return str(recorded["base_model_name_or_path"])
    return project.base_model


def model_card(
    *,
    project: Project,
    run: Run,
    kind: ExportKind,
    base_source: str,
    eval_rows: int,
    evaluation: Evaluation | None,
    folder: Path,
    gguf_files: list[str] | None = None,
) -> str:
    """The README of an export: base model, task, data, config, evaluation and how to run it.

    It names no path of the exporting machine: a local base model by its folder's name, the
    export by its own (the card travels with the folder)."""
    base_model = public_model_name(project.base_model)
    trained_on = public_model_name(base_source)
    gguf_files = gguf_files or []
    gguf_adapter = bool(gguf_files) and kind == "adapter"
    what = {
        "adapter": f"A LoRA adapter for `{base_model}`",
        "merged": f"`{base_model}` with a LoRA adapter merged into its weights",
        "full": f"`{base_model}`, fully fine-tuned",
    }[kind]
    if gguf_files:
        what += ", as GGUF" if not gguf_adapter else ", as a GGUF LoRA"
    tags = ["tunesmith", "lora", "peft"] if kind == "adapter" else ["tunesmith"]
    if gguf_files:
        tags.append("gguf")
    library = "peft" if kind == "adapter" and not gguf_files else "transformers"
    lines = [
        "---",
        f"base_model: {json.dumps(_hub_id(project.base_model))}",
        f"library_name: {'gguf' if gguf_files else library}",
        "pipeline_tag: text-generation",
        "tags:",
        *(f"- {tag}" for tag in tags),
        "---",
        "",
        f"# {project.name}: run {run.id}",
        "",
        f"{what}, trained with tunesmith for the task of project `{project.name}`.",
        "",
        "## Base model",
        "",
        f"- Project base model: `{base_model}`",
    ]
    if trained_on != base_model:
        lines.append(f"- Weights trained on: `{trained_on}`")
    if project.base_model == DEFAULT_BASE_MODEL:
        lines.append(
            f"- These are tunesmith's embedded copy of `{EMBEDDED_HUB_ID}` (its Q4_1 GGUF,"
            " dequantized); the hub's original weights are close to them but not the same."
        )
    lines += ["", "## Task", ""]
    if project.system_prompt:
        lines += ["System prompt (used in training; send it with every request):", ""]
        lines += _fenced(project.system_prompt)
    else:
        lines.append("No system prompt: the examples' own messages carry the task.")
    for key, value in project.task_spec.items():
        if value:
            lines.append(f"- {key.replace('_', ' ')}: {_one_line(str(value))}")
    lines += [
        "",
        "## Data",
        "",
        f"- Snapshot sha256: `{run.dataset_hash}`",
        f"- Training rows: {run.dataset_size}",
        f"- Held-out eval rows: {eval_rows}",
        "",
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {key} | {_cell(json.dumps(value))} |" for key, value in run.config.items()),
        "",
        f"Started {run.started_at}, finished {run.finished_at}.",
        "",
        "## Evaluation",
        "",
    ]
    lines += _evaluation_table(evaluation)
    if gguf_files:
        lines += ["", *_running_section(project, run, folder.name, gguf_files, gguf_adapter)]
    if not gguf_adapter:
        lines += ["", "## Use it with transformers", "", "```python"]
        lines += _loading_snippet(
            kind, _hub_id(trained_on), folder.name, project.system_prompt, gguf_files
        )
        lines += ["```"]
    lines.append("")
    return "\n".join(lines)


def public_model_name(name: str) -> str:
    """A base model as an export may name it: a hub id as it is, a local folder by its name
    alone (the rest of the path is the exporting machine's)."""
    path = Path(name).expanduser()
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1 or path.is_dir():
        return path.name
    return name


def _hub_id(name: str) -> str:
    """Where a reader gets the base: the hub model the embedded default came from, else its
    public name."""
    public = public_model_name(name)
    return EMBEDDED_HUB_ID if public == DEFAULT_BASE_MODEL else public


def _running_section(
    project: Project, run: Run, folder: str, gguf_files: list[str], gguf_adapter: bool
) -> list[str]:
    """How to run a GGUF export with Ollama and with llama.cpp."""
    name = f"{project.name.lower()}-run{run.id}"
    own = next((f for f in gguf_files if f.startswith(f"{project.name}-run")), gguf_files[0])
    base = next((f for f in gguf_files if f != own), None)
    if gguf_adapter:
        model = base or f"BASE.gguf  # a GGUF of {public_model_name(project.base_model)}"
        llama_cpp = f"llama-cli -m {model} --lora {own} -cnv"
    else:
        llama_cpp = f"llama-cli -m {own} -cnv"
    lines = [
        "## Run it with Ollama or llama.cpp",
        "",
        "The Modelfile holds the chat template, the system prompt and the stop tokens:",
        "",
        "```sh",
        f"cd {folder}",
        f"ollama create {name} -f Modelfile",
        f"ollama run {name}",
        "```",
        "",
        "llama.cpp takes the chat template from the GGUF file itself:",
        "",
        "```sh",
        llama_cpp,
        "```",
    ]
    if project.system_prompt:
        lines += ["", "Give llama.cpp the system prompt above with `-sys`."]
    return lines


def _evaluation_table(evaluation: Evaluation | None) -> list[str]:
    if evaluation is None:
        return ["Not evaluated (the run had no eval rows)."]
    few_shot = evaluation.few_shot is not None
    systems = (
        "the base model, the base model shown train examples (few-shot)"
        if few_shot
        else ("the base model")
    )
    lines = [
        f"Greedy answers to {evaluation.n} held-out rows, by {systems} and the tuned one.",
        "",
        "| metric | base | few-shot | tuned | tuned - base | tuned - few-shot |"
        if few_shot
        else "| metric | base | tuned | tuned - base |",
        "|---|---|---|---|---|---|" if few_shot else "|---|---|---|---|",
    ]
    for row in metric_rows(evaluation):
        over_base = change_cell(row.tuned - row.base, row.over_base)
        if few_shot:
            lead = None if row.few_shot is None else row.tuned - row.few_shot
            over_few = change_cell(lead, row.over_few_shot)
            lines.append(
                f"| {row.label} | {percent(row.base)} | {percent(row.few_shot)} "
                f"| {percent(row.tuned)} | {over_base} | {over_few} |"
            )
        else:
            lines.append(
                f"| {row.label} | {percent(row.base)} | {percent(row.tuned)} | {over_base} |"
            )
    lines += ["", *(f"{line}  " for line in notes(evaluation))]
    for extra in (label_lines(evaluation), field_lines(evaluation)):
        if extra:
            # Labels and field names come from the dataset: a code block keeps them text.
            lines += ["", *_fenced("\n".join(extra))]
    return lines


def _loading_snippet(
    kind: ExportKind,
    base_source: str,
    folder: str,
    system_prompt: str | None,
    gguf_files: list[str],
) -> list[str]:
    messages = [{"role": "user", "content": "..."}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    here = "  # this folder"
    tokenizer = f"tokenizer = AutoTokenizer.from_pretrained({folder!r})"
    if gguf_files:
        gguf_file = f"gguf_file={gguf_files[0]!r}"
        lines = [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f"model = AutoModelForCausalLM.from_pretrained({folder!r}, {gguf_file}){here}",
        ]
        tokenizer = f"tokenizer = AutoTokenizer.from_pretrained({folder!r}, {gguf_file})"
    elif kind == "adapter":
        lines = [
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f"base = AutoModelForCausalLM.from_pretrained({base_source!r})",
            f"model = PeftModel.from_pretrained(base, {folder!r}){here}",
        ]
    else:
        lines = [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f"model = AutoModelForCausalLM.from_pretrained({folder!r}){here}",
        ]
    return [
        *lines,
        tokenizer,
        f"messages = {messages!r}",
        "inputs = tokenizer.apply_chat_template(",
        "    messages, add_generation_prompt=True, return_tensors='pt', return_dict=True",
        ")",
        "output = model.generate(**inputs, max_new_tokens=256, do_sample=False)",
        "print(tokenizer.decode(output[0][inputs['input_ids'].shape[1]:], "
        "skip_special_tokens=True))",
    ]


def _fenced(text: str) -> list[str]:
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return [f"{fence}text", text, fence, ""]


def _longest_backtick_run(text: str) -> int:
    longest = current = 0
    for character in text:
        current = current + 1 if character == "`" else 0
        longest = max(longest, current)
    return longest


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _print(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Export one run; errors are one line on stderr and exit status 1."""
    parser = argparse.ArgumentParser(prog="python -m trainer.export")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--run-id", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--merged", action="store_true")
    form.add_argument("--gguf", action="store_true")
    form.add_argument("--gguf-adapter", action="store_true")
    parser.add_argument("--dtype", choices=MERGED_DTYPES, default="bf16")
    parser.add_argument("--quant", choices=GGUF_QUANTS, default="f16")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)

    def work() -> None:
        # The command that started this child prints what was written, with the files.
        export_run(
            args.db,
            args.run_id,
            args.dir,
            merged=args.merged,
            dtype=args.dtype,
            gguf=args.quant if args.gguf else None,
            gguf_adapter=args.gguf_adapter,
            force=args.force,
            on_status=_print,
        )

    return child_main(work)


if __name__ == "__main__":
    sys.exit(main())
