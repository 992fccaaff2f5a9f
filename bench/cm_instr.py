"""Instruction count of `cm_speed` binaries (valgrind cachegrind, compress only).

A load-independent companion of bench/cm_speed_ab.py: the machine is shared, so
CPU-time figures move with the load, instruction counts do not.

Usage: python bench/cm_instr.py --bin main=/path/a --bin new=/path/b [--level 5]
       [--head 300000] --out docs/results/cm_speed_v3b.jsonl FILE
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", required=True, help="name=path of a cm_speed binary")
    ap.add_argument("--level", type=int, default=5)
    ap.add_argument("--head", type=int, default=300_000, help="bytes of FILE to compress")
    ap.add_argument("--out", required=True)
    ap.add_argument("file")
    a = ap.parse_args()
    with open(a.file, "rb") as f:
        data = f.read(a.head)
    with tempfile.NamedTemporaryFile(suffix=".bin") as tmp, open(a.out, "a") as out:
        tmp.write(data)
        tmp.flush()
        for name, path in (b.split("=", 1) for b in a.bin):
            env = dict(os.environ, CM_NODEC="1")
            cmd = [
                "nice",
                "-n",
                "10",
                "valgrind",
                "--tool=cachegrind",
                "--cache-sim=no",
                "--cachegrind-out-file=/dev/null",
                path,
                str(a.level),
                "1",
                tmp.name,
            ]
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            m = re.search(r"I\s+refs:\s+([\d,]+)", p.stderr)
            if m is None:
                raise SystemExit(f"no instruction count from valgrind for {path}")
            row = json.loads(p.stdout.splitlines()[0])
            ir = int(m.group(1).replace(",", ""))
            rec = {
                "instr": True,
                "binary": name,
                "file": a.file,
                "head_bytes": len(data),
                "level": a.level,
                "comp_bytes": row["comp_bytes"],
                "instructions": ir,
                "instructions_per_bit": round(ir / (8 * len(data)), 1),
            }
            out.write(json.dumps(rec) + "\n")
            print(json.dumps(rec))


if __name__ == "__main__":
    main()
