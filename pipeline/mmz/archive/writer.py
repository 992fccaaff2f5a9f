"""Writing archives: source listing, chunk planning, shard writers with journals, the index.

The same pieces serve the in-process ``mmz archive create`` (a thread pool, one
shard per thread) and the Ray job ``jobs/compress_corpus.py`` (one shard per actor).
A writer appends each finished frame to its shard, then one JSON line to the
shard's journal; the index is built last from the journals, so frames of a killed
attempt that never reached the journal are simply never referenced.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import posixpath
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

import mmz
from mmz import _core, modality
from mmz import codec as _codec
from mmz.archive import format as F
from mmz.errors import MmzError

#: Default raw bytes per archive chunk (each chunk is its own frame).
DEFAULT_CHUNK_SIZE = 8 << 20
#: Small members are grouped into batches of about this many raw bytes per task
#: (a chunk bigger than this is a task of its own).
DEFAULT_BATCH_BYTES = 1 << 20
MAX_BATCH_MEMBERS = 256
HASH_BLOCK = 4 << 20
#: Image/audio members up to this size stay one archive chunk (see :func:`is_whole_media`).
WHOLE_MEDIA_LIMIT = 256 << 20
#: Leading bytes read to recognise such a member.
SNIFF_BYTES = 4096


@dataclass(frozen=True)
class Source:
    """One input file: its filesystem path and its member name."""

    fs_path: str
    name: str
    size: int
    mtime_ns: int
    mode: int


@dataclass(frozen=True)
class ChunkSpec:
    """One chunk to compress: ``length`` raw bytes at ``chunk_offset`` of a member."""

    fs_path: str
    name: str
    chunk: int
    chunk_offset: int
    length: int
    member_size: int
    mtime_ns: int
    hash_member: bool


@dataclass
class Options:
    """Compression options of one archive (stored in job.json, checked on resume)."""

    level: int = _codec.DEFAULT_LEVEL
    codec: str = "auto"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    modality: str | None = None

    def check(self) -> Options:
        """Validate the options; raises :class:`MmzError`."""
        _codec.check_level(self.level)
        _codec.resolve_codec(self.codec)
        if self.modality is not None:
            _codec.check_modality(self.modality)
        if not 1 <= self.chunk_size <= 1 << 30:
            raise MmzError(f"chunk size must be between 1 byte and 1 GiB, got {self.chunk_size}")
        return self


def _local_mode(fs: pafs.FileSystem, path: str) -> int:
    """Permission bits of a local file (0o644 where the filesystem has no modes)."""
    base: Any = fs
    while isinstance(base, pafs.SubTreeFileSystem):
        path = posixpath.join(base.base_path, path.lstrip("/"))
        base = base.base_fs
    if isinstance(base, pafs.LocalFileSystem):
        try:
            return stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            pass
    return 0o644


def iter_sources(fs: pafs.FileSystem, roots: list[str]) -> Iterator[Source]:
    """List regular files under each root, directory by directory (streaming, sorted).

    A directory root contributes members named relative to it; a file root is
    named by its base name. Symbolic links are not followed.
    """
    seen: set[str] = set()
    for root in roots:
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            raise MmzError(f"{root}: no such file or directory")
        if info.type == pafs.FileType.File:
            items: Iterable[tuple[pafs.FileInfo, str]] = [(info, posixpath.basename(root.rstrip("/")))]
        else:
            items = _walk(fs, root.rstrip("/") or "/")
        for fi, name in items:
            F.check_member_name(name)
            if name in seen:
                raise MmzError(f"two sources give the same member name {name!r}; archive them separately")
            seen.add(name)
            mtime = fi.mtime_ns if fi.mtime_ns is not None else 0
            yield Source(fi.path, name, int(fi.size or 0), int(mtime), _local_mode(fs, fi.path))


def _walk(fs: pafs.FileSystem, top: str) -> Iterator[tuple[pafs.FileInfo, str]]:
    stack = [top]
    while stack:
        d = stack.pop()
        entries = sorted(fs.get_file_info(pafs.FileSelector(d)), key=lambda i: i.path)
        subdirs = []
        for e in entries:
            if e.type == pafs.FileType.File:
                rel = posixpath.relpath(e.path, top) if top != "/" else e.path.lstrip("/")
                yield e, rel
            elif e.type == pafs.FileType.Directory:
                subdirs.append(e.path)
        stack.extend(reversed(subdirs))


def plan_chunks(src: Source, chunk_size: int) -> list[ChunkSpec]:
    """Cut one member into chunks of ``chunk_size`` raw bytes (one chunk for an empty file)."""
    n = 1 if chunk_size >= src.size else math.ceil(src.size / chunk_size)
    return [ChunkSpec(src.fs_path, src.name, i, i * chunk_size, min(chunk_size, src.size - i * chunk_size),
                      src.size, src.mtime_ns, i == 0)
            for i in range(n)]


def is_whole_media(fs: pafs.FileSystem, src: Source, chunk_size: int) -> bool:
    """True for an image or audio member that must stay one archive chunk.

    Its reversible transform (PNG -> pixels) and its sample layout (WAV/PNM/BMP/TIFF header) need
    the whole file: cut into byte ranges, every chunk after the first would be coded as opaque
    bytes (PNG: 4.25 instead of 3.69 bits/byte measured at 1 MiB chunks). Such a member becomes one
    frame, which mmz.compress still cuts into codec chunks. Only members bigger than a chunk and
    at most :data:`WHOLE_MEDIA_LIMIT` are sniffed (one small read each).
    """
    if not chunk_size < src.size <= WHOLE_MEDIA_LIMIT:
        return False
    try:
        head = _read_range(fs, src.fs_path, 0, min(src.size, SNIFF_BYTES))
    except OSError:
        return False
    return modality.detect(head, src.name) in ("image", "audio")


def plan_member(fs: pafs.FileSystem, src: Source, chunk_size: int) -> list[ChunkSpec]:
    """The chunks of one member: byte ranges of ``chunk_size``, or one chunk for whole media."""
    return plan_chunks(src, src.size if is_whole_media(fs, src, chunk_size) else chunk_size)


def member_records(tracker: Tracker, src: Source) -> list[dict[str, Any]]:
    """The completed records of a member in chunk order, up to the chunk that covers its end."""
    recs: list[dict[str, Any]] = []
    covered = 0
    while not recs or covered < src.size:
        rec = tracker.done.get(chunk_key(src.name, len(recs)))
        if rec is None:
            raise MmzError(f"internal error: chunk {len(recs)} of {src.name!r} was never written")
        recs.append(rec)
        covered += int(rec["raw_len"])
    return recs


def plan_batches(chunks: Iterable[ChunkSpec], batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[list[ChunkSpec]]:
    """Group chunks into tasks: big chunks alone, small ones together up to ``batch_bytes``."""
    batch: list[ChunkSpec] = []
    size = 0
    for c in chunks:
        if batch and (size + c.length > batch_bytes or len(batch) >= MAX_BATCH_MEMBERS):
            yield batch
            batch, size = [], 0
        batch.append(c)
        size += c.length
    if batch:
        yield batch


def chunk_key(path: str, chunk: int) -> tuple[str, int]:
    """Identity of a chunk across attempts."""
    return (path, chunk)


class ShardWriter:
    """Appends frames to one shard file and records each finished frame in its journal.

    One process/thread owns a shard at a time; a restarted owner reopens it and
    appends after whatever a killed attempt left behind.
    """

    def __init__(self, fs: pafs.FileSystem, root: str, shard: str) -> None:
        self.fs = fs
        self.shard = shard  # relative to the archive root, e.g. "shards/00-0001.mmzs"
        self.path = F.join(root, shard)
        self.journal_path = self.path[: -len(".mmzs")] + ".journal"
        fs.create_dir(posixpath.dirname(self.path), recursive=True)
        self._repair_journal()
        info = fs.get_file_info(self.path)
        self.size = int(info.size) if info.type == pafs.FileType.File else 0
        self._data = fs.open_append_stream(self.path) if self.size else fs.open_output_stream(self.path)
        self._journal = fs.open_append_stream(self.journal_path)

    def _repair_journal(self) -> None:
        """Drop a half-written last journal line left by a killed writer."""
        info = self.fs.get_file_info(self.journal_path)
        if info.type != pafs.FileType.File:
            with self.fs.open_output_stream(self.journal_path):
                pass
            return
        raw = F.read_file(self.fs, self.journal_path)
        if raw and not raw.endswith(b"\n"):
            F.write_atomic(self.fs, self.journal_path, raw[: raw.rfind(b"\n") + 1])

    def append(self, frame: bytes, record: dict[str, Any]) -> dict[str, Any]:
        """Append one frame, then its journal line; returns the completed record."""
        offset = self.size
        self._data.write(frame)
        self._data.flush()
        self.size += len(frame)
        rec = {**record, "shard": self.shard, "offset": offset, "compressed_len": len(frame)}
        self._journal.write(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
        self._journal.flush()
        return rec

    def close(self) -> None:
        """Close the shard and journal streams."""
        self._data.close()
        self._journal.close()


def _read_range(fs: pafs.FileSystem, path: str, offset: int, length: int) -> bytes:
    with fs.open_input_file(path) as f:
        data = f.read_at(length, offset) if length else b""
    if len(data) != length:
        raise MmzError(f"{path}: expected {length} bytes at offset {offset}, got {len(data)} (file changed?)")
    return data


def _sha256_file(fs: pafs.FileSystem, path: str) -> str:
    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while True:
            block = f.read(HASH_BLOCK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _chunk_codec(spec: ChunkSpec, opts: Options, data: bytes) -> str:
    """The codec for one archive chunk: ``auto`` decides on the whole member, as ``mmz`` on the
    file would (a member cut into chunks and larger than the auto limit is coded with CM)."""
    if opts.codec != "auto" or spec.length == spec.member_size:
        return opts.codec
    head = data[: _codec.DETECT_BYTES]
    modality = opts.modality or _codec.detect_modality(head, spec.name)
    limit = _codec.auto_neural_limit(opts.level, modality, head)
    return "auto" if spec.member_size <= limit else _codec.resolve_codec("auto")


def compress_spec(fs: pafs.FileSystem, spec: ChunkSpec, opts: Options) -> tuple[bytes, dict[str, Any]]:
    """Read and compress one chunk into a self-contained frame; returns ``(frame, record)``."""
    t0 = time.perf_counter()
    data = _read_range(fs, spec.fs_path, spec.chunk_offset, spec.length)
    frame = mmz.compress(data, opts.level, codec=_chunk_codec(spec, opts, data), modality=opts.modality,
                         name=spec.name, threads=1, chunk_size=max(1, min(opts.chunk_size, 1 << 30)))
    info = mmz.frame_info(frame)
    sha = ""
    if spec.hash_member:
        sha = hashlib.sha256(data).hexdigest() if spec.length == spec.member_size else _sha256_file(fs, spec.fs_path)
    model = info.get("model_id")
    record = {
        "path": spec.name, "member_size": spec.member_size, "mtime_ns": spec.mtime_ns, "chunk": spec.chunk,
        "chunk_offset": spec.chunk_offset, "raw_len": spec.length, "modality": str(info.get("modality", "")),
        "codec": str(info.get("codec", "")), "model_id": model.hex() if isinstance(model, bytes) else "",
        "raw_xxh3": _core.xxh3(data), "sha256": sha, "seconds": time.perf_counter() - t0,
    }
    return frame, record


def process_batch(fs: pafs.FileSystem, writer: ShardWriter, batch: list[ChunkSpec], opts: Options,
                  before_append: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Compress every chunk of a batch and append it to ``writer``; returns the records."""
    out = []
    for spec in batch:
        frame, rec = compress_spec(fs, spec, opts)
        if before_append is not None:
            before_append()
        out.append(writer.append(frame, rec))
    return out


