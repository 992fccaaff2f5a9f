"""The practical fp32 peak the neural benchmarks compare the engine with.

numpy's BLAS sgemm on 256x256 float32 matrices, best of three 0.5 s bursts, in a fresh process
(the BLAS thread count is fixed when numpy loads its library). Used by ``neural_bench.py`` and
``neural_engine_ab.py``; needs only numpy in the interpreter that runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys

PEAK_SNIPPET = """
import time, numpy as np
a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32); b = a.copy()
best = 0.0
for _ in range(3):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.5:
        a @ b; n += 1
    best = max(best, 2 * 256 ** 3 * n / (time.perf_counter() - t0) / 1e9)
print(best)
"""


def fp32_peak_gflops(threads: int = 1, python: str = sys.executable) -> float:
    """GFLOP/s (2 x multiply-adds) of sgemm with ``threads`` BLAS threads, run by ``python``."""
    env = {**os.environ, **{k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    out = subprocess.run([python, "-c", PEAK_SNIPPET], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())
