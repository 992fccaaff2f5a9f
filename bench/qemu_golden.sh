#!/usr/bin/env bash
# Run the neural engine's golden-vector tests (rust/core/src/neural/golden.rs + math tests) under
# qemu user emulation of an SSE-only CPU (Nehalem: portable kernel) and an AVX2 CPU (Haswell: AVX2
# kernel), proving both produce the committed logits/CDF/payload hashes bit for bit.
# Needs Debian qemu-user (`apt-get install qemu-user`). Writes out/bench/qemu_golden.json.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v qemu-x86_64 >/dev/null || { echo "qemu-x86_64 missing: apt-get install qemu-user" >&2; exit 2; }
bin=$(cargo test -p mmz-core --release --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    try: m = json.loads(l)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "mmz_core" \
       and m.get("profile", {}).get("test") and m.get("executable"): print(m["executable"])' | tail -1)
[ -x "$bin" ] || { echo "test binary not found" >&2; exit 2; }
mkdir -p out/bench
results=()
status=0
for cpu in Nehalem Haswell; do
  if out=$(qemu-x86_64 -cpu "$cpu" "$bin" neural:: --test-threads=1 2>&1); then ok=true; else ok=false; status=1; fi
  passed=$(grep -o '[0-9]* passed' <<<"$out" | head -1 || true)
  echo "== $cpu: ok=$ok ($passed)"; grep -E '^test ' <<<"$out" || true
  results+=("\"$cpu\": {\"ok\": $ok, \"summary\": \"$passed\"}")
done
host=$("$bin" neural:: --test-threads=1 2>&1 | grep -o '[0-9]* passed' | head -1)
( IFS=,; echo "{\"binary\": \"$(basename "$bin")\", \"host\": \"$host\", ${results[*]}}" ) > out/bench/qemu_golden.json
cat out/bench/qemu_golden.json
exit $status
