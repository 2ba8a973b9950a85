"""Check: llama.cpp answers an exported GGUF as the run answered its eval rows.

Reads the latest evaluation of RUN from the database and asks the GGUF file each eval prompt
greedily through llama.cpp's Python binding (``llama-cpp-python``, not a tunesmith dependency:
run this with an interpreter that has it), then prints how many answers equal the run's own
greedy tuned answers. A project with a system prompt is not handled: the prompts go without.

    python bench/gguf_llama_cpp.py DB RUN FILE.gguf
"""

from __future__ import annotations

import argparse
import sqlite3

from llama_cpp import Llama


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("run", type=int)
    parser.add_argument("gguf")
    arguments = parser.parse_args()
    db = sqlite3.connect(arguments.db)
    (eval_id,) = db.execute(
        "SELECT id FROM evals WHERE run_id = ? ORDER BY id DESC LIMIT 1", [arguments.run]
    ).fetchone()
    items = db.execute(
        "SELECT prompt, tuned_output FROM eval_items WHERE eval_id = ? ORDER BY id", [eval_id]
    ).fetchall()
    model = Llama(model_path=arguments.gguf, n_ctx=2048, verbose=False, seed=0)
    same = 0
    for prompt, tuned in items:
        reply = model.create_chat_completion(
            messages=[{"role": "user", "content": prompt}], temperature=0.0, max_tokens=64
        )
        same += reply["choices"][0]["message"]["content"].strip() == tuned.strip()
    print(f"gguf-llama-cpp: {same}/{len(items)} greedy answers equal to the run's tuned answers")


if __name__ == "__main__":
    main()
