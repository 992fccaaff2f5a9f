#!/usr/bin/env bash
# Regenerate the headline benchmark (docs/BENCHMARKS.md tables + docs/img plots) from the dev corpus.
# Usage: bench/run_all.sh [CORPUS_DIR] [extra mmz bench args, e.g. --sample 8]
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS="${1:-../shared/corpus/dev}"; shift || true
PY=.venv/bin/python
mkdir -p out/bench docs/img
$PY -m mmz bench "$CORPUS" --group-by folder --json out/bench/dev.json --markdown out/bench/dev.md \
    --plot docs/img "$@"
$PY bench/headline_docs.py out/bench/dev.json out/bench/dev.md
$PY bench/readme_summary.py out/bench/dev.json README.md