# --- resuming -----------------------------------------------------------------------------------

def load_job(fs: pafs.FileSystem, root: str, opts: Options, resume: bool = True) -> int:
    """Check/record the options of the archive being written; returns the next run number.

    A directory holding shards written with other options is refused rather than mixed.
    """
    fs.create_dir(F.join(root, F.SHARDS), recursive=True)
    job_path = F.join(root, F.JOB)
    want = asdict(opts)
    if fs.get_file_info(job_path).type == pafs.FileType.File:
        job = json.loads(F.read_file(fs, job_path))
        if job.get("options") != want:
            raise MmzError(f"{root} holds an unfinished archive written with other options {job.get('options')}; "
                           "use the same options to resume, or a new output path")
        if not resume:
            raise MmzError(f"{root} already exists; remove it or choose another output")
        run = int(job.get("runs", 0))
    else:
        if fs.get_file_info(F.join(root, F.SEAL)).type == pafs.FileType.File:
            raise MmzError(f"{root} is already a finished archive; remove it or choose another output")
        run = 0
    F.write_atomic(fs, job_path, json.dumps({"options": want, "runs": run + 1}).encode())
    return run


def load_journals(fs: pafs.FileSystem, root: str) -> Iterator[dict[str, Any]]:
    """Every complete record of every shard journal whose frame lies inside its shard."""
    sel = pafs.FileSelector(F.join(root, F.SHARDS), allow_not_found=True)
    infos = {i.path: i for i in fs.get_file_info(sel)}
    for path in sorted(p for p in infos if p.endswith(".journal")):
        shard_info = infos.get(path[: -len(".journal")] + ".mmzs")
        shard_size = int(shard_info.size) if shard_info is not None and shard_info.size is not None else 0
        for line in F.read_file(fs, path).split(b"\n"):
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn line from a killed writer
            if int(rec["offset"]) + int(rec["compressed_len"]) <= shard_size:
                yield rec


