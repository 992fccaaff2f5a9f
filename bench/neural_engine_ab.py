"""Engine-only A/B timing: run two `neural_speed` example binaries alternately.

``python bench/neural_engine_ab.py OLD_BIN NEW_BIN MODEL.mmznw --rows 64 16 1 --steps 8 --reps 10 --rounds 6
--json out/bench/neural_engine_ab.json``

Each run prints the minimum CPU time per token over ``reps`` repetitions inside the process
(`neural_speed MODEL step ROWS STEPS REPS`); this script alternates old/new for ``rounds`` rounds
under ``nice -n NICE`` (``--nice``, default 10) and records every figure, the min/median per binary, and whether the
logits hashes agree.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import time
from pathlib import Path

from sgemm_peak import fp32_peak_gflops

PAT = re.compile(r"cpu ([0-9.]+) us/token = ([0-9.]+) KB/s, ([0-9.]+) GFLOP/s; logits ([0-9a-f]+)")


def run(binary: str, model: str, rows: int, steps: int, reps: int, nice: int = 10) -> dict[str, float | str]:
    out = subprocess.run(["nice", "-n", str(nice), binary, model, "step", str(rows), str(steps), str(reps)],
                         check=True, capture_output=True, text=True).stdout
    m = PAT.search(out)
    if m is None:
        raise SystemExit(f"unexpected output from {binary}: {out!r}")
    return {"us_per_token": float(m[1]), "kb_per_cpu_s": float(m[2]), "gflops": float(m[3]), "logits": m[4]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("model")
    ap.add_argument("--rows", type=int, nargs="+", default=[64])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--nice", type=int, default=10, help="niceness of the timed runs (0 = normal priority)")
    ap.add_argument("--peak-python", default="", help="python with numpy: measure the 1-thread sgemm peak "
                    "once per round (fractions of peak use the same round's peak)")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    res: dict[str, object] = {"command": "neural_speed MODEL step ROWS STEPS REPS (cpu time per token, min over reps)",
                              "steps": a.steps, "reps": a.reps, "rounds": a.rounds, "nice": a.nice,
                              "load_before": Path("/proc/loadavg").read_text().split()[:3],
                              "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": {}}
    for rows in a.rows:
        runs: dict[str, list[dict[str, float | str]]] = {"old": [], "new": []}
        peaks: list[float] = []
        for _ in range(a.rounds):
            if a.peak_python:
                peaks.append(fp32_peak_gflops(1, a.peak_python))
            runs["old"].append(run(a.old, a.model, rows, a.steps, a.reps, a.nice))
            runs["new"].append(run(a.new, a.model, rows, a.steps, a.reps, a.nice))
        summ: dict[str, object] = {"runs": runs}
        if peaks:
            summ["peak_gflops_per_round"] = peaks
            summ["peak_gflops_median"] = statistics.median(peaks)
            for k, v in runs.items():
                fr = [float(r["gflops"]) / p for r, p in zip(v, peaks, strict=True)]
                summ[f"{k}_fraction_of_round_peak"] = {"max": max(fr), "median": statistics.median(fr)}
        for k, v in runs.items():
            us = [float(r["us_per_token"]) for r in v]
            gf = [float(r["gflops"]) for r in v]
            summ[k] = {"us_min": min(us), "us_median": statistics.median(us), "gflops_max": max(gf),
                       "gflops_median": statistics.median(gf)}
        hashes = {str(r["logits"]) for v in runs.values() for r in v}
        summ["logits_identical"] = len(hashes) == 1
        summ["speedup_min"] = summ["old"]["us_min"] / summ["new"]["us_min"]  # type: ignore[index]
        summ["speedup_median"] = summ["old"]["us_median"] / summ["new"]["us_median"]  # type: ignore[index]
        res["rows"][str(rows)] = summ  # type: ignore[index]
        keys = ["old", "new", "logits_identical", "speedup_min", "speedup_median"]
        extra = ("peak_gflops_median", "old_fraction_of_round_peak", "new_fraction_of_round_peak")
        keys += [k for k in extra if k in summ]
        print(rows, {k: summ[k] for k in keys})
    res["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
