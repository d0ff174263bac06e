#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, start a local fleet, back up a live
# database with --mode both, restore it with BulkLoad and with range files, and print the verdict.
# Options go to scripts/demo.py (e.g. --keys 1000000, --storage file, --keep).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh
exec python scripts/demo.py "$@"
