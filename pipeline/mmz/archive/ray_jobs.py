"""Ray corpus jobs: compress a corpus into an archive with a pool of stateful actors,
decompress or verify an archive in parallel. ``jobs/*.py`` are thin command lines over this.

Design (see docs/ARCHITECTURE.md, "Archive and Ray jobs"): Ray core actors, one per
worker CPU, each loading the codec once and owning one append-only shard plus its
journal; the driver streams the listing, keeps at most ``2 x workers`` batches in
flight (back-pressure), dedups completions, and writes the Arrow index last.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import ray

from mmz.archive import format as F
from mmz.archive.reader import Archive, Result
from mmz.archive.writer import (
    DEFAULT_BATCH_BYTES,
    ChunkSpec,
    Options,
    ShardWriter,
    Source,
    Summary,
    Tracker,
    finish,
    iter_sources,
    load_job,
    load_journals,
    plan_batches,
    plan_member,
    process_batch,
)

THREAD_VARS = ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "ORT_NUM_THREADS", "MMZ_THREADS")


def absolute(path: str) -> str:
    """A path every worker resolves the same way: URIs unchanged, local paths made absolute."""
    return path if "://" in path else os.path.abspath(path)


def init_ray(address: str | None, object_store_memory: int | None = None) -> None:
    """Connect to a cluster (``None``/``auto``: the job's cluster) or start one (``local``).

    ``object_store_memory`` (bytes) sizes the object store of a private ``local`` instance; a
    cluster's store is sized when the cluster starts (``ray start --object-store-memory``).
    The corpus job keeps at most two batches per actor in flight, so the store holds at most
    ``2 x workers x batch-bytes`` of chunk data at any time.
    """
    if ray.is_initialized():
        return
    if address == "local":
        ray.init(address="local", include_dashboard=False, log_to_driver=True,
                 object_store_memory=object_store_memory)
    else:
        if object_store_memory is not None:
            print("[mmz-archive] note: --object-store-memory only applies with --address local; size a "
                  "cluster's store with `ray start --object-store-memory`", file=sys.stderr, flush=True)
        ray.init(address=address or None, log_to_driver=True)


def thread_env(cpus: int) -> dict[str, str]:
    """Environment that caps every thread pool of a worker (Rayon, OpenMP, ONNX Runtime) at ``cpus``."""
    return {k: str(cpus) for k in THREAD_VARS}


@ray.remote
class ShardActor:
    """Compresses batches of chunks and appends their frames to its own shard.

    ``fault`` (tests only): ``{"after": N}`` makes the first incarnation of the
    actor write half a frame and die with ``os._exit`` when appending its N-th chunk.
    """

    def __init__(self, source_uri: str, output_uri: str, shard: str, options: dict[str, Any], cpus: int,
                 fault: dict[str, Any] | None = None) -> None:
        import mmz

        self.sfs, _ = F.resolve(source_uri)
        self.fs, self.root = F.resolve(output_uri)
        self.opts = Options(**options).check()
        self.writer = ShardWriter(self.fs, self.root, shard)
        self.appended = 0
        self.fault = fault if fault and not ray.get_runtime_context().was_current_actor_reconstructed else None
        mmz.compress(b"warm up the codec once per actor", self.opts.level, codec=self.opts.codec, threads=1)

    def _before_append(self) -> None:
        self.appended += 1
        if self.fault and self.appended >= int(self.fault["after"]):
            self.writer._data.write(b"\x00" * 37)  # a torn frame, as a crash mid-write leaves
            self.writer._data.flush()
            os._exit(1)

    def process(self, batch: list[ChunkSpec]) -> list[dict[str, Any]]:
        """Compress and append every chunk of ``batch``; returns their index records."""
        return process_batch(self.sfs, self.writer, batch, self.opts, self._before_append)

    def pid(self) -> int:
        """Process id (for tests; also the readiness barrier: it returns once ``__init__`` has run)."""
        return os.getpid()


class Progress:
    """A live progress line: files, bytes in/out, ratio, MB/s per worker, ETA."""

    def __init__(self, workers: int, every: float = 2.0, stream: Any = None) -> None:
        self.t0 = time.time()
        self.every = every
        self.last = 0.0
        self.stream = stream or sys.stdout
        self.files_done = self.files_listed = 0
        self.bytes_listed = self.bytes_in = self.bytes_out = 0
        self.worker_bytes = [0] * workers
        self.worker_secs = [0.0] * workers
        self.listing_done = False

    def tick(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last < self.every:
            return
        self.last = now
        el = max(1e-9, now - self.t0)
        rate = self.bytes_in / el
        pairs = zip(self.worker_bytes, self.worker_secs, strict=True)
        per = " ".join(f"{b / 1e6 / s:.2f}" if s else "-" for b, s in pairs)
        left = max(0, self.bytes_listed - self.bytes_in)
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        ratio = self.bytes_in / self.bytes_out if self.bytes_out else 0.0
        more = "" if self.listing_done else "+"
        print(f"[mmz-archive] files {self.files_done}/{self.files_listed}{more} | in {self.bytes_in / 1e6:.2f} MB "
              f"out {self.bytes_out / 1e6:.2f} MB ratio {ratio:.3f} | {rate / 1e6:.2f} MB/s total, "
              f"MB/s per worker [{per}] | ETA {eta}{more} | {el:.0f}s", file=self.stream, flush=True)


def compress_corpus(source: str, output: str, *, workers: int = 2, opts: Options | None = None,
                    batch_bytes: int = DEFAULT_BATCH_BYTES, cpus_per_worker: int = 1,
                    fault_after: int | None = None, exit_after_chunks: int | None = None,
                    progress_every: float = 2.0) -> Summary:
    """Compress every file under ``source`` into the archive ``output`` with ``workers`` actors.

    Resumable: completed chunks found in the shard journals are not redone.
    ``fault_after`` and ``exit_after_chunks`` inject failures for tests.
    """
    opts = (opts or Options()).check()
    t0 = time.time()
    source, output = absolute(source), absolute(output)
    ofs, root = F.resolve(output)
    sfs, sroot = F.resolve(source)
    run = load_job(ofs, root, opts, resume=True)
    tracker = Tracker()
    for rec in load_journals(ofs, root):
        tracker.add(rec)
    resumed = len(tracker.done)
    env = {"env_vars": thread_env(cpus_per_worker)}
    actors = [
        ShardActor.options(num_cpus=cpus_per_worker, max_restarts=3, max_task_retries=3, runtime_env=env).remote(
            source, output, f"{F.SHARDS}/{run:02d}-{i:04d}.mmzs", asdict(opts), cpus_per_worker,
            {"after": fault_after} if fault_after and i == 0 else None)
        for i in range(workers)
    ]
    # Readiness barrier: every actor has imported mmz, opened its shard and warmed its codec. Work would
    # wait for this anyway; waiting here separates the start-up cost from the coding throughput.
    ray.get([a.pid.remote() for a in actors])
    t_ready = time.time()
    prog = Progress(workers, progress_every)
    listed: list[Source] = []
    remaining: dict[str, int] = {}

    def todo() -> Iterator[ChunkSpec]:
        for src in iter_sources(sfs, [sroot]):
            listed.append(src)
            prog.files_listed += 1
            prog.bytes_listed += src.size
            specs = plan_member(sfs, src, opts.chunk_size)
            remaining[src.name] = len(specs)
            for spec in specs:
                if tracker.valid_for(spec):
                    _account(prog, remaining, spec.name, int(spec.length), int(tracker.done[(spec.name, spec.chunk)]
                                                                             ["compressed_len"]))
                else:
                    yield spec
        prog.listing_done = True

    inflight: dict[Any, int] = {}
    load = [0] * workers
    completed = 0

    def drain(block_until: int) -> None:
        nonlocal completed
        while len(inflight) > block_until:
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=progress_every)
            for ref in ready:
                w = inflight.pop(ref)
                load[w] -= 1
                for rec in ray.get(ref):
                    if tracker.add(rec):
                        completed += 1
                        prog.worker_bytes[w] += int(rec["raw_len"])
                        prog.worker_secs[w] += float(rec["seconds"])
                        _account(prog, remaining, rec["path"], int(rec["raw_len"]), int(rec["compressed_len"]))
                if exit_after_chunks is not None and completed >= exit_after_chunks:
                    print(f"[mmz-archive] test: driver exits after {completed} chunks", flush=True)
                    os._exit(3)
            prog.tick()

    for batch in plan_batches(todo(), batch_bytes):
        drain(2 * workers - 1)
        w = min(range(workers), key=lambda i: load[i])
        load[w] += 1
        inflight[actors[w].process.remote(batch)] = w
    drain(0)
    prog.listing_done = True
    prog.tick(force=True)
    summary = finish(ofs, root, listed, tracker, opts, tool="jobs/compress_corpus.py")
    summary.seconds = time.time() - t0
    summary.startup_seconds = t_ready - t0
    summary.coding_seconds = time.time() - t_ready
    for a in actors:
        ray.kill(a)
    print(f"[mmz-archive] done: {summary.members} members, {summary.chunks} chunks ({resumed} resumed from "
          f"journals, {tracker.duplicates} duplicate completions dropped), {summary.bytes_in} -> "
          f"{summary.bytes_out} bytes in {summary.seconds:.1f}s ({summary.startup_seconds:.1f}s actor start-up)",
          flush=True)
    summary.duplicates = tracker.duplicates
    return summary


def _account(prog: Progress, remaining: dict[str, int], name: str, raw: int, comp: int) -> None:
    prog.bytes_in += raw
    prog.bytes_out += comp
    remaining[name] -= 1
    if remaining[name] == 0:
        prog.files_done += 1


@ray.remote(num_cpus=1)
def _member_task(archive: str, names: list[str], dest: str | None) -> list[tuple[str, bool, str, float]]:
    arc = Archive(archive)
    out = []
    for n in names:
        t = time.time()
        r = arc.extract_member(n, dest) if dest is not None else arc.verify_member(n)
        out.append((r.path, r.ok, r.error, time.time() - t))
    return out


def warm_workers(workers: int) -> float:
    """Start ``workers`` Ray worker processes for :func:`members_parallel` and import mmz in each.

    Ray keeps idle workers of the same runtime_env for reuse, so a following ``members_parallel``
    pays no process start-up or import. Returns the seconds it took (benchmarks report it apart).
    """
    t = time.time()
    env = {"env_vars": thread_env(1)}
    ray.get([_warm_task.options(runtime_env=env).remote(0.2) for _ in range(workers)])
    return time.time() - t


@ray.remote(num_cpus=1)
def _warm_task(hold: float) -> int:
    import mmz  # noqa: F401 - the import is the warm-up

    time.sleep(hold)  # keep this worker busy so that the next warm-up task starts another process
    return os.getpid()


def member_groups(sizes: list[tuple[str, int]], workers: int, group_bytes: int = 4 << 20) -> list[list[str]]:
    """Members cut into task groups, largest group first (so no big group is left for the end).

    ``sizes`` are ``(member, compressed bytes)`` in archive order. A group closes at ``group_bytes``
    or at an eighth of the work per worker, whichever is smaller, so every worker gets several groups
    even for a small archive and the last one to finish is short.
    """
    total = sum(n for _, n in sizes)
    cap = max(1, min(group_bytes, total // max(1, 8 * workers)))
    groups: list[list[str]] = []
    weights: list[int] = []
    for name, n in sizes:
        if not groups or weights[-1] >= cap:
            groups.append([])
            weights.append(0)
        groups[-1].append(name)
        weights[-1] += n
    order = sorted(range(len(groups)), key=lambda i: -weights[i])
    return [groups[i] for i in order]


def members_parallel(archive: str, names: list[str] | None, dest: str | None, workers: int = 2,
                     group_bytes: int = 4 << 20, max_inflight: int | None = None) -> list[tuple[Result, float]]:
    """Extract (``dest`` given) or verify members in parallel Ray tasks, at most ``2 x workers`` in flight.

    ``max_inflight`` overrides that bound; ``max_inflight=workers`` caps the decoding at
    ``workers`` CPUs even on a bigger cluster (used by jobs/benchmark_corpus.py to time
    decoding at a given worker count). Returns ``(result, seconds)`` per member, in archive order.
    """
    inflight = 2 * workers if max_inflight is None else max_inflight
    if inflight < 1:
        raise ValueError(f"max_inflight must be >= 1, got {inflight}")
    archive = absolute(archive)
    dest = absolute(dest) if dest is not None else None
    arc = Archive(archive)
    order = [m.path for m in arc.members()] if names is None else list(names)
    groups = member_groups([(n, arc.member(n).compressed) for n in order], workers, group_bytes)
    env = {"env_vars": thread_env(1)}
    pending: list[Any] = []
    results: dict[str, tuple[Result, float]] = {}
    for g in groups:
        while len(pending) >= inflight:
            ready, pending = ray.wait(pending, num_returns=1)
            for path, ok, err, secs in ray.get(ready[0]):
                results[path] = (Result(path, ok, err), secs)
        pending.append(_member_task.options(runtime_env=env).remote(archive, g, dest))
    for ref in pending:
        for path, ok, err, secs in ray.get(ref):
            results[path] = (Result(path, ok, err), secs)
    return [results[n] for n in order]
