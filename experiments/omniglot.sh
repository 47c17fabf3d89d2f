#!/usr/bin/env bash
# The Omniglot result of docs/RESULTS.md: every method, 3 seeds, on the data in DATA
# (default: the real 5-alphabet part in ../shared), then the report.
#   bash experiments/omniglot.sh [DATA] [EPOCHS] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/omniglot}
EPOCHS=${2:-20}
OUT=${3:-runs/omniglot}
PY=${PY:-.venv/bin/python}
METHODS=${METHODS:-"finetune ewc si mas rwalk hat agscl agscl_no_reinit agscl_no_randinit agscl_no_zeroinit"}
SEEDS=${SEEDS:-"0 1 2"}
failed=()                 # a failed run (e.g. a NaN stop) does not stop the others
for seed in $SEEDS; do
  for m in $METHODS; do
    dir="$OUT/$m-s$seed"
    if [ -f "$dir/results.json" ] && grep -q '"status": "complete"' "$dir/results.json"; then
      continue
    fi
    resume=""; [ -f "$dir/checkpoints/last.pt" ] && resume="--resume"
    $PY train.py vision --benchmark omniglot --data-dir "$DATA" --regularizer "$m" \
      --epochs "$EPOCHS" --seed "$seed" --out "$dir" --threads 1 --no-progress $resume \
      || { echo "$dir: train.py exited with $?; going on with the others" >&2; failed+=("$dir"); }
  done
done
$PY train.py report "$OUT"/*-s* --out "$OUT/report"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed runs (see each one's error above; a fix is named there): ${failed[*]}" >&2
  exit 1
fi
