"""Compress and verify every file under the given paths and print a result table.

``python -m mmz.demo data/sample`` is what ``make run`` falls back to without
Ray; ``make roundtrip-all`` runs it over the whole dev corpus. Exit status 1
if any round trip is not byte-exact.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import mmz
from mmz import codec as _codec
from mmz.bench.table import format_table


def iter_files(paths: list[str]) -> list[Path]:
    """Regular files under ``paths`` in sorted order (metadata files skipped)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix not in (".tsv", ".md"))
    return out


def run_file(path: Path, level: int, codec: str, threads: int) -> dict[str, object]:
    """Compress, decompress and compare one file; returns a table row."""
    data = path.read_bytes()
    t0 = time.perf_counter()
    blob = mmz.compress(data, level=level, codec=codec, name=str(path), threads=threads)
    t1 = time.perf_counter()
    back = mmz.decompress(blob, threads=threads)
    t2 = time.perf_counter()
    info = mmz.frame_info(blob)
    return {
        "file": str(path),
        "modality": info["modality"],
        "bytes": len(data),
        "compressed": len(blob),
        "bits_per_byte": 8.0 * len(blob) / max(1, len(data)),
        "compress_kBps": len(data) / 1e3 / max(1e-9, t1 - t0),
        "decompress_kBps": len(data) / 1e3 / max(1e-9, t2 - t1),
        "roundtrip_ok": back == data,
        "seconds": t1 - t0,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m mmz.demo", description=__doc__)
    p.add_argument("paths", nargs="+")
    p.add_argument("-l", "--level", type=int, default=_codec.DEFAULT_LEVEL)
    p.add_argument("--codec", default="auto", choices=_codec.CODECS)
    p.add_argument("-T", "--threads", type=int, default=0)
    p.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    args = p.parse_args(argv)
    files = iter_files(args.paths)
    if not files:
        print(f"no files under {' '.join(args.paths)}", file=sys.stderr)
        return 1
    rows = [run_file(f, args.level, args.codec, args.threads) for f in files]
    print(format_table(rows))
    bad = [r["file"] for r in rows if not r["roundtrip_ok"]]
    print(f"round trip: {len(rows) - len(bad)}/{len(rows)} byte-exact" + (f"; FAILED: {bad}" if bad else ""))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump({"mmz_version": mmz.__version__, "level": args.level, "codec": args.codec,
                       "rows": rows}, fh, indent=1)
    return 0 if all(r["roundtrip_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
