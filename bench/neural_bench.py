"""Neural codec benchmark: KB/s compress/decompress at 1 and 2 threads (text batch sweep, image and
audio at B = 64), GFLOP/s vs a measured fp32 GEMM peak (numpy sgemm at 1 and 2 BLAS threads), coded
size vs model cross-entropy. Writes ``out/bench/neural.json``.

    .venv/bin/python bench/neural_bench.py [--bytes 262144] [--ce-bytes 1100000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import wave
from pathlib import Path

from PIL import Image
from sgemm_peak import fp32_peak_gflops

import mmz.neural as neural
from mmz import _core

ROOT = Path(__file__).resolve().parent.parent


def media_samples() -> dict[str, tuple[bytes, bytes]]:
    """(bytes, hint) of the sample image (decoded pixels) and audio (PCM of the WAV data chunk)."""
    img = Image.open(ROOT / "data" / "sample" / "image" / "skimage_rocket.png").convert("RGB")
    pix = img.tobytes()
    w = img.size[0]
    with wave.open(str(ROOT / "data" / "sample" / "speech" / "alsa_Front_Left.wav")) as wf:
        ch, sw = wf.getnchannels(), wf.getsampwidth()
        pcm = wf.readframes(wf.getnframes())
    return {
        "image": (pix, _core.make_hint("image", (3, 1, False, False, w, 0, len(pix), 0))),
        "audio": (pcm, _core.make_hint("audio", (ch, sw, False, sw > 1, 0, 0, len(pcm), 0))),
    }


def repeat_to(data: bytes, n: int) -> bytes:
    """``data`` repeated/cut to exactly ``n`` bytes."""
    return (data * (n // max(len(data), 1) + 1))[:n]


CPU: list[float] = [0.0]


def timed(fn: object, *args: object) -> tuple[float, object]:
    """(wall seconds, result) of one call; the call's process CPU seconds go to ``CPU[0]``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)  # type: ignore[operator]
    CPU[0] = time.process_time() - c0
    return time.perf_counter() - t0, out


def main() -> None:
    """Run the benchmark and write JSON."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--bytes", type=int, default=262144, help="text bytes timed (4 KiB per stream)")
    ap.add_argument("--ce-bytes", type=int, default=1_100_000)
    ap.add_argument("--quick", action="store_true", help="smaller sweep, no 1 MB cross-entropy run")
    ap.add_argument("--batches", default="", help="comma list of text batch sizes (default: the sweep)")
    ap.add_argument("--threads", default="1,2", help="comma list of thread counts")
    ap.add_argument("--out", default=str(ROOT / "out" / "bench" / "neural.json"))
    ap.add_argument("--merge", default="", help="earlier output JSON whose runs are kept (for thread counts not run "
                    "now); fractions of peak are recomputed with this run's peaks")
    args = ap.parse_args()
    m = neural.load()
    text = (ROOT / "data" / "sample" / "text" / "debian_handbook_en.txt").read_bytes()
    data = text[:args.bytes]
    hint = _core.make_hint("text", None)
    level = 1  # 4 KiB sub-streams: enough streams for batching and threads
    flops_tok = 2 * m.engine.macs_per_token
    peaks = {t: fp32_peak_gflops(t) for t in (1, 2)}
    res: dict[str, object] = {"model_id": m.manifest["model_id"], "simd_path": _core.NeuralEngine.simd_path(),
                              "bytes": len(data), "level": level, "flops_per_token": flops_tok,
                              "cpu_count": os.cpu_count(), "fp32_peak_gflops_1thread": peaks[1],
                              "fp32_peak_gflops_2threads": peaks[2],
                              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    runs = []
    streams = -(-len(data) // 4096)
    res["streams"] = streams
    # A lockstep group never holds more rows than there are streams; larger batches are the same run.
    sweep = [int(b) for b in args.batches.split(",")] if args.batches else [16, 64] if args.quick else [1, 4, 16, 64]
    batches = [b for b in sweep if b <= streams]
    cases = [("text", data, hint, b) for b in batches]
    cases += [(k, repeat_to(v[0], len(data)), v[1], 64) for k, v in media_samples().items()]
    thread_counts = [int(t) for t in args.threads.split(",")]
    for threads in thread_counts:
        for kind, d, h, batch in cases:
            m.batch, m.threads = batch, threads
            te, payload = timed(neural.encode_payload, m, d, level, h)
            ce_ = CPU[0]
            td, out = timed(neural.decode_payload, m, payload, len(d), h)
            cd_ = CPU[0]
            assert out == d
            gf = len(d) * flops_tok / min(te, td) / 1e9
            runs.append({"data": kind, "threads": threads, "batch": batch, "compress_kb_s": len(d) / te / 1e3,
                         "decompress_kb_s": len(d) / td / 1e3, "payload": len(payload),
                         # KB per CPU-second (all threads): what an uncontended core would see.
                         "compress_kb_per_cpu_s": len(d) / ce_ / 1e3, "decompress_kb_per_cpu_s": len(d) / cd_ / 1e3,
                         "gflops_compress": len(d) * flops_tok / te / 1e9, "gflops_best": gf,
                         "fraction_of_peak": gf / peaks[threads], "bits_per_byte": 8 * len(payload) / len(d)})
            print(runs[-1], flush=True)
    if args.merge:
        old = json.loads(Path(args.merge).read_text())
        kept = [r for r in old["runs"] if r["threads"] not in thread_counts]
        for r in kept:
            r["fraction_of_peak"] = r["gflops_best"] / peaks[r["threads"]]
        runs = kept + runs
        thread_counts = sorted({r["threads"] for r in runs})
        kept_threads = sorted({r["threads"] for r in kept})
        res["merged_from"] = {"file": str(args.merge), "date": old.get("date"), "threads": kept_threads}
    res["runs"] = runs
    for t in thread_counts:
        best = max(r["gflops_compress"] for r in runs if r["threads"] == t)
        res[f"best_{t}thread_fraction_of_peak"] = best / peaks[t]
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
