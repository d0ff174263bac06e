#!/usr/bin/env bash
# Run the whole test gate: lint, type-check (strict on the core and the stand-in), and the test suite (real Redis, S3
# endpoint, embedded clusters and Celery workers are started by the tests themselves).
# Extra arguments go to pytest, e.g. scripts/test.sh -k container -x
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh
echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy (strict on every package)"
mypy fdbcore embedded_cluster workers tasks config cli deploy/local/fleet.py scripts/demo.py benchmarks
echo "== pytest"
python -m pytest "$@"
