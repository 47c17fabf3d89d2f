#!/usr/bin/env bash
# The checks that need a GPU, as one short script for a lent GPU machine (docs/RESULTS.md §2b):
#   1. the whole test suite with the learners' models on CUDA (AGSCL_TEST_DEVICE=cuda: the PPO,
#      classifier and CLI tests, resume equivalence included), on that machine's torch;
#   2. PPO speed on the GPU (bench/atari_sps.py --device cuda): the cpu preset (8 envs x 128
#      steps) and the paper preset (128 envs x 64 steps, 10 epochs x 64 minibatches), each with
#      fine-tuning, AGS-CL and EWC timed interleaved; the paper preset again with bf16 autocast;
#   3. (SECTIONS=3) the machine's own CPU pinned to 2 cores, cpu preset, float32 and bf16:
#      the issue's 450 SPS target was set on a 2-core CPU with AVX-512-BF16, which this box has
#      and the development box has not.
#   4. (SECTIONS=4) AGS-CL's CUDA graph: its tests on the GPU (tests/test_agscl_cuda.py: graph
#      == eager steps; the Atari CLI runs with AGS-CL, resume equivalence included) and the
#      paper preset timed with fine-tuning, AGS-CL (graph) and agscl-eager interleaved.
#   5. (SECTIONS=5) does bf16 autocast change learning? Fine-tuning on one game (GAME, default
#      Boxing) for STEPS env steps (default 300000), float32 and bf16, seeds 1 and 2, the four
#      runs in parallel on the GPU (PRESET, default paper); then the report's training-score
#      windows of the four. Not part of "all" (it takes most of a 10-minute call).
# SECTIONS="1 2 3" (default "1 2"; "all" = "1 2 3 4") picks the parts; they run in that order.
# Usage: OUT=dir bash bench/gpu_check.sh   (logs and JSON go to $OUT; PYTHON picks the python).
# Needs gymnasium and ale-py besides torch; on a machine without a package index, carry wheels.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
nvidia-smi -L || true
$PY -c "import torch, ale_py, gymnasium; c = torch.cuda.is_available(); print('torch', \
torch.__version__, '| cuda', c, torch.cuda.get_device_name(0) if c else '', '| ale-py', \
ale_py.__version__, '| gymnasium', gymnasium.__version__)" || exit 1

SECTIONS=${SECTIONS:-"1 2"}
[ "$SECTIONS" = all ] && SECTIONS="1 2 3 4"
for s in $SECTIONS; do
  case $s in 1|2|3|4|5) ;; *) echo "unknown section '$s' in SECTIONS='$SECTIONS' (use 1-5)"; exit 2;; esac
done

xdist=""                  # pytest-xdist workers, where installed
$PY -c "import xdist" 2>/dev/null && xdist="-n ${TEST_WORKERS:-8}"

section1() {
echo "== 1. the test suite with the learners on CUDA"
AGSCL_TEST_DEVICE=cuda timeout "${TEST_TIMEOUT:-300}" $PY -m pytest -rfE -p no:cacheprovider $xdist \
    tests/ > "$OUT/tests_cuda.log" 2>&1
echo "pytest rc $?"
tail -n 30 "$OUT/tests_cuda.log"
}

section2() {
echo "== 2. PPO speed on the GPU"
timeout 150 $PY bench/atari_sps.py --device cuda --preset cpu --updates 6 \
    --regularizer finetune,agscl,ewc --json "$OUT/sps_cpu_preset.json" 2>&1 \
    | tee "$OUT/sps_cpu_preset.log"
timeout 240 $PY bench/atari_sps.py --device cuda --preset paper --updates 4 --raw-steps 200 \
    --regularizer finetune,agscl,ewc --json "$OUT/sps_paper_preset.json" 2>&1 \
    | tee "$OUT/sps_paper_preset.log"
timeout 150 $PY bench/atari_sps.py --device cuda --preset paper --updates 4 --skip-raw --bf16 \
    --regularizer finetune --json "$OUT/sps_paper_preset_bf16.json" 2>&1 \
    | tee "$OUT/sps_paper_preset_bf16.log"
}

section3() {
echo "== 3. the CPU of this machine, pinned to 2 cores (cpu preset, no GPU)"
pin=""; command -v taskset >/dev/null && pin="taskset -c 0,1"
for bf in "" "--bf16"; do
  CUDA_VISIBLE_DEVICES="" timeout 200 $pin $PY bench/atari_sps.py --preset cpu --updates 5 \
      --torch-threads 2 --env-threads 2 --regularizer finetune,agscl,ewc $bf \
      --json "$OUT/sps_cpu2${bf:+_bf16}.json" 2>&1 | tee "$OUT/sps_cpu2${bf:+_bf16}.log"
done
}

section4() {
echo "== 4. AGS-CL's CUDA graph"
AGSCL_TEST_DEVICE=cuda timeout 200 $PY -m pytest -rfE -p no:cacheprovider $xdist \
    tests/test_agscl_cuda.py tests/test_cli.py -k "not vision" \
    > "$OUT/tests_graph.log" 2>&1
echo "pytest rc $?"
tail -n 5 "$OUT/tests_graph.log"
timeout 240 $PY bench/atari_sps.py --device cuda --preset paper --updates 5 --skip-raw \
    --regularizer finetune,agscl,agscl-eager --json "$OUT/sps_paper_graph.json" 2>&1 \
    | tee "$OUT/sps_paper_graph.log"
}

section5() {
echo "== 5. bf16 autocast and learning (fine-tuning, ${GAME:-Boxing}, ${STEPS:-300000} steps)"
runs=${RUNS:-/tmp/bf16-check}
rm -rf "$runs"; mkdir -p "$runs"
pids=()
for bf in false true; do
  for seed in 1 2; do
    timeout "${RUN_TIMEOUT:-480}" $PY train.py atari --games "${GAME:-Boxing}" --regularizer \
        finetune --preset "${PRESET:-paper}" --device "${DEVICE:-cuda}" --bf16 $bf --seed $seed \
        --steps-per-task "${STEPS:-300000}" --eval-every "${EVAL_EVERY:-100000}" \
        --eval-episodes 5 --no-progress ${EXTRA_ARGS:-} --out "$runs/bf16-$bf-seed$seed" \
        > "$runs/bf16-$bf-seed$seed.log" 2>&1 &
    pids+=($!)
  done
done
for p in "${pids[@]}"; do wait "$p"; echo "run rc $?"; done
$PY train.py report "$runs"/bf16-*-seed? --window "${WINDOW:-50000}" --out "$runs/report" \
    2>&1 | tee "$OUT/bf16_report.log"
cp "$runs/report/report.json" "$OUT/bf16_report.json" 2>/dev/null
tail -n 3 "$runs"/*.log
}

for s in $SECTIONS; do "section$s"; done
