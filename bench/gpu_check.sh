#!/usr/bin/env bash
# The checks that need a GPU, as one short script for a lent GPU machine (docs/RESULTS.md §2b):
#   1. the whole test suite with the learners' models on CUDA (AGSCL_TEST_DEVICE=cuda: the PPO,
#      classifier and CLI tests, resume equivalence included), on that machine's torch;
#   2. PPO speed on the GPU (bench/atari_sps.py --device cuda): the cpu preset (8 envs x 128
#      steps) and the paper preset (128 envs x 64 steps, 10 epochs x 64 minibatches), each with
#      fine-tuning, AGS-CL and EWC timed interleaved.
# Usage: OUT=dir bash bench/gpu_check.sh   (logs and JSON go to $OUT; PYTHON picks the python).
# Needs gymnasium and ale-py besides torch; on a machine without a package index, carry wheels.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
nvidia-smi -L || true
$PY -c "import torch, ale_py, gymnasium; print('torch', torch.__version__, '| cuda', \
torch.cuda.is_available(), torch.cuda.get_device_name(0), '| ale-py', ale_py.__version__, \
'| gymnasium', gymnasium.__version__)" || exit 1

echo "== 1. the test suite with the learners on CUDA"
xdist=""
$PY -c "import xdist" 2>/dev/null && xdist="-n ${TEST_WORKERS:-8}"
AGSCL_TEST_DEVICE=cuda timeout "${TEST_TIMEOUT:-300}" $PY -m pytest -rfE -p no:cacheprovider $xdist \
    tests/ > "$OUT/tests_cuda.log" 2>&1
echo "pytest rc $?"
tail -n 30 "$OUT/tests_cuda.log"

echo "== 2. PPO speed on the GPU"
timeout 150 $PY bench/atari_sps.py --device cuda --preset cpu --updates 6 \
    --regularizer finetune,agscl,ewc --json "$OUT/sps_cpu_preset.json" 2>&1 \
    | tee "$OUT/sps_cpu_preset.log"
timeout 240 $PY bench/atari_sps.py --device cuda --preset paper --updates 4 --raw-steps 200 \
    --regularizer finetune,agscl,ewc --json "$OUT/sps_paper_preset.json" 2>&1 \
    | tee "$OUT/sps_paper_preset.log"
