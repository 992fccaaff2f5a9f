"""Neural codec benchmark: KB/s compress/decompress at 1 and 2 threads, batch sweep, GFLOP/s vs a
measured fp32 peak, coded size vs model cross-entropy. Writes ``out/bench/neural.json``.

    .venv/bin/python bench/neural_bench.py [--bytes 262144] [--ce-bytes 1100000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import mmz.neural as neural
from mmz import _core

ROOT = Path(__file__).resolve().parent.parent


def fp32_peak_gflops(seconds: float = 1.0) -> float:
    """Single-thread fp32 multiply+add rate of numpy's BLAS sgemm on 256x256 (a practical peak)."""
    a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    b = a.copy()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * 256 ** 3 * n / (time.perf_counter() - t0) / 1e9


def timed(fn: object, *args: object) -> tuple[float, object]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - t0, out


def main() -> None:
    """Run the benchmark and write JSON."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--bytes", type=int, default=262144, help="text bytes timed (4 KiB per stream)")
    ap.add_argument("--ce-bytes", type=int, default=1_100_000)
    ap.add_argument("--quick", action="store_true", help="smaller sweep, no 1 MB cross-entropy run")
    ap.add_argument("--out", default=str(ROOT / "out" / "bench" / "neural.json"))
    args = ap.parse_args()
    m = neural.load()
    text = (ROOT / "data" / "sample" / "text" / "debian_handbook_en.txt").read_bytes()
    data = text[:args.bytes]
    hint = _core.make_hint("text", None)
    level = 1  # 4 KiB sub-streams: enough streams for batching and threads
    flops_tok = 2 * m.engine.macs_per_token
    res: dict[str, object] = {"model_id": m.manifest["model_id"], "simd_path": _core.NeuralEngine.simd_path(),
                              "bytes": len(data), "level": level, "flops_per_token": flops_tok,
                              "cpu_count": os.cpu_count(), "fp32_peak_gflops_1thread": fp32_peak_gflops()}
    runs = []
    streams = -(-len(data) // 4096)
    res["streams"] = streams
    # A lockstep group never holds more rows than there are streams; larger batches are the same run.
    batches = [b for b in ([1, 8, 64] if args.quick else [1, 4, 16, 64, 256, 512]) if b <= streams]
    for threads in (1, 2):
        for batch in batches:
            m.batch, m.threads = batch, threads
            te, payload = timed(neural.encode_payload, m, data, level, hint)
            td, out = timed(neural.decode_payload, m, payload, len(data), hint)
            assert out == data
            runs.append({"threads": threads, "batch": batch, "compress_kb_s": len(data) / te / 1e3,
                         "decompress_kb_s": len(data) / td / 1e3, "payload": len(payload),
                         "gflops_compress": len(data) * flops_tok / te / 1e9,
                         "bits_per_byte": 8 * len(payload) / len(data)})
            print(runs[-1], flush=True)
    res["runs"] = runs
    best1 = max(r["gflops_compress"] for r in runs if r["threads"] == 1)
    res["best_1thread_fraction_of_peak"] = best1 / res["fp32_peak_gflops_1thread"]  # type: ignore[operator]
    if not args.quick:
        m.batch, m.threads = 64, 2
        big = text[:args.ce_bytes]
        te, payload = timed(neural.encode_payload, m, big, 9, hint)
        ce = neural.cross_entropy_bits(m, big, 9, hint) / 8
        res["cross_entropy_check"] = {"bytes": len(big), "level": 9, "payload": len(payload), "ce_bytes": ce,
                                      "overhead_pct": 100 * (len(payload) / ce - 1), "encode_s": te}
        print(res["cross_entropy_check"], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
