# Sourced by the experiment scripts (needs PY): run_once runs one train.py run unless it is
# complete, resuming it when it has a checkpoint; a failed run (e.g. a NaN stop) is recorded in
# FAILED and the others go on; report_failures names them at the end (status 1 if any).
FAILED=()

run_once() {    # run_once DIR train.py-arguments...
  local dir=$1; shift
  if [ -f "$dir/results.json" ] && grep -q '"status": "complete"' "$dir/results.json"; then
    return 0
  fi
  local resume=""
  [ -f "$dir/checkpoints/last.pt" ] && resume="--resume"
  $PY train.py "$@" --out "$dir" $resume \
    || { echo "$dir: train.py exited with $?; going on with the others" >&2; FAILED+=("$dir"); }
}

report_failures() {
  if [ ${#FAILED[@]} -gt 0 ]; then
    echo "failed runs (see each one's error above; a fix is named there): ${FAILED[*]}" >&2
    return 1
  fi
}
