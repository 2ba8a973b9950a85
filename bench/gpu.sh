#!/usr/bin/env bash
# The GPU benchmark: tunesmith's training vs plain TRL defaults on a CUDA machine, on the
# embedded model and on a random-weight ~1.5B model (no hub needed). Prints tokens/s, peak
# memory and MFU per side, then the ratio lines; then the demo task trained and evaluated by
# the run process, as `tunesmith train` starts it. Record the figures in bench/RESULTS.md with
# the date, the machine and this command.
#
#   bench/gpu.sh [STEPS]
#
# MODELS picks the models ("random-135m random-1.5b" where the embedded model is not
# installed, with TOKENIZER naming a folder of its tokenizer files; "random-tiny" checks the
# script on a CPU), RUN_MODEL the demo run's model ("embedded", or a random shape).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STEPS=${1:-20}
MODELS=${MODELS:-"embedded random-1.5b"}
RUN_MODEL=${RUN_MODEL:-embedded}
tokenizer=(${TOKENIZER:+--tokenizer "$TOKENIZER"})
failed=0
"$PY" -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
# Each part on its own: one that fails is reported and the others still run.
for model in $MODELS; do
    "$PY" bench/train_throughput.py --model "$model" --steps "$STEPS" --rounds 1 "${tokenizer[@]}" \
        2>&1 | grep -E '^(precision|ours|baseline|peak memory|train|Traceback|[A-Za-z]+Error)' \
        || failed=1
done
if [ "$RUN_MODEL" = embedded ]; then
    run=()
else
    run=(--model "$RUN_MODEL")
fi
PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" "$PY" bench/gpu_run.py "${run[@]}" "${tokenizer[@]}" || failed=1
exit $failed
