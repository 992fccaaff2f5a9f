"""Tokenizer benchmark: bytes/token per dev modality for each shipped text vocabulary, and speed.

Usage::

    .venv/bin/python bench/tokenizer_bench.py [--corpus /work/shared/corpus] [--max-mb 4] \\
        [--out out/bench/tokenizer.json]

For every text-like file of the dev corpus (at most ``--max-mb`` MB read from each), and for
4K/8K/16K models: tokens, bytes/token, encode and decode MB/s (single thread, wall clock), and
whether the round trip was exact. Files in the validation split are reported separately
(``split`` field) so training-set numbers are not mistaken for held-out ones. The binary
tokenizer is measured once on the same data. Results go to JSON; a table goes to stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "pipeline"))

from mmz.modality import detect  # noqa: E402
from mmz.tokenize import get_tokenizer  # noqa: E402
from mmz.tokenize.split import is_validation  # noqa: E402
from mmz.tokenize.text import available_vocabs, manifest  # noqa: E402


def _files(corpus: Path) -> list[tuple[str, str]]:
    with (corpus / "MANIFEST.tsv").open(newline="") as f:
        return [(r["modality"], r["path"]) for r in csv.DictReader(f, delimiter="\t")
                if r["modality"] in ("text", "structured", "gene")]


def _detection_speed(corpus: Path) -> dict:
    """detect() time on the 64 KiB head of every dev file (best of 5 runs per file)."""
    times = []
    with (corpus / "MANIFEST.tsv").open(newline="") as f:
        paths = [r["path"] for r in csv.DictReader(f, delimiter="\t")]
    for rel in paths:
        with (corpus / rel).open("rb") as f:
            head = f.read(65536)
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            detect(head, rel)
            best = min(best, time.perf_counter() - t0)
        times.append(best)
    times.sort()
    return {"files": len(times), "median_ms": round(times[len(times) // 2] * 1e3, 4),
            "max_ms": round(times[-1] * 1e3, 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("/work/shared/corpus"))
    ap.add_argument("--max-mb", type=float, default=4.0, help="bytes read per file (MB)")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "bench" / "tokenizer.json")
    args = ap.parse_args(argv)

    files = _files(args.corpus)
    cap = int(args.max_mb * 1e6)
    rows = []
    for vocab in [*available_vocabs(), "binary"]:
        for modality, rel in files:
            tok = get_tokenizer("binary") if vocab == "binary" else get_tokenizer(modality, vocab=vocab)
            with (args.corpus / rel).open("rb") as f:
                data = f.read(cap)
            t0 = time.perf_counter()
            tokens, header = tok.encode(data)
            t1 = time.perf_counter()
            back = tok.decode(tokens, header)
            t2 = time.perf_counter()
            rows.append({"vocab": vocab, "modality": modality, "path": rel,
                         "split": "validation" if is_validation(rel) else "train",
                         "bytes": len(data), "tokens": int(tokens.size), "exact": back == data,
                         "encode_s": t1 - t0, "decode_s": t2 - t1})

    summary = []
    for vocab in [*available_vocabs(), "binary"]:
        for modality in ("text", "structured", "gene"):
            for split in ("all", "validation"):
                sel = [r for r in rows if r["vocab"] == vocab and r["modality"] == modality
                       and (split == "all" or r["split"] == split)]
                if not sel:
                    continue
                b = sum(r["bytes"] for r in sel)
                t = sum(r["tokens"] for r in sel)
                summary.append({
                    "vocab": vocab, "modality": modality, "split": split, "files": len(sel), "bytes": b,
                    "tokens": t, "bytes_per_token": round(b / max(t, 1), 3),
                    "encode_MBps": round(b / 1e6 / sum(r["encode_s"] for r in sel), 2),
                    "decode_MBps": round(b / 1e6 / sum(r["decode_s"] for r in sel), 1),
                    "all_exact": all(r["exact"] for r in sel),
                })
    detection = _detection_speed(args.corpus)
    out = {
        "detection": detection,
        "command": "python bench/tokenizer_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "max_bytes_per_file": cap,
        "models": manifest()["models"],
        "summary": summary,
        "files": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")

    print(f"{'vocab':>7} {'modality':>11} {'split':>10} {'files':>5} {'MB':>6} {'B/tok':>6} "
          f"{'enc MB/s':>8} {'dec MB/s':>8} exact")
    for s in summary:
        print(f"{s['vocab']!s:>7} {s['modality']:>11} {s['split']:>10} {s['files']:>5} {s['bytes'] / 1e6:>6.1f} "
              f"{s['bytes_per_token']:>6.2f} {s['encode_MBps']:>8.2f} {s['decode_MBps']:>8.1f} {s['all_exact']}")
    print(f"detect(): {detection['files']} files, median {detection['median_ms']} ms, max {detection['max_ms']} ms")
    print(f"wrote {args.out}")
    return 0 if all(r["exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
