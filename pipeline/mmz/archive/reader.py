"""Reading archives: listing, random access to one member, extraction, verification."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

import mmz
from mmz import _core
from mmz.archive import format as F
from mmz.errors import CorruptDataError, MmzError


@dataclass(frozen=True)
class Member:
    """One archive member as listed in ``members.arrow``."""

    path: str
    size: int
    mtime_ns: int
    mode: int
    sha256: str
    chunks: int
    compressed: int
    modality: str


@dataclass(frozen=True)
class Result:
    """Outcome of extracting or verifying one member."""

    path: str
    ok: bool
    error: str = ""


class Archive:
    """A finished ``.mmza`` archive, opened for reading.

    Opening reads only ``archive.json``, ``index.arrow`` and ``members.arrow``;
    :meth:`read` then reads just the frames of the requested member and decodes
    them independently of every other member.

    >>> arc = Archive("out/sample.mmza")              # doctest: +SKIP
    >>> data = arc.read("text/debian_handbook_en.txt")  # doctest: +SKIP
    """

    def __init__(self, path: str, filesystem: pafs.FileSystem | None = None) -> None:
        self.fs, self.root = F.resolve(str(path), filesystem)
        self.seal = F.load_seal(self.fs, self.root)
        self.index = F.load_table(self.fs, self.root, F.INDEX, self.seal)
        self.member_table = F.load_table(self.fs, self.root, F.MEMBERS, self.seal)
        self.metadata: dict[str, str] = F.schema_meta(self.index)
        rows = self.member_table.to_pylist()
        self._members = {r["path"]: Member(**r) for r in rows}
        self._order = [r["path"] for r in rows]
        self._chunks: dict[str, list[dict[str, Any]]] = {}
        for rec in self.index.to_pylist():
            self._chunks.setdefault(rec["path"], []).append(rec)
        for recs in self._chunks.values():
            recs.sort(key=lambda r: r["chunk"])

    # listing -------------------------------------------------------------------------------
    def members(self) -> list[Member]:
        """All members in archive order."""
        return [self._members[p] for p in self._order]

    def member(self, name: str) -> Member:
        """One member by name; raises :class:`MmzError` if absent."""
        try:
            return self._members[name]
        except KeyError:
            raise MmzError(f"{self.root}: no member {name!r} (see 'mmz archive list')") from None

    def chunks(self, name: str) -> list[dict[str, Any]]:
        """Index rows of one member, in chunk order."""
        self.member(name)
        return self._chunks.get(name, [])

    def info(self) -> dict[str, Any]:
        """Archive-level facts: version, tool, models, counts, sizes."""
        shards = sorted(set(self.index.column("shard").to_pylist()))
        raw = sum(m.size for m in self._members.values())
        comp = sum(m.compressed for m in self._members.values())
        return {
            "path": self.root, "format_version": self.seal["version"], "metadata": self.metadata,
            "members": len(self._members), "chunks": self.index.num_rows, "shards": shards,
            "bytes": raw, "compressed": comp, "bits_per_byte": 8.0 * comp / raw if raw else 0.0,
            "index_bytes": self.seal[F.INDEX]["size"], "members_bytes": self.seal[F.MEMBERS]["size"],
        }

    # reading -------------------------------------------------------------------------------
    def iter_read(self, name: str) -> Iterator[bytes]:
        """Yield a member's raw bytes chunk by chunk, each checked before it is yielded.

        Raises :class:`CorruptDataError` naming the member, chunk, shard and offset
        at the first damaged or missing chunk.
        """
        m = self.member(name)
        recs = self._chunks.get(name, [])
        if len(recs) != m.chunks or [r["chunk"] for r in recs] != list(range(m.chunks)):
            raise CorruptDataError(f"member {name!r}: index lists {len(recs)} chunks, member table {m.chunks}")
        handles: dict[str, Any] = {}
        try:
            for r in recs:
                where = f"member {name!r} chunk {r['chunk']} ({r['shard']} at offset {r['offset']})"
                f = handles.get(r["shard"])
                if f is None:
                    try:
                        f = handles[r["shard"]] = self.fs.open_input_file(F.join(self.root, r["shard"]))
                    except (FileNotFoundError, OSError) as e:
                        raise CorruptDataError(f"{where}: shard is missing: {e}") from e
                frame = f.read_at(r["compressed_len"], r["offset"])
                if len(frame) != r["compressed_len"]:
                    raise CorruptDataError(f"{where}: shard is truncated ({len(frame)} of "
                                           f"{r['compressed_len']} bytes present)")
                try:
                    raw = mmz.decompress(frame, threads=1)
                except MmzError as e:
                    raise CorruptDataError(f"{where}: frame is damaged: {e}") from e
                if len(raw) != r["raw_len"] or _core.xxh3(raw) != r["raw_xxh3"]:
                    raise CorruptDataError(f"{where}: decoded bytes do not match the index checksum")
                yield raw
        finally:
            for f in handles.values():
                f.close()

    def read(self, name: str) -> bytes:
        """The whole content of one member, verified against its chunk checksums and sha256."""
        h = hashlib.sha256()
        parts = []
        for raw in self.iter_read(name):
            h.update(raw)
            parts.append(raw)
        self._check_sha(name, h)
        return b"".join(parts)

    def _check_sha(self, name: str, h: Any) -> None:
        m = self._members[name]
        if m.sha256 and h.hexdigest() != m.sha256:
            raise CorruptDataError(f"member {name!r}: sha256 mismatch after decoding")

    def verify_member(self, name: str) -> Result:
        """Decode one member and check every checksum, without keeping its bytes."""
        try:
            h = hashlib.sha256()
            n = 0
            for raw in self.iter_read(name):
                h.update(raw)
                n += len(raw)
            if n != self._members[name].size:
                raise CorruptDataError(f"member {name!r}: {n} bytes decoded, {self._members[name].size} expected")
            self._check_sha(name, h)
        except MmzError as e:
            return Result(name, False, str(e))
        return Result(name, True)

    def verify(self, names: Iterable[str] | None = None) -> list[Result]:
        """Verify some or all members; damaged ones are reported, never raised."""
        return [self.verify_member(n) for n in (self._order if names is None else names)]

    # extracting ----------------------------------------------------------------------------
    def extract_member(self, name: str, dest: str, *, as_file: bool = False) -> Result:
        """Extract one member under directory ``dest`` (or to the file ``dest`` with ``as_file``).

        The member's bytes go to a temporary file renamed into place only after
        every checksum passed, so a damaged member never leaves wrong bytes.
        Mode and mtime are restored. Unsafe names and symlinked parents are refused.
        """
        try:
            m = self.member(name)
            target = os.path.abspath(dest) if as_file else safe_target(dest, name)
            parent = os.path.dirname(target)
            os.makedirs(parent, exist_ok=True)
            if not as_file:
                check_no_symlink_escape(dest, parent)
            fd, tmp = tempfile.mkstemp(prefix=".mmza-", dir=parent)
            try:
                h = hashlib.sha256()
                with os.fdopen(fd, "wb") as out:
                    for raw in self.iter_read(name):
                        h.update(raw)
                        out.write(raw)
                self._check_sha(name, h)
                os.chmod(tmp, m.mode & 0o777)
                os.utime(tmp, ns=(m.mtime_ns, m.mtime_ns))
                os.replace(tmp, target)
            except BaseException:
                os.unlink(tmp)
                raise
        except (MmzError, OSError) as e:
            return Result(name, False, str(e))
        return Result(name, True)

    def extract(self, dest: str, names: Iterable[str] | None = None) -> list[Result]:
        """Extract some or all members under ``dest``; each damaged member is reported, the rest extracted."""
        return [self.extract_member(n, dest) for n in (self._order if names is None else names)]


def safe_target(dest: str, name: str) -> str:
    """Absolute output path of member ``name`` under ``dest``; refuses absolute paths and ``..``."""
    F.check_member_name(name)
    root = os.path.abspath(dest)
    target = os.path.normpath(os.path.join(root, *name.split("/")))
    if os.path.commonpath([root, target]) != root:
        raise MmzError(f"unsafe member name {name!r}: it would land outside {dest}")
    return target


def check_no_symlink_escape(dest: str, parent: str) -> None:
    """Refuse to write through a symbolic link that leads outside ``dest``."""
    root = os.path.realpath(dest)
    real = os.path.realpath(parent)
    if os.path.commonpath([root, real]) != root:
        raise MmzError(f"refusing to extract into {parent}: a symbolic link leads outside {dest}")


def members_table(archive: Archive) -> pa.Table:
    """The member table (for ``list --json`` and Polars/pyarrow users)."""
    return archive.member_table


__all__ = ["Archive", "Member", "Result", "safe_target", "check_no_symlink_escape", "members_table"]
