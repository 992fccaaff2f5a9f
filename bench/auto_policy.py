"""Where the neural codec pays: ``--codec neural`` vs ``--codec cm`` by input size and level.

Compresses prefixes of dev text / structured / gene files (16 KiB .. 1 MiB) and whole dev media
files of several sizes with both codecs through the public API (``mmz.compress``), records frame
sizes, wall and CPU seconds, and checks every neural frame round-trips. The table this prints is
what ``codec.NEURAL_AUTO_LIMIT`` (the chunk sizes up to which ``--codec auto`` runs the network) is
chosen from; the JSON goes to ``--out``.

    .venv/bin/python bench/auto_policy.py [--corpus ../shared/corpus/dev] [--levels 5,9]
        [--max-bytes 1048576] [--threads 1] [--folders text,gene] [--sizes 16384,65536]
        [--out out/bench/auto_policy.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import mmz

ROOT = Path(__file__).resolve().parent.parent

#: (folder, file) of byte-stream inputs cut to each prefix size.
PREFIX_FILES = (
    ("text", "debian_handbook_en.txt"), ("text", "perl536_pod.txt"), ("text", "python311_docs_rst.txt"),
    ("structured", "rdatasets_pscl.csv"), ("structured", "rdatasets_Ecdat.csv"),
    ("gene", "ERR127302_1_subset.fastq"), ("gene", "dm3_upstream2000_prefix10MB.fa"),
)
PREFIX_SIZES = (16384, 65536, 262144, 1048576)
#: (folder, file) of media inputs compressed whole (a prefix would not be a valid PNG/WAV).
WHOLE_FILES = (
    ("image", "skimage_rocket.png"), ("image", "plasma_Grey.png"), ("image", "lomiri_friends_by_Aitzol_Berasategi.png"),
    ("medical", "invesalius_cranium_ct_z090.png"), ("medical", "pydicom_MR_small.png"),
    ("speech", "asterisk_number.wav"), ("speech", "asterisk_silence__3.wav"),
    ("music", "hydrogen_Millo_MultiLayered3__sd_02.wav"), ("music", "hydrogen_circAfrique_v4__Djembe4_Bass.wav"),
    ("music", "hydrogen_Millo-Drums_v.1__crash.wav"),
)


def timed(fn, *args, **kw):  # type: ignore[no-untyped-def]
    """``(result, wall seconds, CPU seconds of this process)``."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - w0, time.process_time() - c0


def inputs(corpus: Path, max_bytes: int, sizes: tuple[int, ...] = PREFIX_SIZES) -> list[tuple[str, str, bytes]]:
    """``(folder, label, data)`` for every input that exists under ``corpus``."""
    out = []
    for folder, name in PREFIX_FILES:
        p = corpus / folder / name
        if not p.exists():
            continue
        data = p.read_bytes()
        for n in sizes:
            if n <= max_bytes and n <= len(data):
                out.append((folder, f"{name}[:{n}]", data[:n]))
    for folder, name in WHOLE_FILES:
        p = corpus / folder / name
        if p.exists() and p.stat().st_size <= max_bytes:
            out.append((folder, name, p.read_bytes()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "dev")
    ap.add_argument("--levels", default="5,9")
    ap.add_argument("--max-bytes", type=int, default=1 << 20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--folders", default="", help="comma-separated folders to run (default: all)")
    ap.add_argument("--sizes", default=",".join(map(str, PREFIX_SIZES)), help="prefix sizes in bytes")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "bench" / "auto_policy.json")
    args = ap.parse_args()
    folders = set(filter(None, args.folders.split(",")))
    levels = [int(x) for x in args.levels.split(",")]
    rows = []
    print(f"{'folder':<10} {'input':<46} {'lvl':>3} {'bytes':>9} {'cm':>9} {'neural':>9} {'vs cm':>7} "
          f"{'cm s':>6} {'nn s':>7} {'nn KB/s':>7}", flush=True)
    meta = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "threads": args.threads,
            "mmz_version": mmz.__version__, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sizes = tuple(int(x) for x in args.sizes.split(","))
    for folder, label, data in inputs(args.corpus, args.max_bytes, sizes):
        if folders and folder not in folders:
            continue
        for level in levels:
            cm, cm_wall, cm_cpu = timed(mmz.compress, data, level, codec="cm", name=label, threads=args.threads)
            nn, nn_wall, nn_cpu = timed(mmz.compress, data, level, codec="neural", name=label, threads=args.threads)
            if mmz.decompress(nn, threads=args.threads) != data:
                raise SystemExit(f"{label}: neural frame did not round-trip")
            row = {"folder": folder, "input": label, "level": level, "bytes": len(data), "cm_bytes": len(cm),
                   "neural_bytes": len(nn), "cm_wall_s": cm_wall, "cm_cpu_s": cm_cpu, "neural_wall_s": nn_wall,
                   "neural_cpu_s": nn_cpu, "neural_vs_cm": len(nn) / len(cm) - 1}
            rows.append(row)
            print(f"{folder:<10} {label[:46]:<46} {level:>3} {len(data):>9} {len(cm):>9} {len(nn):>9} "
                  f"{100 * row['neural_vs_cm']:>+6.2f}% {cm_wall:>6.2f} {nn_wall:>7.2f} "
                  f"{len(data) / nn_wall / 1e3:>7.1f}", flush=True)
            meta["load_avg"] = os.getloadavg()
            args.out.write_text(json.dumps(meta, indent=1))  # after every row: a stopped run keeps its rows
    print("wrote", args.out)


if __name__ == "__main__":
    main()
