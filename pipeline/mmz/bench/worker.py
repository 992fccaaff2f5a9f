"""Worker process for ``mmz bench``: times one mmz method over a list of files in-process.

Reads ``{"level", "codec", "threads", "paths"}`` as JSON on stdin and prints
``{"csec", "dsec", "compressed_bytes", "ok", "rss"}``; a separate process per
method keeps the peak RSS of each method apart.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def _seconds(wall: float, cpu: float, threads: int) -> float:
    """Single-thread runs count min(wall, process CPU time), so other load on the machine does not
    slow the measured per-core rate; multi-thread runs count wall time."""
    return min(wall, cpu) if threads == 1 else wall


def main() -> int:
    import mmz

    job = json.load(sys.stdin)
    csec = dsec = 0.0
    comp = 0
    ok = True
    for p in job["paths"]:
        data = Path(p).read_bytes()
        t0, c0 = time.perf_counter(), time.process_time()
        blob = mmz.compress(data, level=job["level"], codec=job["codec"], name=p, threads=job["threads"])
        t1, c1 = time.perf_counter(), time.process_time()
        back = mmz.decompress(blob, threads=job["threads"])
        t2, c2 = time.perf_counter(), time.process_time()
        csec += _seconds(t1 - t0, c1 - c0, job["threads"])
        dsec += _seconds(t2 - t1, c2 - c1, job["threads"])
        comp += len(blob)
        ok &= back == data
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    json.dump({"csec": csec, "dsec": dsec, "compressed_bytes": comp, "ok": ok, "rss": rss}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
