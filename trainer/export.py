"""Export a run: ``python -m trainer.export --db PATH --run-id N --dir DIR [--merged] [--force]``.

The adapter (or a merged or fully fine-tuned model) goes with its tokenizer and a model card
into a staging folder next to DIR, which is renamed into place only once complete: a failed
export leaves no half-written folder. Only safetensors, JSON and text are ever written.
"""

from __future__ import annotations

import argparse
import json
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
from trainer.control.adapter_files import SAFE_ADAPTER_SUFFIXES, check_adapter_folder
from trainer.control.process import child_main
from trainer.control.scoring import compared_metrics
from trainer.control.snapshot import EVAL_FILE, read_snapshot_rows

MODEL_CARD = "README.md"
ADAPTER_CONFIG = "adapter_config.json"
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The hub model the embedded default was quantized from."""

ExportKind = Literal["adapter", "merged", "full"]
StatusCallback = Callable[[str], None]


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote, and where."""

    target: Path
    kind: ExportKind
    files: list[str]


def export_run(
    db_path: Path,
    run_id: int,
    target: Path,
    *,
    merged: bool = False,
    force: bool = False,
    on_status: StatusCallback,
) -> ExportResult:
    """Write run ``run_id``'s adapter (or merged model), tokenizer and model card to ``target``."""
    db = open_database(db_path)
    run = get_run(db, run_id)
    if run.status != "completed" or not run.adapter_path or not run.run_dir:
        raise InputError(f"run {run_id} is {run.status}; only completed runs are exported")
    source = Path(run.adapter_path)
    check_source_folder(source)
    target = check_target(target, run_dir=Path(run.run_dir), db_path=db_path, force=force)
    project = get_project_by_id(db, run.project_id)
    kind: ExportKind
    if run.config.get("full") or not (source / ADAPTER_CONFIG).is_file():
        kind = "full"
    else:
        kind = "merged" if merged else "adapter"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".export", dir=target.parent))
    try:
        if kind == "merged":
            write_merged_model(project.base_model, source, staging, on_status)
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
    return ExportResult(target=target, kind=kind, files=files)


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
    base_model: str, adapter: Path, staging: Path, on_status: StatusCallback
) -> None:
    """Save the base model with the adapter merged into its weights, and the tokenizer."""
    # The ML stack loads only here, so copying an adapter or refusing a folder is quick.
    from peft import PeftModel
    from transformers import AutoTokenizer

    from trainer.models import load_base_model

    check_adapter_folder(adapter)
    model, tokenizer = load_base_model(base_model, on_status=on_status)
    on_status("Merging the adapter into the base weights...")
    tuned: Any = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    merged = tuned.merge_and_unload()
    if (adapter / "tokenizer_config.json").is_file():
        # The tokenizer saved with the run is the one the adapter was trained with.
        tokenizer = AutoTokenizer.from_pretrained(adapter)
    on_status("Saving the merged model...")
    merged.save_pretrained(staging)
    tokenizer.save_pretrained(staging)


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
                if not name.endswith(SAFE_ADAPTER_SUFFIXES):
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
) -> str:
    """The README of an export: base model, task, data, config, evaluation and how to load it."""
    what = {
        "adapter": f"A LoRA adapter for `{project.base_model}`",
        "merged": f"`{project.base_model}` with a LoRA adapter merged into its weights",
        "full": f"`{project.base_model}`, fully fine-tuned",
    }[kind]
    tags = ["tunesmith", "lora", "peft"] if kind == "adapter" else ["tunesmith"]
    lines = [
        "---",
        f"base_model: {json.dumps(project.base_model)}",
        f"library_name: {'peft' if kind == 'adapter' else 'transformers'}",
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
        f"- Project base model: `{project.base_model}`",
    ]
    if base_source != project.base_model:
        lines.append(f"- Weights trained on: `{base_source}`")
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
    lines += ["", "## Use it", "", "```python"]
    lines += _loading_snippet(kind, base_source, folder, project.system_prompt)
    lines += ["```", ""]
    return "\n".join(lines)


def _evaluation_table(evaluation: Evaluation | None) -> list[str]:
    if evaluation is None:
        return ["Not evaluated (the run had no eval rows)."]
    lines = [
        f"Greedy answers to {evaluation.n} held-out rows, by the base model and the tuned one.",
        "",
        "| metric | base | tuned | change |",
        "|---|---|---|---|",
    ]
    for label, base, tuned in compared_metrics(evaluation.base, evaluation.tuned):
        change = f"{(tuned - base) * 100:+.1f} pts"
        lines.append(f"| {label} | {base:.1%} | {tuned:.1%} | {change} |")
    return lines


def _loading_snippet(
    kind: ExportKind, base_source: str, folder: Path, system_prompt: str | None
) -> list[str]:
    messages = [{"role": "user", "content": "..."}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    if kind == "adapter":
        lines = [
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f"base = AutoModelForCausalLM.from_pretrained({base_source!r})",
            f"model = PeftModel.from_pretrained(base, {str(folder)!r})",
        ]
    else:
        lines = [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f"model = AutoModelForCausalLM.from_pretrained({str(folder)!r})",
        ]
    return [
        *lines,
        f"tokenizer = AutoTokenizer.from_pretrained({str(folder)!r})",
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
    parser.add_argument("--merged", action="store_true")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)

    def work() -> None:
        result = export_run(
            args.db, args.run_id, args.dir, merged=args.merged, force=args.force, on_status=_print
        )
        _print(f"Exported run {args.run_id} ({result.kind}) to {result.target}")

    return child_main(work)


if __name__ == "__main__":
    sys.exit(main())
