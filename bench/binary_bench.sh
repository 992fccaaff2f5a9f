#!/usr/bin/env bash
# Binary-data benchmark (issue 3: "arbitrary binary never worse than zstd -19 by more than 1%").
# The dev corpus has no binary folder, so this assembles inputs from the machine it runs on (nothing
# here is committed): an ELF executable and its first 4 KiB, a shared library, a tar of CPython .pyc
# files, an SQLite table of generated rows, random bytes (1 MiB and 100 B) and an .xz file; one
# folder per input, then `mmz bench` against zstd -19 and xz -9e at the three presets.
# Usage: bench/binary_bench.sh [OUT_JSON]   (default out/bench/binary.json; Markdown beside it)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
out=${1:-out/bench/binary.json}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

elf=$(command -v git)
lib=$("$PY" - <<'EOF'
import glob
cands = sorted(glob.glob("/usr/lib/x86_64-linux-gnu/libstdc++.so.6*") + glob.glob("/usr/lib*/libstdc++.so.6*"))
print(next((c for c in cands if not c.endswith(".py")), ""))
EOF
)
add() { mkdir -p "$work/$1"; cp -L "$2" "$work/$1/$3"; }
add git "$elf" git.elf
head -c 4096 "$elf" > "$work/git_head4k.elf.tmp" && add git_head4k "$work/git_head4k.elf.tmp" git_head4k.elf
[ -n "$lib" ] && add libstdcxx "$lib" libstdcxx.so
"$PY" - "$work" <<'EOF'
import pathlib, random, sqlite3, sys, sysconfig, tarfile
w = pathlib.Path(sys.argv[1])
for d in ("pyc", "table", "random_1MB", "random_100B", "xz"):
    (w / d).mkdir(exist_ok=True)
pycs = sorted(pathlib.Path(sysconfig.get_paths()["stdlib"]).glob("__pycache__/*.pyc"))[:150]
with tarfile.open(w / "pyc" / "pyc.tar", "w") as t:
    for p in pycs:
        t.add(p, arcname=p.name)
r = random.Random(1)
c = sqlite3.connect(w / "table" / "table.sqlite")
c.execute("create table t(id integer primary key, name text, v real, n int)")
c.executemany("insert into t values(?,?,?,?)",
              [(i, "user%05d" % r.randrange(100000), r.random() * 1000, r.randrange(1 << 31)) for i in range(30000)])
c.commit()
c.close()
(w / "random_1MB" / "random_1MB.bin").write_bytes(random.Random(7).randbytes(1 << 20))
(w / "random_100B" / "random_100B.bin").write_bytes(random.Random(8).randbytes(100))
EOF
xz -9 -c data/sample/text/debian_handbook_en.txt > "$work/xz/handbook.txt.xz"
rm -f "$work/git_head4k.elf.tmp"
mkdir -p "$(dirname "$out")"
"$PY" -m mmz bench "$work" --group-by folder --methods zstd-19 xz-9e mmz-fast mmz-default mmz-max \
    --no-all-threads --json "$out" --markdown "${out%.json}.md" -q
cat "${out%.json}.md"
