"""Benchmarks: answers through the model server vs a bare ``model.generate`` loop, the first
token of a chat's next turn, and the memory of serving base + tuned vs loading one model.

Both sides answer the same demo prompts greedily with the embedded model, in turn. The server
side streams through ``trainer.control.client`` over loopback HTTP with a LoRA adapter attached
(answering as ``base``, adapters disabled); the baseline is ``generate`` in this process.
Memory is the peak resident size (VmHWM) of the server process vs a child that loads the
model once and answers the same prompt. The first token of each next turn of a growing
conversation comes from the server (which keeps the conversation's keys and values) against
``generate`` reading the whole conversation. Prints, last:

    generate: ours X tok/s, baseline Y tok/s, ratio R
    first-token: ours X ms, baseline Y ms, ratio R
    compare-memory: ours X MiB, baseline Y MiB, ratio R

    python bench/generate.py [--prompts N] [--max-tokens T]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEMO = Path(__file__).resolve().parent.parent / "examples" / "support_emails.jsonl"
BASELINE_PEAK = """
import sys, torch
from trainer.models import DEFAULT_BASE_MODEL, load_base_model
model, tokenizer = load_base_model(DEFAULT_BASE_MODEL, on_status=lambda m: None)
messages = [{"role": "user", "content": sys.argv[1]}]
inputs = tokenizer.apply_chat_template(
    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
)
with torch.inference_mode():
    model.generate(**inputs, max_new_tokens=int(sys.argv[2]), do_sample=False)
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""


def peak_kib(pid: int) -> int:
    """The peak resident set size of a live process, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0])


def make_adapter(folder: Path) -> None:
    """Save an untrained LoRA adapter of the embedded model (enough to exercise switching)."""
    from peft import LoraConfig, get_peft_model

    from trainer.models import DEFAULT_BASE_MODEL, load_base_model

    model, tokenizer = load_base_model(DEFAULT_BASE_MODEL, on_status=lambda message: None)
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(str(folder))
    tokenizer.save_pretrained(folder)


def first_tokens(base_url: str, api_key: str | None, prompts: list[str]) -> tuple[float, float]:
    """Median seconds to the first token of each next turn of one conversation: through the
    server, and from ``generate`` reading the whole conversation in this process."""
    import statistics

    import torch

    from trainer.control.client import stream_chat
    from trainer.models import DEFAULT_BASE_MODEL, load_base_model

    model, tokenizer = load_base_model(DEFAULT_BASE_MODEL, on_status=lambda message: None)
    conversation: list[dict[str, str]] = []
    ours, baseline = [], []
    for turn, prompt in enumerate(prompts * 2):
        conversation.append({"role": "user", "content": prompt})
        start = time.perf_counter()
        pieces = stream_chat(base_url, api_key, "base", conversation, max_tokens=24)
        first = next(pieces)
        seconds = time.perf_counter() - start
        answer = first + "".join(pieces)
        inputs: Any = tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=1, do_sample=False)  # type: ignore[operator]
        if turn:  # the first turn has no earlier conversation to reuse
            ours.append(seconds)
            baseline.append(time.perf_counter() - start)
        conversation.append({"role": "assistant", "content": answer})
    return statistics.median(ours), statistics.median(baseline)


def main() -> None:
    """Measure both benchmarks and print their lines."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    import torch

    from trainer.control.client import stream_chat
    from trainer.control.launch import start_server
    from trainer.models import DEFAULT_BASE_MODEL, load_base_model

    rows = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines()]
    prompts = [row["messages"][0]["content"] for row in rows[: args.prompts]]
    model, tokenizer = load_base_model(DEFAULT_BASE_MODEL, on_status=print)

    def bare(prompt: str) -> tuple[int, float]:
        messages = [{"role": "user", "content": prompt}]
        inputs: Any = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        start = time.perf_counter()
        with torch.inference_mode():
            output: Any = model.generate(  # type: ignore[operator]
                **inputs, max_new_tokens=args.max_tokens, do_sample=False
            )
        return output.shape[1] - inputs["input_ids"].shape[1], time.perf_counter() - start

    with tempfile.TemporaryDirectory() as scratch:
        adapter = Path(scratch) / "adapter"
        make_adapter(adapter)
        with start_server(DEFAULT_BASE_MODEL, adapters={"run-1": adapter}) as server:

            def served(prompt: str, model_name: str = "base") -> tuple[int, float]:
                start = time.perf_counter()
                text = "".join(
                    stream_chat(
                        server.base_url,
                        server.api_key,
                        model_name,
                        [{"role": "user", "content": prompt}],
                        max_tokens=args.max_tokens,
                    )
                )
                return len(tokenizer(text)["input_ids"]), time.perf_counter() - start

            served(prompts[0])
            bare(prompts[0])
            ours_tokens = ours_seconds = base_tokens = base_seconds = 0.0
            for prompt in prompts:
                tokens, seconds = served(prompt)
                ours_tokens, ours_seconds = ours_tokens + tokens, ours_seconds + seconds
                tokens, seconds = bare(prompt)
                base_tokens, base_seconds = base_tokens + tokens, base_seconds + seconds
            served(prompts[0], "run-1")
            # Base and tuned both answered, so both are resident in the server's peak.
            served_peak = peak_kib(server.process.pid)
            # After the peak: a long conversation's keys and values are not part of it.
            ours_first, base_first = first_tokens(server.base_url, server.api_key, prompts)
        one_model = subprocess.run(
            [sys.executable, "-c", BASELINE_PEAK, prompts[0], str(args.max_tokens)],
            capture_output=True,
            text=True,
            check=True,
        )
        single_peak = int(one_model.stdout.strip().splitlines()[-1])
    ours_rate, base_rate = ours_tokens / ours_seconds, base_tokens / base_seconds
    print(
        f"generate: ours {ours_rate:.1f} tok/s, baseline {base_rate:.1f} tok/s, "
        f"ratio {ours_rate / base_rate:.2f}"
    )
    # Less time is better, so the ratio is baseline over ours.
    print(
        f"first-token: ours {ours_first * 1000:.0f} ms, baseline {base_first * 1000:.0f} ms,"
        f" ratio {base_first / ours_first:.2f}"
    )
    # Less memory is better, so the ratio is baseline over ours.
    print(
        f"compare-memory: ours {served_peak / 1024:.0f} MiB, baseline {single_peak / 1024:.0f}"
        f" MiB, ratio {single_peak / served_peak:.2f}"
    )


if __name__ == "__main__":
    main()
