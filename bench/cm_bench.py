"""Benchmark of the context-mixing engine (codec ``cm``) on the dev corpus.

For each dev folder a deterministic subset is used (``--mb`` MB per folder):
image/audio files whole, in name order, until the budget is reached; byte
modalities as the head of every file (budget split evenly). Images go through
``mmz.transform.forward`` (PNG -> raw pixels), audio through
``mmz.transform.describe``; chunks and hints are cut exactly as ``mmz.compress``
does. bits/byte = 8 x compressed / raw bytes (raw pixel/PCM bytes for images
and audio, as in baselines.tsv). Speeds are MB of stream per CPU second of
this single thread (per core), compress and decompress. xz-9e is re-measured
on the same subset (byte modalities); flac-8 / jxl-d0-e9 / xz-9e full-folder
numbers come from baselines.tsv; flac -8 and cjxl -d 0 -e 9 are re-run on the
same subset files when installed.

With ``--full`` the byte folders are used whole (every file, every byte) and
the ratio is taken against the full-folder xz -9e size of baselines.tsv
(``ratio_vs_xz9e``); ``--markdown`` also writes the table of the run.

Usage: python bench/cm_bench.py [--mb 2] [--levels 1,5,9] [--out out/bench/cm.json]
       python bench/cm_bench.py --full --levels 5,9 --folders text,gene,structured --out out/bench/cm_full.json
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import lzma
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from mmz import _core
from mmz import codec as _codec
from mmz.transform import HEAD_BYTES, clip_regions, describe, forward

CORPUS = Path("/work/shared/corpus")
MEDIA = {"image": "image", "medical": "image", "speech": "audio", "music": "audio"}


def baselines(column: str = "bits_per_byte") -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with open(CORPUS / "baselines.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["set"] == "dev" and row[column]:
                out.setdefault(row["modality"], {})[row["method"]] = float(row[column])
    return out


def whole(folder: Path) -> list[tuple[str, bytes, tuple, int, str, Path]]:
    """Every file of a byte-modality folder, whole."""
    items = []
    for p in sorted(q for q in folder.iterdir() if q.is_file()):
        data = p.read_bytes()
        items.append((p.name, data, (), len(data), folder.name, p))
    return items


def subset(folder: Path, budget: int) -> list[tuple[str, bytes, tuple, int, str]]:
    """(name, stream, regions, raw_bytes, modality) of the folder's subset."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    mod = MEDIA.get(folder.name, folder.name)
    items = []
    if folder.name in MEDIA:
        # a deterministic pseudo-random order, so the subset spans the folder
        files.sort(key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
        used = 0
        for p in files:
            if used >= budget:
                break
            data = p.read_bytes()
            if mod == "image":
                t = forward(data, "image")
                stream, regions = t.stream, t.regions
            else:
                stream, regions = data, clip_regions(describe(data[:HEAD_BYTES], "audio"), len(data))
            raw = sum(r.length for r in regions) or len(stream)
            items.append((p.name, stream, regions, raw, mod, p))
            used += raw
    else:
        per = budget // max(1, len(files))
        for p in files:
            with open(p, "rb") as f:
                data = f.read(per)
            items.append((p.name, data, (), len(data), mod, p))
    return items


def external(items, kind: str) -> float | None:
    """bits/byte of flac -8 (audio) or cjxl -d 0 -e 9 (images) on the same subset files."""
    tool = {"audio": "flac", "image": "cjxl"}[kind]
    if shutil.which(tool) is None:
        return None
    comp = raw = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x"
        for item in items:
            path = item[5]
            cmd = (["flac", "-8", "--no-padding", "-s", "-f", "-o", str(out), str(path)] if kind == "audio"
                   else ["cjxl", "-d", "0", "-e", "9", "--quiet", str(path), str(out)])
            subprocess.run(cmd, check=True, capture_output=True)
            comp += out.stat().st_size
            raw += item[3]
    return round(8 * comp / raw, 4)


def run_level(items, level: int) -> dict[str, float]:
    comp = 0
    raw = 0
    nbytes = 0
    tc = td = 0.0
    versions: set[int] = set()
    chunk = _codec.default_chunk_size(level)
    for _name, stream, regions, raw_bytes, mod, _path in items:
        raw += raw_bytes
        nbytes += len(stream)
        for start in range(0, len(stream), chunk):
            end = min(len(stream), start + chunk)
            hint = _codec.chunk_hint(mod, regions, start, end)
            t0 = time.process_time()
            rec = _core.encode_chunk(stream[start:end], "cm", level, hint)
            t1 = time.process_time()
            out = _core.decode_chunk(rec[:64], rec[64:])
            t2 = time.process_time()
            if out != stream[start:end]:
                raise SystemExit(f"round trip failed: {_name} level {level}")
            comp += len(rec) - 64
            if len(rec) > 64:
                versions.add(rec[64])
            tc += t1 - t0
            td += t2 - t1
    return {
        "bits_per_byte": round(8 * comp / raw, 4),
        "comp_MBps": round(nbytes / 1e6 / max(tc, 1e-9), 3),
        "decomp_MBps": round(nbytes / 1e6 / max(td, 1e-9), 3),
        "comp_bytes": comp,
        "cm_payload_versions": sorted(versions),
        "chunk_bytes": chunk,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=2.0, help="MB per dev folder")
    ap.add_argument("--levels", default="1,5,9")
    ap.add_argument("--folders", default="text,structured,gene,image,medical,speech,music")
    ap.add_argument("--out", default="out/bench/cm.json")
    ap.add_argument("--no-external", action="store_true", help="skip flac/cjxl on the subset")
    ap.add_argument("--full", action="store_true",
                    help="whole byte-modality folders; ratio vs the full-folder xz -9e of baselines.tsv")
    ap.add_argument("--markdown", help="also write the results as a markdown table here")
    args = ap.parse_args()
    base = baselines()
    levels = [int(x) for x in args.levels.split(",")]
    if args.full:
        full_folder(args, levels, base)
        return
    results = {"subset_mb_per_folder": args.mb, "levels": levels, "folders": {}}
    for name in args.folders.split(","):
        items = subset(CORPUS / "dev" / name, int(args.mb * 1e6))
        raw = sum(i[3] for i in items)
        entry: dict = {"files": len(items), "raw_bytes": raw, "stream_bytes": sum(len(i[1]) for i in items)}
        if name in MEDIA and not args.no_external:
            key = "flac8_subset_bpb" if MEDIA[name] == "audio" else "jxl_d0_e9_subset_bpb"
            entry[key] = external(items, MEDIA[name])
            print(f"{name:11} {key}={entry[key]}", flush=True)
        if name not in MEDIA:
            xz = sum(len(lzma.compress(i[1], preset=9 | lzma.PRESET_EXTREME)) for i in items)
            entry["xz9e_subset_bpb"] = round(8 * xz / raw, 4)
            print(f"{name:11} xz9e_subset_bpb={entry['xz9e_subset_bpb']}", flush=True)
        entry["baselines_full_folder"] = {k: v for k, v in base.get(name, {}).items()
                                          if k in ("xz-9e", "flac-8", "jxl-d0-e9", "zpaq-m5", "7z-ppmd")}
        for level in levels:
            entry[f"L{level}"] = run_level(items, level)
            r = entry[f"L{level}"]
            print(f"{name:11} L{level} bpb={r['bits_per_byte']:.4f} comp={r['comp_MBps']:.2f} MB/s "
                  f"decomp={r['decomp_MBps']:.2f} MB/s", flush=True)
        results["folders"][name] = entry
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


def full_folder(args, levels: list[int], base: dict[str, dict[str, float]]) -> None:
    """The ``--full`` mode: whole byte folders, sizes summed over every file."""
    xz_bytes = baselines("comp_bytes")
    xz_raw = baselines("raw_bytes")
    results: dict = {"mode": "full_folder", "levels": levels, "folders": {},
                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    rows = []
    for name in args.folders.split(","):
        if name in MEDIA:
            raise SystemExit(f"--full covers byte folders only, not {name}")
        items = whole(CORPUS / "dev" / name)
        raw = sum(i[3] for i in items)
        xz = xz_bytes.get(name, {}).get("xz-9e")
        if xz is None or int(xz_raw[name]["xz-9e"]) != raw:
            raise SystemExit(f"{name}: baselines.tsv has no xz-9e row for these {raw} bytes")
        entry: dict = {"files": len(items), "raw_bytes": raw, "xz9e_bytes": int(xz),
                       "xz9e_bpb": round(8 * xz / raw, 4)}
        for level in levels:
            r = run_level(items, level)
            r["ratio_vs_xz9e"] = round(r["comp_bytes"] / xz, 4)
            entry[f"L{level}"] = r
            rows.append((name, len(items), raw, int(xz), level, r))
            print(f"{name:11} L{level} bytes={r['comp_bytes']} bpb={r['bits_per_byte']:.4f} "
                  f"ratio={r['ratio_vs_xz9e']:.4f} comp={r['comp_MBps']:.3f} MB/s "
                  f"decomp={r['decomp_MBps']:.3f} MB/s", flush=True)
        results["folders"][name] = entry
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    if args.markdown:
        lines = ["| folder | files | raw bytes | xz -9e bytes | level | CM bytes | bits/byte | ratio vs xz -9e | "
                 "compress MB/s | decompress MB/s | payload version |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for name, files, raw, xz, level, r in rows:
            ver = ",".join(str(v) for v in r["cm_payload_versions"])
            lines.append(f"| {name} | {files} | {raw:,} | {xz:,} | {level} | {r['comp_bytes']:,} | "
                         f"{r['bits_per_byte']:.4f} | {r['ratio_vs_xz9e']:.4f} | {r['comp_MBps']:.3f} | "
                         f"{r['decomp_MBps']:.3f} | v{ver} |")
        md = Path(args.markdown)
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text("\n".join(lines) + "\n")
        print(f"wrote {md}")


if __name__ == "__main__":
    main()
