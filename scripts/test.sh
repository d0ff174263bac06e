#!/usr/bin/env bash
# Run the whole test gate: lint, type-check (strict on the core and the stand-in), and the test suite (real Redis, S3
# endpoint, embedded clusters and Celery workers are started by the tests themselves).
# Extra arguments go to pytest, e.g. scripts/test.sh -k container -x
# Test modules run in FDBBR_TEST_WORKERS pytest-xdist processes (default 3; most of a test's time is spent
# waiting on the servers and workers it starts, so 3 fit on 2 cores); each module stays in one process,
# so module-wide fleets and clusters are shared as written. FDBBR_TEST_WORKERS=0 runs them in this process.
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
python -m pytest -n "${FDBBR_TEST_WORKERS:-3}" --dist loadfile "$@"