class Tracker:
    """Which chunks are done; first completed record of each chunk wins (duplicates are dropped)."""

    def __init__(self) -> None:
        self.done: dict[tuple[str, int], dict[str, Any]] = {}
        self.duplicates = 0

    def add(self, rec: dict[str, Any]) -> bool:
        key = chunk_key(rec["path"], int(rec["chunk"]))
        if key in self.done:
            self.duplicates += 1
            return False
        self.done[key] = rec
        return True

    def valid_for(self, spec: ChunkSpec) -> bool:
        """True when the chunk is done for this exact source version (size and mtime)."""
        rec = self.done.get(chunk_key(spec.name, spec.chunk))
        if rec is None:
            return False
        if (int(rec["member_size"]) != spec.member_size or int(rec["mtime_ns"]) != spec.mtime_ns
                or int(rec["chunk_offset"]) != spec.chunk_offset or int(rec["raw_len"]) != spec.length):
            del self.done[chunk_key(spec.name, spec.chunk)]  # the source or the plan changed: redo
            return False
        return True


# --- finishing ----------------------------------------------------------------------------------

@dataclass
class Summary:
    """What a finished archive write did."""

    members: int = 0
    chunks: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    startup_seconds: float = 0.0  # Ray jobs: until every actor was ready (imports, shard open, codec warm-up)
    coding_seconds: float = 0.0  # Ray jobs: from all actors ready to the index written
    duplicates: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


