"""On-disk layout of an ``.mmza`` archive: file names, Arrow schemas, seal file.

An archive is a directory (local or any ``pyarrow.fs`` filesystem)::

    NAME.mmza/
      archive.json          seal: format version + size and xxh3 of both Arrow files (written last)
      index.arrow           one row per chunk (uncompressed Arrow IPC file)
      members.arrow         one row per member (uncompressed Arrow IPC file)
      job.json              options of the run that wrote the shards (for resuming)
      shards/R-S.mmzs       concatenated .mmz frames, appended by one writer each
      shards/R-S.journal    one JSON line per finished frame in the shard (for resuming)

See the "Archive" section of docs/FORMAT.md.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from mmz import _core
from mmz.errors import CorruptDataError, MmzError

FORMAT_VERSION = 1
SEAL = "archive.json"
INDEX = "index.arrow"
MEMBERS = "members.arrow"
JOB = "job.json"
SHARDS = "shards"

INDEX_SCHEMA = pa.schema([
    ("path", pa.string()),
    ("member_size", pa.uint64()),
    ("chunk", pa.uint32()),
    ("chunk_offset", pa.uint64()),
    ("shard", pa.string()),
    ("offset", pa.uint64()),
    ("compressed_len", pa.uint64()),
    ("raw_len", pa.uint64()),
    ("modality", pa.string()),
    ("codec", pa.string()),
    ("model_id", pa.string()),
    ("raw_xxh3", pa.uint64()),
])

MEMBER_SCHEMA = pa.schema([
    ("path", pa.string()),
    ("size", pa.uint64()),
    ("mtime_ns", pa.int64()),
    ("mode", pa.uint32()),
    ("sha256", pa.string()),
    ("chunks", pa.uint32()),
    ("compressed", pa.uint64()),
    ("modality", pa.string()),
])


def resolve(path: str, filesystem: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    """Filesystem and root path of an archive or source given as a local path or a URI."""
    if filesystem is not None:
        return filesystem, path.rstrip("/") or "/"
    if "://" in path:
        fs, root = pafs.FileSystem.from_uri(path)
        return fs, root.rstrip("/")
    import os

    return pafs.LocalFileSystem(), os.path.abspath(path)


def join(root: str, *parts: str) -> str:
    """Join path parts with ``/`` (pyarrow.fs paths are always posix)."""
    return posixpath.join(root, *parts) if root else posixpath.join(*parts)


def check_member_name(name: str) -> str:
    """Validate a member name: relative, ``/``-separated, no ``..``/``.``/empty parts, no NUL."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name or (len(name) > 1 and name[1] == ":"):
        raise MmzError(f"unsafe member name {name!r}: absolute or malformed paths are refused")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise MmzError(f"unsafe member name {name!r}: '..', '.' and empty components are refused")
    return name


def read_file(fs: pafs.FileSystem, path: str) -> bytes:
    """Whole content of one file."""
    with fs.open_input_file(path) as f:
        return f.read()


def write_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary name and a rename (atomic on local/HDFS)."""
    tmp = path + ".tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, path)


def table_bytes(table: pa.Table, meta: dict[str, str]) -> bytes:
    """Serialize ``table`` as an uncompressed Arrow IPC file with schema metadata ``meta``."""
    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def write_archive_tables(fs: pafs.FileSystem, root: str, index: pa.Table, members: pa.Table,
                         meta: dict[str, str]) -> dict[str, Any]:
    """Write index, member table and finally the seal; returns the seal."""
    blobs = {INDEX: table_bytes(index, meta), MEMBERS: table_bytes(members, meta)}
    seal: dict[str, Any] = {"format": "mmza", "version": FORMAT_VERSION}
    for name, blob in blobs.items():
        write_atomic(fs, join(root, name), blob)
        seal[name] = {"size": len(blob), "xxh3": f"{_core.xxh3(blob):016x}"}
    write_atomic(fs, join(root, SEAL), json.dumps(seal, indent=1).encode())
    return seal


def load_seal(fs: pafs.FileSystem, root: str) -> dict[str, Any]:
    """Read and check ``archive.json``; a missing one means the archive was never finished."""
    try:
        raw = read_file(fs, join(root, SEAL))
    except (FileNotFoundError, OSError) as e:
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            raise MmzError(f"{root}: no such archive") from e
        raise MmzError(f"{root}: not a finished .mmza archive (no {SEAL}); "
                       "if a job was writing it, re-run the same command to resume") from e
    try:
        seal = json.loads(raw)
        if seal.get("format") != "mmza":
            raise ValueError("not an mmza seal")
    except (ValueError, AttributeError) as e:
        raise CorruptDataError(f"{root}/{SEAL} is damaged: {e}") from e
    if seal.get("version") != FORMAT_VERSION:
        raise MmzError(f"{root}: archive format version {seal.get('version')} is not supported "
                       f"(this mmz reads version {FORMAT_VERSION}); upgrade mmz")
    return seal


def load_table(fs: pafs.FileSystem, root: str, name: str, seal: dict[str, Any]) -> pa.Table:
    """Read one Arrow file of the archive, checking its size and xxh3 against the seal."""
    try:
        blob = read_file(fs, join(root, name))
    except (FileNotFoundError, OSError) as e:
        raise CorruptDataError(f"{root}/{name} is missing or unreadable: {e}") from e
    want = seal.get(name, {})
    got = f"{_core.xxh3(blob):016x}"
    if len(blob) != want.get("size") or got != want.get("xxh3"):
        raise CorruptDataError(f"{root}/{name} is damaged (size {len(blob)}, xxh3 {got}; "
                               f"expected {want.get('size')}, {want.get('xxh3')}); the archive index "
                               "cannot be trusted")
    try:
        return pa.ipc.open_file(pa.py_buffer(blob)).read_all()
    except pa.ArrowException as e:  # pragma: no cover - checksum already matched
        raise CorruptDataError(f"{root}/{name} is not a valid Arrow file: {e}") from e


def schema_meta(table: pa.Table) -> dict[str, str]:
    """Schema metadata of an archive table as ``str -> str``."""
    return {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
