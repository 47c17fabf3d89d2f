#!/usr/bin/env bash
# The CPU-scale continual Atari result of docs/RESULTS.md: fine-tuning, EWC and AGS-CL on one
# 3-game stream with the same seed, then the report (Figure 7).
#   bash experiments/atari_cpu.sh [STEPS_PER_TASK] [OUT]
# Re-running it resumes unfinished runs from their checkpoints.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-61440}
OUT=${2:-runs/atari-cpu}
PY=${PY:-.venv/bin/python}
GAMES=${GAMES:-StarGunner,DemonAttack,NameThisGame}
EXTRA=${EXTRA:-"--eval-episodes 5 --eval-max-steps 3000 --eval-every 20480 --threads 1 --env-threads 1"}
pids=()
for m in finetune ewc agscl; do
  dir="$OUT/$m"
  if [ -f "$dir/results.json" ] && grep -q '"status": "complete"' "$dir/results.json"; then
    continue
  fi
  resume=""; [ -f "$dir/checkpoints/last.pt" ] && resume="--resume"
  $PY train.py atari --games "$GAMES" --steps-per-task "$STEPS" --regularizer "$m" --seed 1 \
    --out "$dir" --no-progress $EXTRA $resume > "$OUT.$m.log" 2>&1 &
  pids+=($!)
done
failed=0                  # a failed run (e.g. a NaN stop) does not stop the others
for p in "${pids[@]}"; do wait "$p" || failed=1; done
$PY train.py report "$OUT"/finetune "$OUT"/ewc "$OUT"/agscl --out "$OUT/report"
if [ "$failed" = 1 ]; then
  echo "a run failed: see $OUT.<method>.log (the error names a fix)" >&2
  exit 1
fi
