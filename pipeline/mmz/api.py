"""The Python API, shaped like ``lzma`` / ``compression.zstd``.

>>> import mmz
>>> blob = mmz.compress(b"hello " * 1000, level=5)
>>> mmz.decompress(blob) == b"hello " * 1000
True
"""

from __future__ import annotations

import builtins
import io
import os
from collections.abc import Callable
from typing import IO, Any, BinaryIO

from mmz import _core
from mmz import codec as _codec
from mmz.errors import MmzError
from mmz.frame import FrameReader, FrameWriter, header_info

#: Read/write block size for file streaming.
BLOCK = 1 << 20

ProgressFn = Callable[[int], None]


def _read_full(src: BinaryIO, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        b = src.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def _auto_engine(codec: str, engine: str, level: int, modality: str, head: bytes,
                 length: int | None) -> tuple[str, int | None]:
    """``(engine, neural_max)`` of a frame: ``auto`` runs the neural codec on an input of known
    ``length`` up to :func:`mmz.codec.auto_neural_limit` (every chunk), and on a stream of
    unknown length that turns out to be one chunk up to the limit (``neural_max``, see
    :class:`FrameWriter`); otherwise ``engine`` as resolved."""
    if codec != "auto":
        return engine, None
    limit = _codec.auto_neural_limit(level, modality, head)
    if limit <= 0 or (length is not None and length > limit):
        return engine, None
    return "neural", None if length is not None else limit


def compress_stream(
    src: BinaryIO,
    dst: IO[bytes],
    *,
    level: int = _codec.DEFAULT_LEVEL,
    codec: str = "auto",
    modality: str | None = None,
    name: str | None = None,
    threads: int = 0,
    chunk_size: int | None = None,
    size_hint: int | None = None,
    progress: ProgressFn | None = None,
) -> tuple[int, int]:
    """Compress everything readable from ``src`` into one frame written to ``dst``.

    Memory is bounded (about ``threads x 2`` chunks) unless the input is an
    image or audio file of known size up to 512 MiB, which is read whole so a
    reversible transform (PNG -> pixels) can apply. Returns ``(bytes_in, bytes_out)``.
    """
    _codec.check_level(level)
    engine = _codec.resolve_codec(codec)
    threads = threads or _codec.default_threads()
    chunk = chunk_size or _codec.default_chunk_size(level)
    if not 1 <= chunk <= 1 << 30:
        raise MmzError(f"chunk size must be between 1 byte and 1 GiB, got {chunk}")
    head = _read_full(src, _codec.DETECT_BYTES)
    mod = _codec.check_modality(modality) if modality else _codec.detect_modality(head, name)
    whole = (
        mod in ("image", "audio")
        and size_hint is not None
        and size_hint <= _codec.TRANSFORM_LIMIT
    )
    if whole:
        data = head + _read_full(src, max(0, size_hint - len(head))) if size_hint else head
        rest = src.read()
        if rest:  # the size hint was wrong; stay exact anyway
            data += rest
        plan = _codec.plan_whole(data, mod)
    else:
        plan = _codec.plan_streaming(head, mod)
    nn_engine, neural_max = _auto_engine(codec, engine, level, mod, head,
                                         len(plan.stream) if plan.stream is not None else size_hint)
    writer = FrameWriter(dst.write, modality=mod, level=level, codec=nn_engine, transform=plan.transform,
                         chunk_size=chunk, threads=threads, neural_max=neural_max, fallback=engine)
    content_hash = _core.Xxh3()
    try:
        if plan.stream is not None:
            original = data if whole else head
            content_hash.update(original)
            stream = plan.stream
            for start, end in _codec.cut(len(stream), chunk):
                writer.add_chunk(stream[start:end], _codec.chunk_hint(mod, plan.regions, start, end))
                if progress:
                    progress(int(len(original) * end / max(1, len(stream))))
            content_len = len(original)
        else:
            content_len = _stream_chunks(src, head, writer, content_hash, mod, plan.regions, chunk, progress)
        writer.finish(content_len, content_hash.digest())
    finally:
        writer.close()
    return content_len, writer.compressed_bytes


def _stream_chunks(src: BinaryIO, head: bytes, writer: FrameWriter, content_hash: Any, mod: str,
                   regions: tuple[_codec.Region, ...], chunk: int, progress: ProgressFn | None) -> int:
    buf = bytearray(head)
    pos = 0
    eof = False
    while True:
        while not eof and len(buf) < chunk:
            block = src.read(max(BLOCK, chunk - len(buf)))
            if not block:
                eof = True
            buf += block
        if not buf:
            break
        piece = bytes(buf[:chunk])
        del buf[:chunk]
        content_hash.update(piece)
        writer.add_chunk(piece, _codec.chunk_hint(mod, regions, pos, pos + len(piece)))
        pos += len(piece)
        if progress:
            progress(pos)
        if eof and not buf:
            break
    return pos


def decompress_stream(src: BinaryIO, dst: IO[bytes], *, threads: int = 0,
                      progress: ProgressFn | None = None) -> tuple[int, int]:
    """Decompress concatenated frames from ``src`` into ``dst``; returns ``(bytes_in, bytes_out)``.

    Output is written chunk by chunk as it is verified; on error the caller
    must discard ``dst`` (the CLI writes to a temporary file and renames it).
    """
    reader = FrameReader(threads or _codec.default_threads())
    n_in = n_out = 0
    try:
        while True:
            block = src.read(BLOCK)
            if not block:
                break
            n_in += len(block)
            out = reader.feed(block)
            if out:
                dst.write(out)
                n_out += len(out)
            if progress:
                progress(n_in)
        out = reader.finish()
        if out:
            dst.write(out)
            n_out += len(out)
    finally:
        reader.close()
    return n_in, n_out


def compress(data: bytes, level: int = _codec.DEFAULT_LEVEL, *, codec: str = "auto",
             modality: str | None = None, name: str | None = None, threads: int = 0,
             chunk_size: int | None = None) -> bytes:
    """Compress ``data`` into one ``.mmz`` frame.

    ``level`` 1..9 selects the preset (1-3 fast, 4-6 default, 7-9 max);
    ``codec`` is ``auto`` (the neural codec on small text, structured and FASTQ inputs at the
    default and max presets, else CM; :data:`mmz.codec.NEURAL_AUTO_LIMIT`), ``neural``, ``cm``,
    ``order2`` or ``store``; ``modality``
    overrides detection (any value still round-trips); ``name`` helps detection.
    """
    data = bytes(data)
    out = io.BytesIO()
    compress_stream(io.BytesIO(data), out, level=level, codec=codec, modality=modality, name=name,
                    threads=threads, chunk_size=chunk_size, size_hint=len(data))
    return out.getvalue()


def decompress(data: bytes, *, threads: int = 0) -> bytes:
    """Decompress one or more concatenated ``.mmz`` frames.

    Raises :class:`mmz.CorruptDataError` naming the damaged frame and chunk.
    """
    out = io.BytesIO()
    decompress_stream(io.BytesIO(bytes(data)), out, threads=threads)
    return out.getvalue()


def frame_info(data: bytes) -> dict[str, Any]:
    """Header fields of the first frame in ``data`` (version, modality, level, codec, transform, ids).

    For a compact frame (version 2) ``codec`` is the codec of its one chunk and the ids are ``None``.
    """
    return header_info(data)


class MmzCompressor:
    """Incremental compressor producing one frame, as ``zstandard.ZstdCompressor().compressobj()``.

    Input is cut into chunks as it arrives; the image transform is not used
    (no whole file is seen), sample layouts are still detected from the first bytes.
    """

    def __init__(self, level: int = _codec.DEFAULT_LEVEL, *, codec: str = "auto",
                 modality: str | None = None, name: str | None = None, threads: int = 0,
                 chunk_size: int | None = None) -> None:
        _codec.check_level(level)
        self._level = level
        self._codec = codec
        self._engine = _codec.resolve_codec(codec)
        self._modality = _codec.check_modality(modality) if modality else None
        self._name = name
        self._threads = threads or _codec.default_threads()
        self._chunk = chunk_size or _codec.default_chunk_size(level)
        self._out: list[bytes] = []
        self._buf = bytearray()
        self._writer: FrameWriter | None = None
        self._regions: tuple[_codec.Region, ...] = ()
        self._mod = "binary"
        self._hash = _core.Xxh3()
        self._pos = 0
        self._finished = False

    def _start(self) -> None:
        head = bytes(self._buf[: _codec.DETECT_BYTES])
        self._mod = self._modality or _codec.detect_modality(head, self._name)
        self._regions = _codec.plan_streaming(head, self._mod).regions
        engine, neural_max = _auto_engine(self._codec, self._engine, self._level, self._mod, head, None)
        self._writer = FrameWriter(self._out.append, modality=self._mod, level=self._level,
                                   codec=engine, transform=0, chunk_size=self._chunk,
                                   threads=self._threads, neural_max=neural_max, fallback=self._engine)

    def _emit_chunks(self, final: bool) -> None:
        assert self._writer is not None
        while len(self._buf) >= self._chunk or (final and self._buf):
            piece = bytes(self._buf[: self._chunk])
            del self._buf[: self._chunk]
            self._hash.update(piece)
            self._writer.add_chunk(piece, _codec.chunk_hint(self._mod, self._regions, self._pos,
                                                            self._pos + len(piece)))
            self._pos += len(piece)

    def _take_output(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def compress(self, data: bytes) -> bytes:
        """Feed data; returns compressed bytes ready so far (possibly empty)."""
        if self._finished:
            raise MmzError("compressor already flushed; create a new MmzCompressor")
        self._buf += data
        if self._writer is None and len(self._buf) >= max(_codec.DETECT_BYTES, 1):
            self._start()
        if self._writer is not None:
            self._emit_chunks(final=False)
        return self._take_output()

    def flush(self) -> bytes:
        """End the frame and return the rest of the compressed bytes."""
        if self._finished:
            return b""
        if self._writer is None:
            self._start()
        assert self._writer is not None
        self._emit_chunks(final=True)
        self._writer.finish(self._pos, self._hash.digest())
        self._finished = True
        return self._take_output()


class MmzDecompressor:
    """Incremental decompressor for concatenated frames, as ``zstandard``'s ``decompressobj()``."""

    def __init__(self, *, threads: int = 1) -> None:
        self._reader = FrameReader(threads)

    def decompress(self, data: bytes) -> bytes:
        """Feed compressed bytes; returns decompressed bytes verified so far."""
        return self._reader.feed(data)

    @property
    def eof(self) -> bool:
        """True when the input so far ends exactly after at least one complete frame."""
        return self._reader.frames > 0 and self._reader.at_frame_boundary

    def finish(self) -> bytes:
        """Declare end of input; raises :class:`mmz.CorruptDataError` on a truncated frame."""
        return self._reader.finish()


class MmzFile(io.BufferedIOBase):
    """A file object reading or writing ``.mmz`` data (see :func:`open`)."""

    def __init__(self, file: str | os.PathLike[str] | BinaryIO, mode: str = "rb", *,
                 level: int = _codec.DEFAULT_LEVEL, codec: str = "auto", modality: str | None = None,
                 threads: int = 0) -> None:
        mode = mode.replace("b", "")
        if mode not in ("r", "w", "x", "a"):
            raise ValueError(f"invalid mode {mode!r}; use 'rb', 'wb', 'xb' or 'ab'")
        self._mode = mode
        if isinstance(file, (str, bytes, os.PathLike)):
            self._fp: BinaryIO = builtins.open(file, mode + "b")
            self._owns = True
        else:
            self._fp = file
            self._owns = False
        self._comp: MmzCompressor | None = None
        self._reader: FrameReader | None = None
        self._pending = bytearray()
        self._eof = False
        if mode == "r":
            self._reader = FrameReader(threads or _codec.default_threads())
        else:
            name = getattr(self._fp, "name", None)
            self._comp = MmzCompressor(level, codec=codec, modality=modality,
                                       name=name if isinstance(name, str) else None, threads=threads)

    def readable(self) -> bool:
        return self._mode == "r"

    def writable(self) -> bool:
        return self._mode != "r"

    def seekable(self) -> bool:
        return False

    def _fill(self, want: int) -> None:
        assert self._reader is not None
        while not self._eof and (want < 0 or len(self._pending) < want):
            block = self._fp.read(BLOCK)
            if block:
                self._pending += self._reader.feed(block)
            else:
                self._pending += self._reader.finish()
                self._eof = True

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` decompressed bytes (all if negative)."""
        if self._reader is None:
            raise io.UnsupportedOperation("file not open for reading")
        size = -1 if size is None else size
        self._fill(size)
        if size < 0:
            out = bytes(self._pending)
            self._pending.clear()
        else:
            out = bytes(self._pending[:size])
            del self._pending[:size]
        return out

    def read1(self, size: int = -1) -> bytes:
        return self.read(size if size >= 0 else BLOCK)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def write(self, data: Any) -> int:
        """Compress and write ``data``; returns its length."""
        if self._comp is None:
            raise io.UnsupportedOperation("file not open for writing")
        view = memoryview(data).cast("B")
        out = self._comp.compress(view.tobytes())
        if out:
            self._fp.write(out)
        return len(view)

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._comp is not None:
                self._fp.write(self._comp.flush())
            if self._reader is not None:
                self._reader.close()
        finally:
            if self._owns:
                self._fp.close()
            super().close()


def open(file: str | os.PathLike[str] | BinaryIO, mode: str = "rb", *, level: int = _codec.DEFAULT_LEVEL,
         codec: str = "auto", modality: str | None = None, threads: int = 0) -> MmzFile:  # noqa: A001
    """Open a ``.mmz`` file for reading (``rb``) or writing (``wb``/``xb``/``ab``)."""
    return MmzFile(file, mode, level=level, codec=codec, modality=modality, threads=threads)
