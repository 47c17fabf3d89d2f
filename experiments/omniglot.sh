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
source experiments/lib.sh
for seed in $SEEDS; do
  for m in $METHODS; do
    run_once "$OUT/$m-s$seed" vision --benchmark omniglot --data-dir "$DATA" --regularizer "$m" \
      --epochs "$EPOCHS" --seed "$seed" --threads 1 --no-progress
  done
done
$PY train.py report "$OUT"/*-s* --out "$OUT/report"
report_failures
