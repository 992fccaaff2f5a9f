"""Small-binary sweep (issue 3: "arbitrary binary never worse than zstd -19 by more than 1%").

Cuts prefixes and middle slices of 256 B .. 64 KiB from binaries found on this machine (ELF
executables, shared libraries, .pyc files, a generated SQLite table; none are committed), codes
each with ``mmz.compress`` at levels 1/5/9 and with ``zstd -19`` / ``xz -9e``, checks every
mmz round trip, and writes one JSON record per slice plus a summary (worst ratio to zstd per
level and size). Whole frames are compared: the container is part of the size. A second group,
``others``, takes a seeded sample of further ELF files the writer's choices were not tuned on.

    .venv/bin/python bench/small_binary_sweep.py [--json out/bench/small_binary.json]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import mmz

SIZES = (256, 1024, 4096, 16384, 65536)
LEVELS = (1, 5, 9)


def _sources(work: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for name in ("git", "python3", "bash", "ls", "tar"):
        p = shutil.which(name)
        if p:
            found[name] = Path(p).resolve().read_bytes()
    for pattern in ("libc.so.6", "libstdc++.so.6", "libcrypto.so.3", "libsqlite3.so.0", "libz.so.1"):
        hits = sorted(glob.glob(f"/usr/lib/x86_64-linux-gnu/{pattern}*")) or sorted(glob.glob(f"/lib*/{pattern}*"))
        if hits:
            found[pattern.split(".so")[0]] = Path(hits[0]).resolve().read_bytes()
    pycs = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("__pycache__/*.pyc"))
    if pycs:
        found["pyc"] = b"".join(p.read_bytes() for p in pycs[:40])
    db = work / "t.sqlite"
    r = random.Random(1)
    c = sqlite3.connect(db)
    c.execute("create table t(id integer primary key, name text, v real, n int)")
    c.executemany("insert into t values(?,?,?,?)",
                  [(i, f"user{r.randrange(100000):05d}", r.random() * 1000, r.randrange(1 << 31)) for i in range(5000)])
    c.commit()
    c.close()
    found["sqlite"] = db.read_bytes()
    return found


def _others(n: int, named: dict[str, bytes]) -> dict[str, bytes]:
    """``n`` more ELF files of this machine (seeded sample), none of the named sources: inputs
    the candidate lists of the writer were not chosen on."""
    paths = sorted(p for p in glob.glob("/usr/bin/*") + glob.glob("/usr/lib/x86_64-linux-gnu/*.so*")
                   if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) > 40_000)
    taken = set(named.values())
    out: dict[str, bytes] = {}
    for p in random.Random(11).sample(paths, min(len(paths), 3 * n)):
        b = Path(p).read_bytes()
        if b[:4] == b"\x7fELF" and b not in taken and len(out) < n:
            out[Path(p).name] = b
    return out


def _tool(cmd: list[str], data: bytes) -> int:
    return len(subprocess.run(cmd, input=data, capture_output=True, check=True).stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default="out/bench/small_binary.json")
    ap.add_argument("--others", type=int, default=40, help="also this many other ELF files (held out)")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = _sources(Path(tmp))
    groups = {"named": sources, "others": _others(args.others, sources)}
    for group, src, blob in ((g, k, v) for g, d in groups.items() for k, v in d.items()):
        for size in SIZES:
            if len(blob) < 2 * size:
                continue
            for where, start in (("head", 0), ("middle", (len(blob) // 2) & ~15)):
                piece = blob[start : start + size]
                rec = {"group": group, "source": src, "slice": where, "bytes": size,
                       "zstd-19": _tool(["zstd", "-19", "-q", "-c"], piece),
                       "xz-9e": _tool(["xz", "-9e", "-c"], piece)}
                for lv in LEVELS:
                    frame = mmz.compress(piece, lv)
                    if mmz.decompress(frame) != piece:
                        raise SystemExit(f"round trip failed: {src} {where} {size} -{lv}")
                    rec[f"mmz-{lv}"] = len(frame)
                rows.append(rec)
                print(json.dumps(rec), file=sys.stderr)
    summary = []
    for group, size in ((g, z) for g in groups for z in SIZES):
        sel = [r for r in rows if r["bytes"] == size and r["group"] == group]
        if not sel:
            continue
        entry = {"group": group, "bytes": size, "slices": len(sel)}
        zstd_total = sum(r["zstd-19"] for r in sel)
        for lv in LEVELS:
            ratios = [r[f"mmz-{lv}"] / r["zstd-19"] for r in sel]
            worst = max(range(len(sel)), key=lambda i: ratios[i])
            entry[f"mmz-{lv}"] = {"worst_vs_zstd": round(ratios[worst], 4),
                                  "worst": f"{sel[worst]['source']}/{sel[worst]['slice']}",
                                  "over_1pct": sum(x > 1.01 for x in ratios),
                                  "total_vs_zstd": round(sum(r[f"mmz-{lv}"] for r in sel) / zstd_total, 4)}
        summary.append(entry)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sizes": SIZES, "rows": rows, "summary": summary}, indent=1))
    for e in summary:
        print(json.dumps(e))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
