#!/usr/bin/env bash
# Issue 26's GPU check, the device machine's side: installs the carried wheels of what its python lacks
# (diffusers, gsplat, open_clip and their missing needs; never open3d: 100 MB), then runs
# `scripts/gpu_check.py run` (steps and results: that file's docstring). On a machine without CUDA it
# runs the steps that need none and skips the others with the reason.
#
#   scripts/gpu_check.sh [OUT_DIR]     OUT_DIR defaults to $OUT (the device tool's) or build/gpu_check
#
# Environment: PYTHON (default python3), GPU_CHECK_WHEELS (default .gpucheck/wheels),
# GPU_CHECK_BUDGET_S (the run's time budget, default 420), GPU_CHECK_ARGS (extra arguments, e.g. --quick).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${1:-${OUT:-build/gpu_check}}
WHEELS=${GPU_CHECK_WHEELS:-.gpucheck/wheels}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-/tmp/gpu_check_torch_extensions}
missing=$($PY - <<'PY'
import importlib.util
print(" ".join(m for m in ("gsplat", "diffusers", "open_clip", "ftfy") if importlib.util.find_spec(m) is None))
PY
)
if [[ -n "$missing" ]]; then
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "gpu_check: $missing missing and no wheels in $WHEELS (see README, GPU paths)" >&2
    exit 2
  fi
  start=$EPOCHREALTIME
  SITE=/tmp/gpu_check_site
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl \
    || { echo "gpu_check: wheel install failed" >&2; exit 2; }
  export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
  echo "{\"step\": \"install_wheels\", \"status\": \"ok\", \"installed_for\": \"$missing\", \"seconds\": $($PY -c "print(round($EPOCHREALTIME - $start, 2))")}" \
    | tee -a "$OUT_DIR/gpu_check.jsonl"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
# shellcheck disable=SC2086  # GPU_CHECK_ARGS is a list of arguments
$PY scripts/gpu_check.py run --out "$OUT_DIR" --budget-s "${GPU_CHECK_BUDGET_S:-420}" ${GPU_CHECK_ARGS:-}
