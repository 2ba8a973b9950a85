#!/usr/bin/env bash
# Runs every benchmark (each ours vs a baseline, side by side) and prints their result lines
# last; the full output of each goes to bench/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p bench/logs
results=()
for bench in train_throughput generate ui_lag time_to_model; do
    [ -f "bench/$bench.py" ] || continue
    echo "running $bench..."
    "$PY" "bench/$bench.py" > "bench/logs/$bench.log" 2>&1
    results+=("$(grep -E '^[a-z-]+: ' "bench/logs/$bench.log" | grep -v '^round' || true)")
done
echo
printf '%s\n' "${results[@]}"
