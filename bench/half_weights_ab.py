#!/usr/bin/env python3
"""A/B of the engine's binary16 weight copies: the same binary, ``MMZ_NEURAL_F32`` unset (binary16
panels for <= 16 rows) vs set (binary32 only), alternating, per SIMD build and batch size.

Usage: python bench/half_weights_ab.py MODEL.mmznw [--rows 1 2 4 8 16 64] [--simd avx512 avx2]
       [--rounds 3] [--files F ...] [--out out/bench/half_weights_ab.json]
With --files, also the whole codec: `mmz -z --codec neural` and `mmz -d` of each file, both sides,
wall seconds (best of --rounds), the two frames compared byte for byte and decoded to the input.
MODEL.mmznw = ``mmz.neural.weights.pack_model_dir(DIR)[0]``. Needs
``cargo build --release -p mmz-core --example neural_speed``. Both sides must print the same logits
hash (the weights are the same values); the script fails if they do not.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(__file__).resolve().parent.parent / "target/release/examples/neural_speed"
LINE = re.compile(r"wall ([0-9.]+) us/token.*cpu ([0-9.]+) us/token.*logits ([0-9a-f]+)")


def run(model: str, rows: int, simd: str, f32: bool) -> tuple[float, float, str]:
    env = dict(os.environ, MMZ_NEURAL_SIMD=simd)
    env.pop("MMZ_NEURAL_F32", None)
    if f32:
        env["MMZ_NEURAL_F32"] = "1"
    steps = max(8, 512 // rows + 8)
    out = subprocess.run([str(BIN), model, "step", str(rows), str(steps), "5"], env=env,
                         capture_output=True, text=True, check=True).stdout
    m = LINE.search(out)
    if not m:
        raise SystemExit(f"unexpected output: {out!r}")
    return float(m.group(1)), float(m.group(2)), m.group(3)


def codec_run(path: str, f32: bool) -> tuple[float, float, bytes]:
    env = dict(os.environ)
    env.pop("MMZ_NEURAL_F32", None)
    if f32:
        env["MMZ_NEURAL_F32"] = "1"
    mmz = str(Path(sys.executable).with_name("mmz"))
    t0 = time.monotonic()
    frame = subprocess.run([mmz, "-z", "--codec", "neural", "-c", path], env=env, capture_output=True,
                           check=True).stdout
    t1 = time.monotonic()
    back = subprocess.run([mmz, "-d", "-c"], input=frame, env=env, capture_output=True, check=True).stdout
    t2 = time.monotonic()
    if back != Path(path).read_bytes():
        raise SystemExit(f"{path}: round trip differs")
    return t1 - t0, t2 - t1, frame


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8, 16, 64])
    ap.add_argument("--simd", nargs="+", default=["avx512", "avx2"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", nargs="*", default=[])
    ap.add_argument("--out", default="out/bench/half_weights_ab.json")
    a = ap.parse_args()
    res: list[dict[str, object]] = []
    codec: list[dict[str, object]] = []
    for path in a.files:
        best: dict[bool, list[float]] = {False: [9e9, 9e9], True: [9e9, 9e9]}
        frames = set()
        for _ in range(a.rounds):
            for f32 in (False, True):
                z, d, frame = codec_run(path, f32)
                best[f32] = [min(best[f32][0], z), min(best[f32][1], d)]
                frames.add(frame)
        if len(frames) != 1:
            print(f"{path}: frames differ", file=sys.stderr)
            return 1
        size = Path(path).stat().st_size
        codec.append({"file": path, "bytes": size, "frame_bytes": len(frames.pop()),
                      "half_compress_s": best[False][0], "half_decompress_s": best[False][1],
                      "f32_compress_s": best[True][0], "f32_decompress_s": best[True][1]})
        print(f"{path}: compress {best[True][0]:.2f} -> {best[False][0]:.2f} s, "
              f"decompress {best[True][1]:.2f} -> {best[False][1]:.2f} s")
    for simd in a.simd:
        for rows in a.rows:
            half, full, hashes = [], [], set()
            for _ in range(a.rounds):
                for f32 in (False, True):
                    wall, cpu, h = run(a.model, rows, simd, f32)
                    (full if f32 else half).append(cpu)
                    hashes.add(h)
            if len(hashes) != 1:
                print(f"{simd} rows {rows}: logits differ {hashes}", file=sys.stderr)
                return 1
            row = {"simd": simd, "rows": rows, "half_us_per_token_min": min(half), "f32_us_per_token_min": min(full),
                   "speedup": round(min(full) / min(half), 3), "logits": hashes.pop(),
                   "half_runs": half, "f32_runs": full}
            res.append(row)
            print(f"{simd:7} rows {rows:3}: half {min(half):7.1f} f32 {min(full):7.1f} us/token"
                  f" -> {row['speedup']:.2f}x")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                       "load": os.getloadavg(), "model": a.model, "results": res,
                                       "codec": codec}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
