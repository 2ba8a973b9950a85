#!/usr/bin/env bash
# The GPU benchmark: tunesmith's training vs plain TRL defaults on a CUDA machine, on the
# embedded model and on a random-weight ~1.5B model (no hub needed). Prints tokens/s, peak
# memory and MFU per side, then the ratio lines. Record the figures in bench/RESULTS.md with
# the date, the machine and this command.
#
#   bench/gpu.sh [STEPS]          (set MODELS="random-tiny" to check the script on a CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STEPS=${1:-20}
MODELS=${MODELS:-"embedded random-1.5b"}
"$PY" -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
for model in $MODELS; do
    "$PY" bench/train_throughput.py --model "$model" --steps "$STEPS" --rounds 1 2>&1 \
        | grep -E '^(ours|baseline|peak memory|train)'
done
