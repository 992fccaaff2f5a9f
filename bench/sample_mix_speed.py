"""Speed of the sample-mixed neural form (payload flags 4) next to the plain form on the bundled
image and audio samples (the media of ``neural_bench.py``): compress/decompress KB/s, best of
``--reps``, at B = 64 and ``--threads``, plus the payload sizes. Every payload is decoded and compared.

    .venv/bin/python bench/sample_mix_speed.py [--bytes 262144] [--level 5] [--threads 2]
        [--out out/bench/sample_mix_speed.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from neural_bench import media_samples

import mmz.neural as neural

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bytes", type=int, default=262144, help="first bytes of each sample (hint region as cut)")
    ap.add_argument("--level", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "bench" / "sample_mix_speed.json")
    args = ap.parse_args()
    m = neural.load()
    m.batch, m.threads = 64, args.threads
    out: dict[str, object] = {"model_id": m.manifest["model_id"], "level": args.level, "threads": args.threads,
                              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for name, (data, hint) in media_samples().items():
        if len(data) > args.bytes:
            raise SystemExit(f"{name}: {len(data)} bytes > --bytes; the hint covers the whole sample")
        for form in ("plain", "sample"):
            best_e = best_d = float("inf")
            size = 0
            for _ in range(args.reps):
                t0 = time.perf_counter()
                p = (neural.encode_payload(m, data, args.level, hint) if form == "plain"
                     else neural.encode_sample_mixed(m, data, args.level, hint))
                t1 = time.perf_counter()
                if p is None:
                    raise SystemExit(f"{name}: no sample form")
                if neural.decode_payload(m, p, len(data), hint) != data:
                    raise SystemExit(f"{name}: {form} payload did not round-trip")
                t2 = time.perf_counter()
                best_e, best_d, size = min(best_e, t1 - t0), min(best_d, t2 - t1), len(p)
            row = {"bytes": len(data), "payload": size, "compress_kbs": len(data) / best_e / 1e3,
                   "decompress_kbs": len(data) / best_d / 1e3}
            out[f"{name}_{form}"] = row
            print(name, form, row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
