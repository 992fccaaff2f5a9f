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
$PY - <<'PY'
import json, re, pathlib
doc = json.load(open("out/bench/dev.json"))
md = open("out/bench/dev.md").read()
head = (f"Measured {doc['date']} on {doc['machine']['cpu']} ({doc['machine']['cores']} cores, "
        f"load {doc['machine']['loadavg_start'][0]:.1f}) with `{doc['command']}`; mmz {doc['mmz_version']}. "
        f"Tools: " + ", ".join(f"{k} ({v})" for k, v in doc["tools"].items()) + ".\n\n")
p = pathlib.Path("docs/BENCHMARKS.md")
text = p.read_text()
new = "<!-- headline:begin -->\n" + head + md + "\n<!-- headline:end -->"
text = re.sub(r"<!-- headline:begin -->.*<!-- headline:end -->", lambda _: new, text, flags=re.S)
p.write_text(text)
print("updated docs/BENCHMARKS.md")
PY
$PY bench/readme_summary.py out/bench/dev.json README.md