def finish(fs: pafs.FileSystem, root: str, sources: list[Source], tracker: Tracker, opts: Options,
           tool: str = "mmz archive create") -> Summary:
    """Build and write the index and member table (then the seal) from completed records."""
    cols: dict[str, list[Any]] = {name: [] for name in F.INDEX_SCHEMA.names}
    mcols: dict[str, list[Any]] = {name: [] for name in F.MEMBER_SCHEMA.names}
    models: set[str] = set()
    summary = Summary(duplicates=tracker.duplicates)
    for src in sorted(sources, key=lambda s: s.name):
        recs = member_records(tracker, src)
        n = len(recs)
        for rec in recs:
            for name in F.INDEX_SCHEMA.names:
                cols[name].append(rec[name])
            if rec["model_id"]:
                models.add(rec["model_id"])
        comp = sum(int(r["compressed_len"]) for r in recs)
        row = {"path": src.name, "size": src.size, "mtime_ns": src.mtime_ns, "mode": src.mode,
               "sha256": recs[0]["sha256"], "chunks": n, "compressed": comp, "modality": recs[0]["modality"]}
        for name in F.MEMBER_SCHEMA.names:
            mcols[name].append(row[name])
        summary.members += 1
        summary.chunks += n
        summary.bytes_in += src.size
        summary.bytes_out += comp
        summary.rows.append({"file": src.name, "modality": row["modality"], "bytes": src.size,
                             "compressed": comp, "seconds": sum(float(r.get("seconds", 0)) for r in recs)})
    meta = {
        "mmza.format_version": str(F.FORMAT_VERSION),
        "mmza.tool": f"{tool} (mmz {mmz.__version__})",
        "mmza.tool_version": mmz.__version__,
        "mmza.models": json.dumps(sorted(models)),
        "mmza.level": str(opts.level),
        "mmza.codec": opts.codec,
        "mmza.chunk_size": str(opts.chunk_size),
        "mmza.created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    index = pa.Table.from_pydict(cols, schema=F.INDEX_SCHEMA)
    members = pa.Table.from_pydict(mcols, schema=F.MEMBER_SCHEMA)
    F.write_archive_tables(fs, root, index, members, meta)
    return summary


# --- in-process create --------------------------------------------------------------------------

def create(sources: list[str], output: str, *, level: int = _codec.DEFAULT_LEVEL, codec: str = "auto",
           chunk_size: int = DEFAULT_CHUNK_SIZE, modality: str | None = None, threads: int = 0,
           source_fs: pafs.FileSystem | None = None, output_fs: pafs.FileSystem | None = None,
           resume: bool = False, progress: Callable[[int, int], None] | None = None) -> Summary:
    """Create an archive at ``output`` from files and directories ``sources`` in this process.

    ``threads`` workers (0 = all cores) each own one shard. Paths may be local
    paths or ``pyarrow.fs`` URIs; pass ``source_fs``/``output_fs`` to use a
    specific filesystem (e.g. a ``SubTreeFileSystem``). With ``resume`` an
    unfinished archive from an interrupted run with the same options is continued.
    """
    opts = Options(level, codec, chunk_size, modality).check()
    t0 = time.perf_counter()
    threads = threads or _codec.default_threads()
    ofs, root = F.resolve(output, output_fs)
    run = load_job(ofs, root, opts, resume=resume)
    tracker = Tracker()
    for rec in load_journals(ofs, root):
        tracker.add(rec)
    resolved = [F.resolve(s, source_fs) for s in sources]
    sfs = resolved[0][0] if resolved else pafs.LocalFileSystem()
    listed: list[Source] = []

    local = threading.local()
    writers: list[ShardWriter] = []
    lock = threading.Lock()

    def work(batch: list[ChunkSpec]) -> list[dict[str, Any]]:
        w = getattr(local, "writer", None)
        if w is None:
            with lock:
                w = ShardWriter(ofs, root, f"{F.SHARDS}/{run:02d}-{len(writers):04d}.mmzs")
                writers.append(w)
            local.writer = w
        return process_batch(sfs, w, batch, opts)

    def todo() -> Iterator[ChunkSpec]:
        for fs_i, root_i in resolved:
            if fs_i is not sfs and type(fs_i) is not type(sfs):
                raise MmzError("all sources must be on the same filesystem")
            for src in iter_sources(sfs, [root_i]):
                listed.append(src)
                for spec in plan_member(sfs, src, opts.chunk_size):
                    if not tracker.valid_for(spec):
                        yield spec

    done_in = 0
    pending: set[Future[list[dict[str, Any]]]] = set()
    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="mmza") as pool:
            for batch in plan_batches(todo(), DEFAULT_BATCH_BYTES):
                pending.add(pool.submit(work, batch))
                if len(pending) >= 2 * threads:  # back-pressure: bounded in-flight batches
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    done_in += _collect(finished, tracker, progress, done_in)
            finished, pending = wait(pending)
            _collect(finished, tracker, progress, done_in)
    finally:
        for w in writers:
            w.close()
    summary = finish(ofs, root, listed, tracker, opts)
    summary.seconds = time.perf_counter() - t0
    return summary


def _collect(finished: Iterable[Future[list[dict[str, Any]]]], tracker: Tracker,
             progress: Callable[[int, int], None] | None, done_in: int) -> int:
    n = 0
    for fut in finished:
        for rec in fut.result():
            tracker.add(rec)
            n += int(rec["raw_len"])
            if progress:
                progress(done_in + n, int(rec["compressed_len"]))
    return n
