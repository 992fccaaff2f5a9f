"""Ray job: throughput of the corpus compression job and its scaling from 1 to N workers.

    python jobs/benchmark_corpus.py --input /abs/src --out-json /abs/out/bench/scaling.json \\
        [--workers-sweep 1,2] [--codec auto] [--level 5] [--chunk-size 8M] [--address local|ADDR] [--keep DIR]

    ray job submit --address http://HEAD:8265 --working-dir . --runtime-env jobs/runtime_env.yaml \\
        -- python jobs/benchmark_corpus.py --input /abs/src --out-json /abs/scaling.json --workers-sweep 1,2,4,8

For every worker count W of the sweep the input is compressed into a fresh archive with the code of
jobs/compress_corpus.py (W actors, ``--cpus-per-worker`` CPUs each, every thread pool of an actor capped
at that many threads), timed wall-clock; then every member is decoded and checked in Ray tasks with at
most W in flight (the code of jobs/verify_corpus.py), timed too. The round trip is checked against the
source itself: the driver hashes every input file (sha256) once before the sweep, each archive must list
exactly those members with those sizes and hashes, and decoding must reproduce them.

The JSON (``--out-json``, rewritten after every run) holds one row per worker count under ``workers``
(the key ``mmz bench --plot`` reads from out/bench/scaling.json), the machine and cluster, the exact
command, and a cost model extrapolating the measured per-core throughput and scaling efficiency to
enwik9 and LibriSpeech-960h. MB = 10^6 bytes. Use absolute paths (a submitted job runs in a copy of
the working directory); on a cluster of several nodes, input and ``--keep`` must be shared storage.

Exit status: 0 all runs done and every round trip exact, 1 a run failed or a round trip did not match,
2 usage error (bad arguments, missing or empty input, more workers than the cluster has CPUs).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import posixpath
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from typing import Any

import pyarrow.fs as pafs

import mmz
from mmz.archive import Archive
from mmz.archive import format as F
from mmz.archive.cli import _size
from mmz.archive.ray_jobs import (
    THREAD_VARS,
    absolute,
    compress_corpus,
    init_ray,
    members_parallel,
    thread_env,
    warm_workers,
)
from mmz.archive.writer import DEFAULT_BATCH_BYTES, DEFAULT_CHUNK_SIZE, Options, iter_sources, load_journals
from mmz.errors import MmzError

MB = 1e6
NODE_COUNTS = (1, 8, 32, 128)
CORES_PER_NODE = 2
DATASETS = {
    "enwik9": {"bytes": 1_000_000_000, "assumption": "enwik9: the first 10^9 bytes of the English Wikipedia "
                                                      "XML dump (text)"},
    "librispeech_960h_pcm": {
        "bytes": 960 * 3600 * 16000 * 2,
        "assumption": "LibriSpeech 960 h as raw PCM: 960 h x 3600 s/h x 16000 samples/s x 2 bytes (16-bit mono) "
                      "= 110,592,000,000 bytes (110.6 GB); the distribution is FLAC, this is the decoded audio",
    },
}
FORMULA = ("hours = dataset_bytes / (per_core_MBps * 1e6 * cores * efficiency) / 3600, with cores = "
           f"{CORES_PER_NODE} * nodes, per_core_MBps = MBps(W0) / W0 at the smallest measured worker count W0 "
           "(1 when measured), efficiency = min(1, MBps(Wmax) / (Wmax * per_core_MBps)) at the largest measured "
           "worker count Wmax, assumed to hold at every cluster size")


def _sig(x: float) -> float:
    """``x`` to 6 significant digits (throughputs span 10^-3 to 10^3 MB/s)."""
    return float(f"{x:.6g}")


class UsageError(Exception):
    """A problem with the arguments or the input: exit status 2."""


def _sweep(text: str) -> list[int]:
    try:
        counts = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of worker counts: {text!r} (example: 1,2,4)") from None
    if not counts or any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"worker counts must be integers >= 1, got {text!r}")
    if len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"worker counts repeat in {text!r}")
    return counts


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="source directory or file (local path or pyarrow.fs URI)")
    p.add_argument("--out-json", required=True, help="where to write the results (local path on the driver)")
    p.add_argument("--workers-sweep", type=_sweep, default=[1, 2], help="worker counts to run, e.g. 1,2,4,8 "
                   "(default 1,2; include 1 for speedup_vs_1)")
    p.add_argument("--codec", default="auto", help="auto|cm|neural|order2|store (default auto)")
    p.add_argument("--level", type=int, default=5, help="compression level 1..9 (default 5)")
    p.add_argument("--chunk-size", type=_size, default=DEFAULT_CHUNK_SIZE, help="raw bytes per chunk (default 8M)")
    p.add_argument("--batch-bytes", type=_size, default=DEFAULT_BATCH_BYTES,
                   help="small files grouped per task (default 1M)")
    p.add_argument("--repeat", type=int, default=1, help="run the whole sweep N times, interleaved (1,2,1,2,...); "
                   "the rows under 'workers' are per-count medians, every run is kept under 'runs' (default 1)")
    p.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs per actor; caps its thread pools (default 1)")
    p.add_argument("--address", default=None, help="Ray address; 'local' starts a private instance "
                   "(default: the job's cluster, or a new local instance)")
    p.add_argument("--keep", metavar="DIR", default=None, help="write the archives to DIR/w<N>.mmza and keep "
                   "them (default: a temporary directory, deleted; required on clusters of several nodes)")
    p.add_argument("--progress-every", type=float, default=5.0, help="seconds between progress lines")
    p.add_argument("--test-damage", action="store_true", help=argparse.SUPPRESS)  # tests: flip a byte before verify
    return p


# --- input ---------------------------------------------------------------------------------------

def hash_sources(source: str) -> tuple[dict[str, tuple[int, str]], float]:
    """``{member name: (size, sha256)}`` of every input file, and the seconds it took.

    Reading the input once here also puts it in the page cache for every run alike.
    """
    t0 = time.perf_counter()
    fs, root = F.resolve(absolute(source))
    out: dict[str, tuple[int, str]] = {}
    for src in iter_sources(fs, [root]):
        h = hashlib.sha256()
        n = 0
        with fs.open_input_stream(src.fs_path) as f:
            while block := f.read(4 << 20):
                h.update(block)
                n += len(block)
        out[src.name] = (n, h.hexdigest())
    return out, time.perf_counter() - t0


# --- one run -------------------------------------------------------------------------------------

def check_roundtrip(archive: str, sources: dict[str, tuple[int, str]], results: list[Any]) -> list[str]:
    """Problems that make the archive differ from the source (empty list: byte-exact round trip).

    ``results`` are the verify results (every member decoded, its chunks' xxh3 and its sha256 checked
    against the archive); here the archive's member list, sizes and sha256 are checked against the source.
    """
    problems = []
    members = {m.path: m for m in Archive(archive).members()}
    for name in sorted(set(sources) - set(members)):
        problems.append(f"{name}: in the input but not in the archive")
    for name in sorted(set(members) - set(sources)):
        problems.append(f"{name}: in the archive but not in the input")
    for name in sorted(set(sources) & set(members)):
        size, sha = sources[name]
        m = members[name]
        if m.size != size or m.sha256 != sha:
            problems.append(f"{name}: archive records {m.size} bytes sha256 {m.sha256[:16] or '-'}, "
                            f"input has {size} bytes sha256 {sha[:16]}")
    checked = set()
    for r, _ in results:
        checked.add(r.path)
        if not r.ok:
            problems.append(f"{r.path}: {r.error}")
    for name in sorted(set(members) - checked):
        problems.append(f"{name}: not decoded by the verify step")
    return problems


def actor_stats(archive: str) -> list[dict[str, Any]]:
    """Per actor (= per shard): raw bytes, busy seconds (sum of its chunks' compress seconds), MB/s.

    Taken from the shard journals, counting only the records the index references.
    """
    arc = Archive(archive)
    fs, root = arc.fs, arc.root
    kept = {(r["path"], int(r["chunk"])): (r["shard"], int(r["offset"])) for r in arc.index.to_pylist()}
    per: dict[str, list[float]] = {}
    for rec in load_journals(fs, root):
        if kept.get((rec["path"], int(rec["chunk"]))) != (rec["shard"], int(rec["offset"])):
            continue
        s = per.setdefault(rec["shard"], [0, 0.0, 0])
        s[0] += int(rec["raw_len"])
        s[1] += float(rec.get("seconds", 0.0))
        s[2] += 1
    return [{"shard": shard, "chunks": int(c), "bytes": int(b), "busy_seconds": _sig(secs),
             "busy_MBps": _sig(b / MB / secs) if secs > 0 else None}
            for shard, (b, secs, c) in sorted(per.items())]


def damage_first_frame(archive: str) -> str:
    """Tests only: flip one bit inside the largest frame of the archive; returns the member hit."""
    arc = Archive(archive)
    victim = max(arc.index.to_pylist(), key=lambda r: (int(r["compressed_len"]), r["path"]))
    path = F.join(arc.root, victim["shard"])
    data = bytearray(F.read_file(arc.fs, path))
    data[int(victim["offset"]) + int(victim["compressed_len"]) - 9] ^= 0x01
    with arc.fs.open_output_stream(path) as f:
        f.write(bytes(data))
    return str(victim["path"])


def run_one(args: argparse.Namespace, workers: int, archive: str, sources: dict[str, tuple[int, str]],
            opts: Options) -> dict[str, Any]:
    """Compress, verify and measure at one worker count; returns the result row."""
    t0 = time.perf_counter()
    summary = compress_corpus(args.input, archive, workers=workers, opts=opts, batch_bytes=args.batch_bytes,
                              cpus_per_worker=args.cpus_per_worker, progress_every=args.progress_every)
    comp_secs = time.perf_counter() - t0
    if args.test_damage:
        print(f"[benchmark] test: damaged a frame of {damage_first_frame(archive)}", flush=True)
    dec_startup = warm_workers(workers)
    t1 = time.perf_counter()
    results = members_parallel(archive, None, None, workers, max_inflight=workers)
    dec_secs = time.perf_counter() - t1
    problems = check_roundtrip(archive, sources, results)
    if summary.bytes_in != sum(size for size, _ in sources.values()):
        problems.append(f"the job read {summary.bytes_in} bytes, the input has "
                        f"{sum(size for size, _ in sources.values())}")
    actors = actor_stats(archive)
    busy = [a["busy_MBps"] for a in actors if a["busy_MBps"] is not None]
    busy_secs = sum(a["busy_seconds"] for a in actors)
    dec_busy = sum(secs for _, secs in results)
    bi, bo = summary.bytes_in, summary.bytes_out
    comp_mbps = bi / MB / comp_secs
    coding_mbps = bi / MB / summary.coding_seconds if summary.coding_seconds > 0 else 0.0
    dec_mbps = bi / MB / dec_secs
    info = Archive(archive).info()
    return {
        "workers": workers,
        "seconds": _sig(comp_secs),
        "startup_seconds": _sig(summary.startup_seconds),
        "coding_seconds": _sig(summary.coding_seconds),
        "decompress_seconds": _sig(dec_secs),
        "decompress_startup_seconds": _sig(dec_startup),
        "bytes_in": bi,
        "bytes_out": bo,
        "index_bytes": int(info["index_bytes"]) + int(info["members_bytes"]),
        "bits_per_byte": _sig(8.0 * bo / bi) if bi else None,
        "members": summary.members,
        "chunks": summary.chunks,
        "compress_MBps": _sig(comp_mbps),
        "coding_MBps": _sig(coding_mbps),
        "decompress_MBps": _sig(dec_mbps),
        "MBps": _sig(comp_mbps),  # the key mmz.bench.report._plot_sweeps reads
        "compress_MBps_per_worker": _sig(comp_mbps / workers),
        "decompress_MBps_per_worker": _sig(dec_mbps / workers),
        "actor_busy_MBps_mean": _sig(sum(busy) / len(busy)) if busy else None,
        "actor_busy_fraction": _sig(busy_secs / (workers * summary.coding_seconds))
        if summary.coding_seconds > 0 else None,
        "actors_used": len(actors),
        "actors": actors,
        "decode_busy_MBps": _sig(bi / MB / dec_busy) if dec_busy > 0 else None,
        "roundtrip_ok": not problems,
        "roundtrip_problems": problems[:50],
        "archive": archive if args.keep else None,
    }


def probe_thread_env(cpus: int) -> dict[str, Any]:
    """The thread variables a task started like a corpus-job actor (same CPUs and runtime_env) sees."""
    import ray

    @ray.remote
    def probe() -> dict[str, Any]:
        return {"env": {k: os.environ.get(k) for k in THREAD_VARS}, "cpu_ids": ray.get_runtime_context()
                .get_assigned_resources().get("CPU")}

    ref = probe.options(num_cpus=cpus, runtime_env={"env_vars": thread_env(cpus)}).remote()
    return ray.get(ref, timeout=300)


MEDIAN_KEYS = ("seconds", "startup_seconds", "coding_seconds", "decompress_seconds", "decompress_startup_seconds")


def summarize(runs: list[dict[str, Any]], sweep: list[int]) -> list[dict[str, Any]]:
    """One row per worker count: the median of every timing over the repeated runs.

    Throughputs are recomputed from the median seconds; the remaining fields (sizes, actors, round
    trip) come from the run whose compress time is the median. A count with a failed run reports it.
    """
    rows = []
    for w in sweep:
        mine = [r for r in runs if r["workers"] == w]
        if not mine:
            continue
        bad = [r for r in mine if "error" in r]
        if bad:
            rows.append(dict(bad[0]))
            continue
        mine.sort(key=lambda r: r["seconds"])
        row = dict(mine[(len(mine) - 1) // 2])
        row.pop("repeat", None)
        row["repeats"] = len(mine)
        row["roundtrip_ok"] = all(r["roundtrip_ok"] for r in mine)
        for k in MEDIAN_KEYS:
            vals = sorted(float(r[k]) for r in mine)
            mid = len(vals) // 2
            row[k] = _sig(vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2)
        bi = row["bytes_in"]
        row["compress_MBps"] = row["MBps"] = _sig(bi / MB / row["seconds"])
        row["coding_MBps"] = _sig(bi / MB / row["coding_seconds"]) if row["coding_seconds"] > 0 else 0.0
        row["decompress_MBps"] = _sig(bi / MB / row["decompress_seconds"])
        row["compress_MBps_per_worker"] = _sig(row["compress_MBps"] / w)
        row["decompress_MBps_per_worker"] = _sig(row["decompress_MBps"] / w)
        rows.append(row)
    add_speedups(rows)
    return rows


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """``speedup_vs_1`` (compress), ``decompress_speedup_vs_1`` and ``efficiency`` relative to the 1-worker run."""
    base = next((r for r in rows if r["workers"] == 1 and "error" not in r), None)
    for r in rows:
        if "error" in r:
            continue
        ok = base is not None
        r["speedup_vs_1"] = _sig(r["compress_MBps"] / base["compress_MBps"]) if ok else None
        r["decompress_speedup_vs_1"] = _sig(r["decompress_MBps"] / base["decompress_MBps"]) if ok else None
        r["coding_speedup_vs_1"] = (_sig(r["coding_MBps"] / base["coding_MBps"])
                                    if ok and base["coding_MBps"] > 0 else None)
        r["efficiency"] = _sig(r["speedup_vs_1"] / r["workers"]) if ok else None


def cost_model(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Wall-hour estimates for enwik9 and LibriSpeech-960h on 1..128 nodes from the measured runs."""
    good = [r for r in rows if "error" not in r and r["roundtrip_ok"]]
    if not good:
        return None
    lo = min(good, key=lambda r: r["workers"])
    hi = max(good, key=lambda r: r["workers"])
    model: dict[str, Any] = {
        "formula": FORMULA,
        "cores_per_node": CORES_PER_NODE,
        "base_workers": lo["workers"],
        "efficiency_workers": hi["workers"],
        "assumptions": [
            "one worker per core; the per-core throughput measured on this input holds for every modality "
            "(it does not: text, images and audio code at different speeds, so treat this as an order of "
            "magnitude unless the input resembles the dataset)",
            "the scaling efficiency measured at the largest worker count holds at every cluster size "
            "(1.0 when only one worker count was measured)",
            "compress/decompress throughput only; reading the dataset from storage and moving it to the "
            "nodes are not included",
            *(d["assumption"] for d in DATASETS.values()),
        ],
        "datasets": {k: d["bytes"] for k, d in DATASETS.items()},
    }
    per_dir = {}
    for key in ("compress", "decompress"):
        per_core = lo[f"{key}_MBps"] / lo["workers"]
        measured = hi[f"{key}_MBps"] / (hi["workers"] * per_core) if per_core > 0 else 0.0
        used = min(1.0, measured)
        model[f"per_core_{key}_MBps"] = _sig(per_core)
        model[f"{key}_efficiency_measured"] = _sig(measured)
        model[f"{key}_efficiency_used"] = _sig(used)
        per_dir[key] = (per_core, used)
    estimates = []
    for name, d in DATASETS.items():
        for nodes in NODE_COUNTS:
            cores = CORES_PER_NODE * nodes
            row: dict[str, Any] = {"dataset": name, "bytes": d["bytes"], "nodes": nodes, "cores": cores}
            for key, (per_core, eff) in per_dir.items():
                rate = per_core * MB * cores * eff
                row[f"{key}_hours"] = _sig(d["bytes"] / rate / 3600) if rate > 0 else None
            estimates.append(row)
    model["estimates"] = estimates
    return model


# --- report --------------------------------------------------------------------------------------

def machine_block(before: list[float]) -> dict[str, Any]:
    """Driver machine, versions and the Ray cluster the runs used."""
    import ray

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "loadavg_before": [round(x, 2) for x in before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "ray": ray.__version__,
        "mmz": mmz.__version__,
        "cluster": {"nodes": len(nodes), "cpus": ray.cluster_resources().get("CPU", 0),
                    "cpus_per_node": sorted(n.get("Resources", {}).get("CPU", 0) for n in nodes)},
        "note": "cpu, cores and load average are the driver's; cluster lists every node's CPUs",
    }


def print_table(rows: list[dict[str, Any]], stream: Any = None) -> None:
    out = stream or sys.stdout
    head = (f"{'workers':>7} {'seconds':>9} {'start s':>8} {'comp MB/s':>10} {'coding MB/s':>11} {'dec MB/s':>9} "
            f"{'busy MB/s':>9} {'speedup':>8} {'coding x':>8} {'dec x':>6} {'bits/byte':>9}  roundtrip")
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in rows:
        if "error" in r:
            print(f"{r['workers']:>7}  FAILED: {r['error']}", file=out)
            continue

        def num(v: Any, fmt: str) -> str:
            return format(v, fmt) if isinstance(v, (int, float)) else "-"

        print(f"{r['workers']:>7} {r['seconds']:>9.2f} {r['startup_seconds']:>8.2f} {r['compress_MBps']:>10.3f} "
              f"{r['coding_MBps']:>11.3f} {r['decompress_MBps']:>9.3f} {num(r['actor_busy_MBps_mean'], '>9.3f')} "
              f"{num(r.get('speedup_vs_1'), '>8.2f')} {num(r.get('coding_speedup_vs_1'), '>8.2f')} "
              f"{num(r.get('decompress_speedup_vs_1'), '>6.2f')} "
              f"{num(r['bits_per_byte'], '>9.4f')}  {'ok' if r['roundtrip_ok'] else 'MISMATCH'}", file=out)
    out.flush()


def write_json(path: str, doc: dict[str, Any]) -> None:
    import json

    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


# --- main ----------------------------------------------------------------------------------------

def _prepare(args: argparse.Namespace) -> Options:
    """Check everything that does not need Ray; raises :class:`UsageError`."""
    if args.cpus_per_worker < 1:
        raise UsageError("--cpus-per-worker must be >= 1")
    if args.repeat < 1:
        raise UsageError("--repeat must be >= 1")
    if args.batch_bytes < 1:
        raise UsageError("--batch-bytes must be >= 1")
    try:
        opts = Options(args.level, args.codec, args.chunk_size).check()
    except MmzError as e:
        raise UsageError(str(e)) from None
    args.input = absolute(args.input)
    fs, root = F.resolve(args.input)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        raise UsageError(f"--input {args.input}: no such file or directory")
    args.out_json = os.path.abspath(args.out_json)
    parent = os.path.dirname(args.out_json)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out-json {args.out_json}: cannot create {parent}: {e}") from None
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--out-json {args.out_json}: {parent} is not writable")
    if args.keep:
        args.keep = absolute(args.keep)
        kfs, kroot = F.resolve(args.keep)
        names = [f"w{w}.mmza" if rep == 0 else f"w{w}.r{rep}.mmza" for rep in range(args.repeat)
                 for w in args.workers_sweep]
        taken = [n for n in names if kfs.get_file_info(F.join(kroot, n)).type != pafs.FileType.NotFound]
        if taken:
            raise UsageError(f"--keep {args.keep}: {', '.join(taken)} already exist(s); a benchmark needs fresh "
                             "archives (an existing one would be resumed, not recompressed); remove them or "
                             "choose another directory")
        kfs.create_dir(kroot, recursive=True)
    return opts


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv] if argv is None else [sys.executable, __file__, *argv])
    load_before = list(os.getloadavg())
    try:
        opts = _prepare(args)
    except UsageError as e:
        p.error(str(e))
    try:
        sources, hash_secs = hash_sources(args.input)
    except (MmzError, OSError) as e:
        print(f"benchmark_corpus: reading the input failed: {e}", file=sys.stderr)
        return 1
    total = sum(size for size, _ in sources.values())
    if not sources or total == 0:
        p.error(f"--input {args.input}: no data to compress ({len(sources)} files, {total} bytes)")
    try:
        init_ray(args.address)
        import ray

        cpus = ray.cluster_resources().get("CPU", 0)
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    except Exception as e:  # noqa: BLE001 - any failure to reach Ray is reported the same way
        print(f"benchmark_corpus: cannot start or join Ray (--address {args.address}): {e}", file=sys.stderr)
        return 1
    need = max(args.workers_sweep) * args.cpus_per_worker
    if need > cpus:
        p.error(f"--workers-sweep {max(args.workers_sweep)} x --cpus-per-worker {args.cpus_per_worker} needs "
                f"{need} CPUs, the Ray cluster has {cpus:g}; actors beyond that would wait forever")
    if nodes > 1 and not args.keep:
        p.error(f"the Ray cluster has {nodes} nodes: pass --keep DIR on storage every node shares "
                "(the default temporary directory is local to the driver)")
    try:
        seen = probe_thread_env(args.cpus_per_worker)
    except Exception as e:  # noqa: BLE001 - the benchmark itself can still run
        seen = {"error": f"{type(e).__name__}: {e}"}
    scratch = args.keep or tempfile.mkdtemp(prefix="mmzbench")
    notes = [f"input read and hashed once before the sweep ({hash_secs:.1f}s): runs see the same page cache",
             "seconds = wall time of compress_corpus (actor start and codec warm-up, listing, compression, "
             "index) = startup_seconds (until every actor is ready: worker process, imports, codec warm-up) + "
             "coding_seconds (listing, compression, index); coding_MBps and coding_speedup_vs_1 are the "
             "throughput once the actors are up, which is what a long job sees",
             "decompress = verify of every member (full decode + chunk xxh3 + member sha256, nothing "
             "written) with at most <workers> Ray tasks of 1 CPU in flight, after warming <workers> Ray worker "
             "processes (decompress_startup_seconds, not included)",
             "actor busy MB/s = an actor's raw bytes / the sum of its chunks' compress seconds (shard journals)"]
    if seen.get("env") != thread_env(args.cpus_per_worker):
        notes.append(f"WARNING: a probe task with the actors' runtime_env saw thread variables {seen}, "
                     f"expected {thread_env(args.cpus_per_worker)}: thread pools may not be capped")
    if load_before[0] > 0.5 * (os.cpu_count() or 1):
        notes.append(f"the driver machine was busy before the sweep (load average {load_before[0]:.2f} on "
                     f"{os.cpu_count()} cores): throughput may be understated")
    doc: dict[str, Any] = {
        "benchmark": "corpus_scaling",
        "mmz_version": mmz.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "cwd": os.getcwd(),
        "input": args.input,
        "input_files": len(sources),
        "input_bytes": total,
        "options": {"codec": opts.codec, "level": opts.level, "chunk_size": opts.chunk_size,
                    "batch_bytes": args.batch_bytes, "cpus_per_worker": args.cpus_per_worker,
                    "actor_thread_env": thread_env(args.cpus_per_worker), "actor_thread_env_seen": seen},
        "units": {"MBps": "10^6 bytes per second of raw (uncompressed) input", "seconds": "wall clock"},
        "notes": notes,
        "complete": False,
        "workers": [],
    }
    runs: list[dict[str, Any]] = []
    if args.repeat > 1:
        doc["runs"] = runs
    failed = False
    try:
        for rep in range(args.repeat):
            for w in args.workers_sweep:
                name = f"w{w}.mmza" if rep == 0 else f"w{w}.r{rep}.mmza"
                archive = (posixpath if "://" in scratch else os.path).join(scratch, name)
                print(f"[benchmark] {w} worker(s){f', repeat {rep + 1}/{args.repeat}' if args.repeat > 1 else ''}: "
                      f"compressing {total} bytes in {len(sources)} files -> {archive}", flush=True)
                try:
                    row = run_one(args, w, archive, sources, opts)
                except Exception as e:  # noqa: BLE001 - reported in the JSON and on stderr, the sweep stops
                    traceback.print_exc(file=sys.stderr)
                    print(f"benchmark_corpus: the run with {w} worker(s) failed: {type(e).__name__}: {e}",
                          file=sys.stderr)
                    runs.append({"workers": w, "repeat": rep, "error": f"{type(e).__name__}: {e}",
                                 "roundtrip_ok": False})
                    failed = True
                    break
                finally:
                    if not args.keep:
                        shutil.rmtree(archive, ignore_errors=True)
                row["repeat"] = rep
                runs.append(row)
                if not row["roundtrip_ok"]:
                    failed = True
                    for prob in row["roundtrip_problems"]:
                        print(f"benchmark_corpus: {w} worker(s): round trip: {prob}", file=sys.stderr)
                if rep == 0 and row["actors_used"] < w:
                    notes.append(f"{w} workers: only {row['actors_used']} actors got work (too few chunks/batches "
                                 "for this many workers: use a bigger input or a smaller --chunk-size/--batch-bytes)")
                if rep == 0 and (row["actor_busy_fraction"] or 0) < 0.5:
                    notes.append(f"{w} workers: actors were busy only {100 * (row['actor_busy_fraction'] or 0):.0f}% "
                                 "of the coding time: fixed costs (scheduling, index) dominate; use a bigger input "
                                 "for throughput and scaling numbers")
                doc["workers"] = rows = summarize(runs, args.workers_sweep)
                write_json(args.out_json, doc)
            if failed:
                break
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    doc["workers"] = rows = summarize(runs, args.workers_sweep)
    if 1 not in args.workers_sweep:
        notes.append("no 1-worker run: speedup_vs_1 and efficiency are null")
    doc["cost_model"] = cost_model(rows)
    doc["machine"] = machine_block(load_before)
    doc["complete"] = not failed
    doc["roundtrip_ok"] = bool(rows) and all(r.get("roundtrip_ok") for r in rows)
    write_json(args.out_json, doc)
    print(f"\n== corpus job scaling: {args.input} ({total} bytes, {len(sources)} files), codec {opts.codec}, "
          f"level {opts.level}, chunk {opts.chunk_size}, {args.cpus_per_worker} CPU/worker; MB = 10^6 bytes")
    print_table(rows)
    cm = doc["cost_model"]
    if cm:
        print(f"\ncost model (per core {cm['per_core_compress_MBps']:.3f} MB/s compress, efficiency "
              f"{cm['compress_efficiency_used']:.2f} at {cm['efficiency_workers']} workers): "
              + ", ".join(f"{e['dataset']} on {e['nodes']} nodes {e['compress_hours']:.3g} h"
                          for e in cm["estimates"] if e["nodes"] in (1, 128) and e["compress_hours"] is not None))
    print(f"results: {args.out_json}")
    if failed:
        print("benchmark_corpus: FAILED (see the messages above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
