"""The methods sweep: its arguments, its table and verdict, and three tiny runs side by side on
one snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from store.examples import add_examples
from store.runs import list_runs
from tests.conftest import tiny_task_rows
from tests.reliability.harness import tiny_project
from trainer.control.sweep import (
    MethodResult,
    best,
    parse_methods,
    table_lines,
    verdict_lines,
)
from trainer.export import export_refusal
from tui.cli.main import cli


def test_methods_are_parsed_in_order_and_each_mistake_named() -> None:
    assert parse_methods("lora, ia3,prompt-tuning") == ["lora", "ia3", "prompt-tuning"]
    with pytest.raises(ValueError, match="'prefix' is not a method; use lora, dora"):
        parse_methods("lora,prefix")
    with pytest.raises(ValueError, match="each method once"):
        parse_methods("lora,lora")
    with pytest.raises(ValueError, match="at least one"):
        parse_methods(" , ")


def _result(run_id: int, method: str, score: float | None, **costs: object) -> MethodResult:
    figures: dict[str, object] = {
        "trainable_parameters": 1000,
        "adapter_bytes": 4096,
        "train_seconds": 60.0,
        "tokens_per_second": 300.0,
        "peak_memory": 3 * 2**30,
        "metric": "exact_match" if score is not None else None,
        "score": score,
        "interval": (score - 0.1, min(score + 0.1, 1.0)) if score is not None else None,
        "drift": 0.1,
        **costs,
    }
    return MethodResult(run_id=run_id, method=method, **figures)  # type: ignore[arg-type]


def test_the_best_scores_highest_and_ties_go_to_the_cheaper() -> None:
    lora = _result(1, "lora", 0.9, trainable_parameters=5_000_000)
    ia3 = _result(2, "ia3", 0.9, trainable_parameters=60_000)
    prompt = _result(3, "prompt-tuning", 0.2)
    assert best([lora, ia3, prompt]) == ia3
    assert best([lora, prompt]) == lora
    assert best([_result(4, "full", None)]) is None


def test_the_table_aligns_its_columns_and_says_which_won_at_what_cost() -> None:
    results = [
        _result(1, "lora", 0.9, trainable_parameters=4_900_000),
        _result(2, "prompt-tuning", 0.0, interval=(0.0, 0.0)),
        _result(3, "full", None),
    ]
    heading, lora, prompt, full = table_lines(results)
    assert heading.split() == [
        "run", "method", "trainable", "size", "time", "tok/s", "peak", "mem", "score", "[95%]",
        "drift",
    ]  # fmt: skip
    assert lora.split()[:3] == ["1", "lora", "4.9M"] and "90% [80%, 100%]" in lora
    assert "0% [0%, 0%]" in prompt
    # Columns line up: each row is as wide as the heading's cells make it.
    assert len({len(line) for line in (lora, prompt)}) == 1
    assert full.split()[-2:] == ["-", "+0.10"]
    verdict = verdict_lines(results)
    assert verdict[0].startswith("Best: lora (run 1), exact match 90%, 4.9M trainable weights")
    # The prompt tuning run's interval [0%, 0%] is below lora's [80%, 100%]: a clear lead.
    assert not any("overlaps" in line for line in verdict)
    close = verdict_lines([results[0], _result(4, "ia3", 0.85)])
    assert "Its interval overlaps ia3's: on these eval rows that lead may be chance." in close


def test_each_export_a_method_cannot_make_is_refused_with_its_reason() -> None:
    assert export_refusal("LORA", merged=True, gguf_adapter=True) is None
    assert export_refusal(None, merged=True, gguf_adapter=False) is None
    assert export_refusal("IA3", merged=True, gguf_adapter=False) is None
    assert "llama.cpp applies LoRA adapters only" in (
        export_refusal("IA3", merged=False, gguf_adapter=True) or ""
    )
    for merged, gguf_adapter in ((True, False), (False, True)):
        refusal = export_refusal("PROMPT_TUNING", merged=merged, gguf_adapter=gguf_adapter)
        assert refusal is not None and "no weights to merge" in refusal
    assert export_refusal("PROMPT_TUNING", merged=False, gguf_adapter=False) is None


def test_a_sweep_trains_each_method_on_one_snapshot_and_prints_one_table(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    db_path = tmp_path / "t.db"
    db, project = tiny_project(db_path, tiny_model_dir)
    # Rows the train rows (numbers 0 to 15) do not hold.
    add_examples(db, project.id, tiny_task_rows(46)[40:], source="imported", split_mode="eval")
    sweep = ["sweep", "colours", "--methods", "lora,ia3,prompt-tuning", "--max-steps", "4"]
    result = CliRunner().invoke(cli, ["--db", str(db_path), *sweep], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    runs = list_runs(db, project.id)
    assert [run.config["method"] for run in runs] == ["lora", "ia3", "prompt-tuning"]
    assert all(run.status == "completed" for run in runs)
    # One snapshot: the same rows, byte for byte, under each run.
    assert len({run.dataset_hash for run in runs}) == 1
    snapshots = {(Path(run.run_dir or "") / "train.jsonl").read_bytes() for run in runs}
    assert len(snapshots) == 1
    table = result.output[result.output.index("run  method") :].splitlines()
    assert [line.split()[1] for line in table[1:4]] == ["lora", "ia3", "prompt-tuning"]
    # Every run was evaluated, so each row has a score and its interval.
    assert all("%" in line and "[" in line for line in table[1:4])
    assert table[4].startswith("Best: ")
