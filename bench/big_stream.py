"""Stream a large generated input through `mmz -c | mmz -d -c` and record peak RSS.

Shows that memory is bounded independently of input size (the 1 GB case of the
foundation issue). Writes JSON (default out/bench/big_stream.json).

    python bench/big_stream.py --sizes 64M 1G
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time


def parse_size(text: str) -> int:
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:].lower(), 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def blocks(total: int, block: int = 1 << 20):
    """Deterministic, mildly compressible data: random words with random bytes mixed in."""
    rng = random.Random(1234)
    words = [bytes(rng.randrange(97, 123) for _ in range(rng.randrange(2, 9))) for _ in range(5000)]
    sent = 0
    while sent < total:
        parts = []
        size = 0
        while size < block:
            w = rng.choice(words) + (b" " if rng.random() < 0.9 else rng.randbytes(3))
            parts.append(w)
            size += len(w)
        data = b"".join(parts)[: min(block, total - sent)]
        sent += len(data)
        yield data


def peak_rss_mb(pid: int, stop: threading.Event, out: list[float]) -> None:
    peak = 0
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except FileNotFoundError:
            break
        time.sleep(0.2)
    out.append(peak / 1024)


def run(size: int, level: int, threads: int) -> dict[str, object]:
    py = sys.executable
    comp = subprocess.Popen([py, "-m", "mmz", f"-{level}", "-T", str(threads), "-c"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    dec = subprocess.Popen([py, "-m", "mmz", "-d", "-T", str(threads), "-c"],
                           stdin=comp.stdout, stdout=subprocess.PIPE)
    assert comp.stdout is not None and comp.stdin is not None and dec.stdout is not None
    comp.stdout.close()
    stop = threading.Event()
    rss_c: list[float] = []
    rss_d: list[float] = []
    watchers = [threading.Thread(target=peak_rss_mb, args=(comp.pid, stop, rss_c)),
                threading.Thread(target=peak_rss_mb, args=(dec.pid, stop, rss_d))]
    for w in watchers:
        w.start()
    h_in = hashlib.sha256()
    h_out = hashlib.sha256()
    out_bytes = 0

    def reader() -> None:
        nonlocal out_bytes
        while True:
            b = dec.stdout.read(1 << 20)
            if not b:
                break
            out_bytes += len(b)
            h_out.update(b)

    rt = threading.Thread(target=reader)
    rt.start()
    t0 = time.perf_counter()
    for b in blocks(size):
        h_in.update(b)
        comp.stdin.write(b)
    comp.stdin.close()
    rc_c = comp.wait()
    rt.join()
    rc_d = dec.wait()
    secs = time.perf_counter() - t0
    stop.set()
    for w in watchers:
        w.join()
    return {"bytes": size, "level": level, "threads": threads, "seconds": round(secs, 2),
            "MBps": round(size / 1e6 / secs, 2), "roundtrip_ok": rc_c == 0 and rc_d == 0
            and h_in.digest() == h_out.digest() and out_bytes == size,
            "peak_rss_mb_compress": round(rss_c[0], 1) if rss_c else None,
            "peak_rss_mb_decompress": round(rss_d[0], 1) if rss_d else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", nargs="+", default=["64M", "256M", "1G"])
    p.add_argument("--level", type=int, default=1)
    p.add_argument("-T", "--threads", type=int, default=2)
    p.add_argument("--json", default="out/bench/big_stream.json")
    args = p.parse_args()
    results = []
    for s in args.sizes:
        r = run(parse_size(s), args.level, args.threads)
        print(json.dumps(r))
        results.append(r)
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump({"benchmark": "big_stream", "results": results}, fh, indent=1)
    return 0 if all(r["roundtrip_ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
