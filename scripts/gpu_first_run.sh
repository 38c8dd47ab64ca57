#!/bin/bash
# The first GPU run, as is, on one GPU, in under 10 minutes: every GPU path once, one JSON summary.
#
#   bash scripts/gpu_first_run.sh                          # writes gpu_first_run.json
#   bash scripts/gpu_first_run.sh --out /tmp/s.json        # elsewhere
#   bash scripts/gpu_first_run.sh --cpu                    # the same steps as a CPU smoke run
#
# Each step is recorded (ok / skipped / failed, with the error) and the next one runs regardless;
# the exit status is 1 if any step failed. Steps and figures: bench/gpu_first_run.py, docs/training.md.
# PYTHON picks the interpreter (default: the repository's .venv if there is one, else python3).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT" && exec "$PYTHON" bench/gpu_first_run.py "$@"
