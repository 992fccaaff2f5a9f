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


def main() -> int:
    import mmz

    job = json.load(sys.stdin)
    csec = dsec = 0.0
    comp = 0
    ok = True
    for p in job["paths"]:
        data = Path(p).read_bytes()
        t0 = time.perf_counter()
        blob = mmz.compress(data, level=job["level"], codec=job["codec"], name=p, threads=job["threads"])
        t1 = time.perf_counter()
        back = mmz.decompress(blob, threads=job["threads"])
        t2 = time.perf_counter()
        csec += t1 - t0
        dsec += t2 - t1
        comp += len(blob)
        ok &= back == data
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    json.dump({"csec": csec, "dsec": dsec, "compressed_bytes": comp, "ok": ok, "rss": rss}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
