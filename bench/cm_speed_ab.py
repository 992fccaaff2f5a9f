"""Alternating A/B timing of two `cm_speed` example binaries (per-core CPU time).

Each round runs every binary once per file (compress + decompress, one chunk
per file, as `cargo run --release -p mmz-core --example cm_speed -- LEVEL 1 FILE`
does) in alternating order, so load changes on the shared machine hit both
alike. Writes one JSON line per run and one summary line per (binary, file)
with the median and min MB per CPU second.

Usage: python bench/cm_speed_ab.py --bin main=/path/a --bin new=/path/b
       [--level 5] [--rounds 3] [--mod text] --out docs/results/cm_speed_v3b.jsonl FILE...
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", required=True, help="name=path of a cm_speed binary")
    ap.add_argument("--level", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mod", default="text", help="chunk modality (CM_MOD)")
    ap.add_argument("--out", required=True)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    bins = [b.split("=", 1) for b in a.bin]
    env = dict(os.environ, CM_MOD=a.mod)
    runs: dict[tuple[str, str], list[dict]] = {}
    with open(a.out, "a") as out:
        for r in range(a.rounds):
            order = bins if r % 2 == 0 else bins[::-1]
            for f in a.files:
                for name, path in order:
                    p = subprocess.run(
                        ["nice", "-n", "10", path, str(a.level), "1", f],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    row = json.loads(p.stdout.splitlines()[0])
                    row.update(binary=name, round=r, mod=a.mod, time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    runs.setdefault((name, f), []).append(row)
        for (name, f), rows in runs.items():
            c = [x["comp_MBps"] for x in rows]
            d = [x["decomp_MBps"] for x in rows]
            s = {
                "summary": True,
                "binary": name,
                "file": f,
                "level": a.level,
                "mod": a.mod,
                "rounds": len(rows),
                "comp_bytes": rows[0]["comp_bytes"],
                "bytes": rows[0]["bytes"],
                "comp_MBps_median": statistics.median(c),
                "comp_MBps_max": max(c),
                "decomp_MBps_median": statistics.median(d),
                "decomp_MBps_max": max(d),
            }
            out.write(json.dumps(s) + "\n")
            print(json.dumps(s))


if __name__ == "__main__":
    main()
