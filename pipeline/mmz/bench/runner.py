"""Run methods over grouped files: sizes, speeds, peak RSS and a verified round trip each."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmz.bench.inputs import BenchFile
from mmz.bench.methods import MmzMethod, ToolMethod, pcm_of, same_pixels


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "loadavg_start": list(os.getloadavg())}


def _vm_hwm_kib(pid: int) -> int | None:
    """The process's own peak RSS (``VmHWM``, reset by exec) while it runs; None if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _run_timed(cmd: list[str]) -> tuple[int, float, float, bool]:
    """Run a command; returns (exit code, seconds, peak RSS MiB, whether the peak was sampled).

    Seconds are min(wall, user + system CPU time of the child).

    The peak comes from polling ``/proc/PID/status`` ``VmHWM`` (which exec resets), because
    ``wait4``'s ``ru_maxrss`` of a child also counts the spawning Python process's memory (Linux
    keeps the high-water mark across fork/exec). If the child ends before the first sample (or on
    systems without /proc), ``ru_maxrss`` is returned as an upper bound and the flag is False.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hwm: int | None = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        h = _vm_hwm_kib(proc.pid)
        if h is not None:
            hwm = max(hwm or 0, h)
        time.sleep(0.001)
    # Per-core rate: CPU time of the (single-threaded) tool, capped by wall time, so load from
    # other processes on the machine does not count against the tool.
    secs = min(time.perf_counter() - t0, usage.ru_utime + usage.ru_stime)
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_kib = hwm if hwm else usage.ru_maxrss
    return proc.returncode, secs, peak_kib / 1024.0, bool(hwm)


def run_tool(method: ToolMethod, files: list[BenchFile]) -> dict[str, Any] | None:
    """Benchmark a classical tool over ``files``; None if it applies to none of them."""
    totals = {"files": 0, "raw_bytes": 0, "compressed_bytes": 0, "csec": 0.0, "dsec": 0.0, "rss": 0.0}
    rss_bound = 0.0  # ru_maxrss of runs too short to sample (includes this process's own footprint)
    ok = True
    skipped = 0
    with tempfile.TemporaryDirectory(prefix="mmz-bench-") as tmp:
        for f in files:
            if not method.applies(f):
                continue
            src = Path(tmp, "in" + method.in_suffix)
            out = Path(tmp, "out" + method.out_suffix)
            dec = Path(tmp, "dec" + method.dec_suffix)
            view = method.input_bytes(f)
            src.write_bytes(view)
            for p in (out, dec):
                p.unlink(missing_ok=True)
            subst = {"{i}": str(src), "{o}": str(out), "{d}": str(dec)}

            def fill(cmd: tuple[str, ...], subst: dict[str, str] = subst) -> list[str]:
                parts = []
                for c in cmd:
                    for k, v in subst.items():
                        c = c.replace(k, v)
                    parts.append(c)
                return parts

            rc, csec, rss1, sampled1 = _run_timed(fill(method.compress))
            if rc != 0 or not out.exists():
                skipped += 1  # the tool cannot take this file (e.g. flac on 8-bit WAV)
                continue
            rc2, dsec, rss2, sampled2 = _run_timed(fill(method.decompress))
            decoded = dec.read_bytes() if dec.exists() else b""
            if method.verify == "bytes":
                good = rc2 == 0 and decoded == view
            elif method.verify == "pcm":
                good = rc2 == 0 and pcm_of(decoded) == pcm_of(view)
            else:
                good = rc2 == 0 and same_pixels(view, decoded)
            ok &= good
            totals["files"] += 1
            totals["raw_bytes"] += f.raw_bytes
            totals["compressed_bytes"] += out.stat().st_size
            totals["csec"] += csec
            totals["dsec"] += dsec
            for rss, sampled in ((rss1, sampled1), (rss2, sampled2)):
                if sampled:
                    totals["rss"] = max(totals["rss"], rss)
                else:
                    rss_bound = max(rss_bound, rss)
    if not totals["files"]:
        return None
    row = _row(method.name, totals, ok)
    row["timing"] = "one process per file (start-up included); seconds = min(wall, child CPU time)"
    notes = []
    if skipped:
        notes.append(f"n/a for {skipped} file(s) the tool refused")
    if not totals["rss"] and rss_bound:
        row["peak_rss_mb"] = round(rss_bound, 1)
        notes.append("peak RSS is an upper bound: every run ended before it could be sampled")
    if notes:
        row["note"] = "; ".join(notes)
    return row


def _row(name: str, t: dict[str, Any], ok: bool) -> dict[str, Any]:
    raw = max(1, int(t["raw_bytes"]))
    return {
        "method": name,
        "files": int(t["files"]),
        "raw_bytes": int(t["raw_bytes"]),
        "compressed_bytes": int(t["compressed_bytes"]),
        "bits_per_byte": round(8.0 * t["compressed_bytes"] / raw, 4),
        "compress_kBps": round(raw / 1e3 / max(1e-9, t["csec"]), 1),
        "decompress_kBps": round(raw / 1e3 / max(1e-9, t["dsec"]), 1),
        "peak_rss_mb": round(float(t["rss"]), 1),
        "roundtrip_ok": bool(ok),
    }


def run_mmz(method: MmzMethod, files: list[BenchFile], threads_all: bool = True,
            estimate: bool = False) -> dict[str, Any]:
    """Benchmark an mmz method in a fresh worker process (single thread, then all threads)."""
    paths = [str(f.path) for f in files]
    raws = [f.raw_bytes for f in files]
    single = _mmz_worker(method, paths, threads=1)
    row = _row(method.name, {**single, "raw_bytes": sum(raws), "files": len(files)}, single["ok"])
    row["timing"] = ("in-process API, one worker process per method and group (no per-file start-up); "
                     "single-thread KB/s from min(wall, CPU time), all-threads KB/s from wall time")
    if threads_all and (os.cpu_count() or 1) > 1:
        multi = _mmz_worker(method, paths, threads=0)
        row["compress_kBps_all_threads"] = round(sum(raws) / 1e3 / max(1e-9, multi["csec"]), 1)
        row["decompress_kBps_all_threads"] = round(sum(raws) / 1e3 / max(1e-9, multi["dsec"]), 1)
        row["roundtrip_ok"] = row["roundtrip_ok"] and multi["ok"]
    if estimate:
        row.update(_estimate(method, files))
    return row


def _estimate(method: MmzMethod, files: list[BenchFile]) -> dict[str, Any]:
    """Neural cross-entropy vs real neural payload bits over the group (``--estimate``)."""
    from mmz import neural

    if method.codec != "neural":
        return {"estimate": "only for mmz-neural (the CM engine has no separate model estimate)"}
    if not neural.available():
        return {"estimate": "n/a: no neural engine or model in this build"}
    ce = coded = 0.0
    raw = 0
    for f in files:
        e = neural.estimate(f.path.read_bytes(), method.level, f.path.name)
        ce += e["estimate_bits"]
        coded += e["coded_bits"]
        raw += f.raw_bytes
    return {"estimate_bits_per_byte": round(ce / max(1, raw), 4),
            "neural_coded_bits_per_byte": round(coded / max(1, raw), 4),
            "estimate_gap_pct": round(100.0 * (coded - ce) / ce, 3) if ce else 0.0}


def _mmz_worker(method: MmzMethod, paths: list[str], threads: int) -> dict[str, Any]:
    payload = json.dumps({"level": method.level, "codec": method.codec, "threads": threads, "paths": paths})
    cmd = [sys.executable, "-m", "mmz.bench.worker"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = proc.communicate(payload.encode())
    if proc.returncode != 0:
        raise RuntimeError(f"mmz bench worker failed for {method.name} (exit {proc.returncode})")
    result = json.loads(out)
    result["wall"] = time.perf_counter() - t0
    return result


def run_all(files: list[BenchFile], tools: list[ToolMethod], mmz: list[MmzMethod],
            progress: Callable[[str], None] | None = None, estimate: bool = False,
            threads_all: bool = True) -> list[dict[str, Any]]:
    """Every applicable method on every group; rows carry their group as ``modality``."""
    groups: dict[str, list[BenchFile]] = {}
    for f in files:
        groups.setdefault(f.group, []).append(f)
    rows: list[dict[str, Any]] = []
    for g in sorted(groups):
        fs = groups[g]
        for m in mmz:
            if progress:
                progress(f"{g}: {m.name} on {len(fs)} files")
            rows.append({"modality": g, **run_mmz(m, fs, threads_all=threads_all, estimate=estimate)})
        for t in tools:
            if progress:
                progress(f"{g}: {t.name}")
            r = run_tool(t, fs)
            if r is not None:
                rows.append({"modality": g, **r})
    return rows
