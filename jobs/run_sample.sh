#!/usr/bin/env bash
# `make run`: start a private local Ray head (2 CPUs), submit the compress job on data/sample,
# verify the archive with the verify job, print the result table, and stop the head it started
# (also on failure). The head runs as `ray start --head --block` in the background and is stopped by
# signalling that process, which shuts down exactly this head (unlike `ray stop`, which would also stop
# other Ray clusters on a shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
export PATH="$VENV/bin:$PATH"        # the job's `python` and every worker use the venv with mmz installed
export RAY_AUTH_MODE=disabled        # private single-machine head bound to 127.0.0.1
PY="$VENV/bin/python"
SRC=${SRC:-$ROOT/data/sample}
OUT=${OUT:-$ROOT/out/sample.mmza}
STATS="${OUT%.mmza}.stats.json"
WORKERS=${WORKERS:-2}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
DASH=${DASHBOARD_PORT:-$(free_port)}
TMP=$(mktemp -d /tmp/mmzrun.XXXXXX)
HEAD=""
cleanup() {
    if [ -n "$HEAD" ] && kill -0 "$HEAD" 2>/dev/null; then
        echo "== stopping the Ray head (pid $HEAD)"
        kill -TERM "$HEAD" 2>/dev/null || true
        wait "$HEAD" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

echo "== starting a local Ray head (2 CPUs, dashboard 127.0.0.1:$DASH)"
setsid ray start --head --block --num-cpus 2 --disable-usage-stats --port 0 \
    --dashboard-host 127.0.0.1 --dashboard-port "$DASH" --temp-dir "$TMP" >"$TMP/head.log" 2>&1 &
HEAD=$!
for _ in $(seq 120); do
    if "$PY" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$DASH/api/version', timeout=2)" 2>/dev/null; then
        break
    fi
    kill -0 "$HEAD" 2>/dev/null || { cat "$TMP/head.log"; echo "ray head failed to start" >&2; exit 1; }
    sleep 1
done

mkdir -p "$(dirname "$OUT")"
rm -rf "$OUT"
SUBMIT=(ray job submit --address "http://127.0.0.1:$DASH" --working-dir . --runtime-env jobs/runtime_env.yaml --)
echo "== compress job"
"${SUBMIT[@]}" python jobs/compress_corpus.py --input "$SRC" --output "$OUT" --workers "$WORKERS" --stats "$STATS"
echo "== verify job"
"${SUBMIT[@]}" python jobs/verify_corpus.py --archive "$OUT"
echo "== $OUT (compressed by $WORKERS Ray actors; KB/s = per-member compress speed on one CPU)"
"$PY" - "$STATS" <<'PYEOF'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
try:
    from mmz.bench.table import print_table
except ImportError:
    def print_table(rows):
        for r in rows:
            print(r["file"], r["modality"], r["bytes"], r["compressed"], f'{8 * r["compressed"] / max(1, r["bytes"]):.3f}')
print_table(rows)
PYEOF
