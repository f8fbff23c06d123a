#!/usr/bin/env bash
# Runs the whole pytest suite in the venv. Pytest's exit 5 ("no tests collected") is turned into a
# failure with a message: a suite that ran nothing must never pass as green.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "run_tests: pytest collected no tests; treating that as a failure" >&2
  exit 1
fi
exit $rc
