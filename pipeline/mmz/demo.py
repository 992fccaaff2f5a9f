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
    }


def format_table(rows: list[dict[str, object]]) -> str:
    """Aligned text table with per-modality and overall totals."""
    lines = [f"{'file':<48} {'modality':<10} {'bytes':>10} {'compressed':>10} {'bits/byte':>9} "
             f"{'KB/s':>8} {'dec KB/s':>8} ok"]
    for r in rows:
        name = str(r["file"])
        name = name if len(name) <= 48 else "…" + name[-47:]
        lines.append(f"{name:<48} {r['modality']:<10} {r['bytes']:>10} {r['compressed']:>10} "
                     f"{r['bits_per_byte']:>9.3f} {r['compress_kBps']:>8.0f} {r['decompress_kBps']:>8.0f} "
                     f"{'yes' if r['roundtrip_ok'] else 'NO'}")
    groups: dict[str, list[dict[str, object]]] = {}
    for r in rows:
        groups.setdefault(str(r["modality"]), []).append(r)
    lines.append("-" * len(lines[0]))
    for mod, rs in sorted(groups.items()) + [("ALL", rows)]:
        raw = sum(int(r["bytes"]) for r in rs)  # type: ignore[call-overload]
        comp = sum(int(r["compressed"]) for r in rs)  # type: ignore[call-overload]
        secs = sum(int(r["bytes"]) / 1e3 / float(r["compress_kBps"]) for r in rs)  # type: ignore[arg-type]
        dsecs = sum(int(r["bytes"]) / 1e3 / float(r["decompress_kBps"]) for r in rs)  # type: ignore[arg-type]
        ok = all(r["roundtrip_ok"] for r in rs)
        lines.append(f"{'total ' + mod:<48} {'':<10} {raw:>10} {comp:>10} {8 * comp / max(1, raw):>9.3f} "
                     f"{raw / 1e3 / max(1e-9, secs):>8.0f} {raw / 1e3 / max(1e-9, dsecs):>8.0f} "
                     f"{'yes' if ok else 'NO'}")
    return "\n".join(lines)


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
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump({"mmz_version": mmz.__version__, "level": args.level, "codec": args.codec,
                       "rows": rows}, fh, indent=1)
    return 0 if all(r["roundtrip_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
