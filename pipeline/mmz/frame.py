"""Streaming writer and push parser for the ``.mmz`` frame format.

The byte layout lives in docs/FORMAT.md and the Rust core validates every
header; this module sequences records, runs chunk codecs on a thread pool
(the core releases the GIL) and checks the trailer. Memory stays bounded by
``threads x 2`` chunks in flight, whatever the input size.

Small inputs get a compact frame (format version 2: 11 bytes of header and
check instead of 208): the writer holds back its first chunk record and only
commits to a version-1 frame once a second chunk arrives, the chunk is larger
than :data:`COMPACT_LIMIT`, or the record needs a model id (neural chunks).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from mmz import _core
from mmz.errors import CorruptDataError, MmzError

MAGIC: bytes = _core.MAGIC
HEADER_LEN: int = _core.FRAME_HEADER_LEN
CHUNK_HEADER_LEN: int = _core.CHUNK_HEADER_LEN
TRAILER_FIXED_LEN: int = _core.TRAILER_FIXED_LEN
COMPACT_VERSION: int = _core.COMPACT_VERSION
#: Largest single chunk (raw stream bytes) a writer puts in a compact frame.
COMPACT_LIMIT: int = 64 << 10
#: Levels a compact frame's CM chunk is also tried at (the smallest record wins): on inputs of a
#: few KiB the fast preset's fewer contexts learn sooner (bench/small_binary_sweep.py).
COMPACT_TRY_LEVELS: tuple[int, ...] = (1, 5)
#: The alternatives are tried only for chunks up to this size: they double the encode time and, in
#: bench/small_binary_sweep.py and on text, stopped paying at `-5` above a few KiB.
COMPACT_TRY_LIMIT: int = 8 << 10
#: For binary chunks also ``(level, CM payload version)`` pairs: version 2's text context lists
#: code some small binaries (headers, string tables) smaller than version 5's binary lists.
COMPACT_TRY_BINARY: tuple[tuple[int, int], ...] = ((5, 2),)
#: Bytes a version-1 frame of one chunk spends besides its chunk record (header and trailer).
_V1_ONE_CHUNK_OVERHEAD: int = HEADER_LEN + len(_core.build_trailer(0, 0, 0, [(0, 0, 0)]))


class _Done:
    """A finished value with the ``Future.result`` interface (single-thread path)."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def result(self) -> Any:
        return self._value

    def done(self) -> bool:
        return True


def _pool(threads: int) -> ThreadPoolExecutor | None:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mmz") if threads > 1 else None


class FrameWriter:
    """Writes one frame: header, chunk records as they are coded, trailer at :meth:`finish`.

    With ``compact`` (the default) the header waits for the first record; a frame that
    ends with at most one small non-neural chunk is written as a compact frame instead.
    A neural writer (``codec="neural"``) with ``neural_max`` (``--codec auto`` on a stream of
    unknown length) runs the network only if the whole stream is its first chunk: shorter than
    ``chunk_size`` and at most ``neural_max`` bytes; any other chunk is coded with ``fallback``.
    """

    def __init__(
        self,
        write: Callable[[bytes], Any],
        *,
        modality: str,
        level: int,
        codec: str,
        transform: int,
        chunk_size: int,
        threads: int = 1,
        model_id: bytes | None = None,
        tokenizer_id: bytes | None = None,
        compact: bool = True,
        neural_max: int | None = None,
        fallback: str = "cm",
    ) -> None:
        self._write = write
        self._codec = codec
        self._neural_max = neural_max
        self._fallback = fallback
        self._chunk_size = chunk_size
        self._added = 0
        self._model: Any = None
        if codec == "neural":
            from mmz import neural

            self._model = neural.cached(None)
            model_id = self._model.id
        self._level = level
        self._threads = max(1, threads)
        self._pool = _pool(self._threads)
        self._pending: deque[Future[bytes] | _Done] = deque()
        self._entries: list[tuple[int, int, int]] = []
        self._stream_len = 0
        self.compressed_bytes = 0
        self._modality = modality
        self._transform = transform
        self._header = _core.frame_header(modality, level, transform, codec, chunk_size, model_id, tokenizer_id)
        # None once the version-1 header is written; until then the first record waits here.
        self._held: list[bytes] | None = [] if compact and tokenizer_id is None else None
        self._first: tuple[bytes, bytes] | None = None  # raw first chunk while a compact frame is possible
        if self._held is None:
            self._emit(self._header)

    def _emit(self, data: bytes) -> None:
        self._write(data)
        self.compressed_bytes += len(data)

    def _encode(self, data: bytes, hint: bytes, network: bool) -> bytes:
        if network:
            from mmz import neural

            return neural.encode_chunk(self._model, data, self._level, hint)
        codec = self._fallback if self._model is not None else self._codec
        return bytes(_core.encode_chunk(data, codec, self._level, hint))

    def _network_for(self, data: bytes) -> bool:
        """Whether the chunk being added (``self._added`` before it) is coded by the network."""
        if self._model is None:
            return False
        if self._neural_max is None:
            return True
        return self._added == 0 and len(data) < self._chunk_size and len(data) <= self._neural_max

    def add_chunk(self, data: bytes, hint: bytes) -> None:
        """Queue one chunk for coding; blocks when too many chunks are in flight."""
        if self._held is not None:
            first = not self._pending and not self._held and self._first is None
            self._first = (data, hint) if first and len(data) <= COMPACT_LIMIT else None
        network = self._network_for(data)
        self._added += 1
        if self._pool is None:
            self._pending.append(_Done(self._encode(data, hint, network)))
        else:
            self._pending.append(self._pool.submit(self._encode, data, hint, network))
        while len(self._pending) > 2 * self._threads:
            self._drain_one()

    def _drain_one(self) -> None:
        record = self._pending.popleft().result()
        if self._held is not None:
            self._held.append(record)
            if len(self._held) == 1 and self._fits_compact(record):
                return
            self._commit_v1()
            return
        self._emit_record(record)

    @staticmethod
    def _fits_compact(record: bytes) -> bool:
        return bool(_core.parse_chunk_header(record[:CHUNK_HEADER_LEN])["raw_len"] <= COMPACT_LIMIT)

    def _cm_alternative(self, record: bytes, neural: bool) -> bytes | None:
        """The smallest CM record of the held chunk over :data:`COMPACT_TRY_LEVELS` (one level per
        preset: levels of one preset code alike) and :data:`COMPACT_TRY_BINARY` for binary chunks
        (both only up to :data:`COMPACT_TRY_LIMIT`) and, for a neural writer, its own level."""
        if self._first is None or not (self._codec == "cm" or self._model is not None):
            return None if neural else record
        data, hint = self._first
        best = None if neural else record
        small = len(data) <= COMPACT_TRY_LIMIT
        presets = set() if neural else {(self._level - 1) // 3}
        tries: list[tuple[int, int | None]] = []
        for level in (*(COMPACT_TRY_LEVELS if small else ()), self._level):
            if (level - 1) // 3 not in presets:
                presets.add((level - 1) // 3)
                tries.append((level, None))
        if self._modality == "binary" and small:
            tries.extend(COMPACT_TRY_BINARY)
        for level, version in tries:
            if version is None:
                other = bytes(_core.encode_chunk(data, "cm", level, hint))
            else:
                other = bytes(_core.encode_cm_chunk(data, level, hint, version))
            if best is None or len(other) < len(best):
                best = other
        return best

    def _finish_held(self, content_len: int, content_hash: int) -> None:
        """End a frame whose header is still held: compact, unless a neural record is smaller whole."""
        held, self._held = self._held or [], None
        record = held[0] if held else None
        neural = record is not None and _core.parse_chunk_header(record[:CHUNK_HEADER_LEN])["codec"] == "neural"
        best = self._cm_alternative(record, neural) if record is not None else None
        if record is None or best is not None:
            compact = _core.compact_frame(best, self._modality, self._level, self._transform, content_hash)
            if not neural:
                self._emit(compact)
                return
            assert record is not None
            if len(compact) < len(record) + _V1_ONE_CHUNK_OVERHEAD:
                self._emit(compact)
                return
        self._held = held
        self._commit_v1()
        self._emit(_core.build_trailer(content_len, content_hash, self._stream_len, self._entries))

    def _commit_v1(self) -> None:
        """Give up on a compact frame: write the version-1 header and the held records."""
        held, self._held = self._held or [], None
        self._emit(self._header)
        for record in held:
            self._emit_record(record)

    def _emit_record(self, record: bytes) -> None:
        info = _core.parse_chunk_header(record[:CHUNK_HEADER_LEN])
        self._entries.append((self.compressed_bytes, info["payload_len"], info["raw_len"]))
        self._stream_len += info["raw_len"]
        self._emit(record)

    def finish(self, content_len: int, content_hash: int) -> None:
        """Write the remaining chunks and the trailer (or the whole compact frame)."""
        try:
            while self._pending:
                self._drain_one()
            if self._held is not None:
                self._finish_held(content_len, content_hash)
                return
            self._emit(_core.build_trailer(content_len, content_hash, self._stream_len, self._entries))
        finally:
            self.close()

    def close(self) -> None:
        """Release the thread pool (also on errors)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class FrameReader:
    """Push parser: :meth:`feed` compressed bytes, get decompressed bytes back.

    Handles concatenated frames. Each chunk is verified (header, payload and
    raw checksums) before its bytes are returned; the trailer's whole-content
    checksum is verified at the end of each frame, so a caller writing to a
    file must discard the output if a later call raises.
    """

    def __init__(self, threads: int = 1) -> None:
        self._buf = bytearray()
        self._threads = max(1, threads)
        self._pool = _pool(self._threads)
        self._state = "magic"
        self._frame_index = -1
        self._frames_done = 0
        self._header: dict[str, Any] = {}
        self._chunk_index = 0
        self._frame_pos = 0
        self._entries: list[tuple[int, int, int]] = []
        self._pending: deque[tuple[int, Future[bytes] | _Done]] = deque()
        self._hash = _core.Xxh3()
        self._content_len = 0
        self._stream_parts: list[bytes] = []
        self._chunk_header: bytes = b""
        self._need = 0
        self.headers: list[dict[str, Any]] = []

    @property
    def at_frame_boundary(self) -> bool:
        """True when the input fed so far ends exactly after a complete frame."""
        return self._state == "magic" and not self._buf and not self._pending

    @property
    def frames(self) -> int:
        """Number of complete frames decoded so far."""
        return self._frames_done

    def _where(self, chunk: int | None = None) -> str:
        return f"frame {self._frame_index}" + ("" if chunk is None else f", chunk {chunk}")

    def _corrupt(self, msg: str, chunk: int | None = None) -> CorruptDataError:
        return CorruptDataError(f"{self._where(chunk)}: {msg}")

    def feed(self, data: bytes) -> bytes:
        """Consume compressed bytes; return the decompressed bytes now available."""
        self._buf += data
        out: list[bytes] = []
        while self._step(out):
            pass
        return b"".join(out)

    def finish(self) -> bytes:
        """Signal end of input; raises :class:`CorruptDataError` if a frame is incomplete."""
        out = self.feed(b"")
        if self._frames_done == 0 and self._state == "magic" and not self._buf:
            self.close()
            raise CorruptDataError("not an mmz frame (empty input)")
        if not self.at_frame_boundary:
            if self._state == "magic":  # a frame header (or a whole compact frame) is cut short
                self.close()
                raise CorruptDataError(f"truncated data: frame {self._frame_index + 1} is incomplete")
            where = self._where(self._chunk_index if self._state in ("chunk", "payload") else None)
            self.close()
            raise CorruptDataError(f"truncated data: {where} ends before its trailer")
        self.close()
        return out

    def close(self) -> None:
        """Release the thread pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # -- state machine -------------------------------------------------------------
    def _take(self, n: int) -> bytes:
        chunk = bytes(self._buf[:n])
        del self._buf[:n]
        self._frame_pos += n
        return chunk

    def _step(self, out: list[bytes]) -> bool:
        buf = self._buf
        if self._state == "magic":
            if not buf:
                return False
            if MAGIC[: len(buf)] != bytes(buf[: len(MAGIC)]):
                self._bad_magic()
            if len(buf) <= len(MAGIC):
                return False
            if buf[len(MAGIC)] == COMPACT_VERSION:
                return self._compact(out)
            if len(buf) < HEADER_LEN and buf[len(MAGIC)] == _core.FORMAT_VERSION:
                return False  # other versions are refused below without waiting for a full header
            self._frame_index += 1
            self._frame_pos = 0
            try:
                self._header = {"version": _core.FORMAT_VERSION, **_core.parse_frame_header(bytes(buf[:HEADER_LEN]))}
            except CorruptDataError as e:
                raise self._corrupt(str(e)) from None
            except MmzError as e:
                raise MmzError(f"{self._where()}: {e}") from None
            self.headers.append(self._header)
            self._take(HEADER_LEN)
            self._chunk_index = 0
            self._entries = []
            self._hash = _core.Xxh3()
            self._content_len = 0
            self._stream_parts = []
            self._state = "record"
            return True
        if self._state == "record":
            if not buf:
                return False
            tag = buf[0]
            if tag == ord("C"):
                if len(buf) < CHUNK_HEADER_LEN:
                    return False
                offset = self._frame_pos
                header = self._take(CHUNK_HEADER_LEN)
                try:
                    info = _core.parse_chunk_header(header)
                except MmzError as e:
                    raise self._corrupt(str(e), self._chunk_index) from None
                self._chunk_header = header
                self._need = info["payload_len"]
                self._entries.append((offset, info["payload_len"], info["raw_len"]))
                self._state = "payload"
                return True
            if tag == ord("T"):
                return self._trailer(out)
            raise self._corrupt(f"unexpected record tag 0x{tag:02x}", self._chunk_index)
        if self._state == "payload":
            if len(buf) < self._need:
                return False
            payload = self._take(self._need)
            idx = self._chunk_index
            if self._pool is None:
                self._pending.append((idx, _Done(self._decode(self._chunk_header, payload, idx))))
            else:
                self._pending.append((idx, self._pool.submit(self._decode, self._chunk_header, payload, idx)))
            self._chunk_index += 1
            self._state = "record"
            while self._pending and (len(self._pending) > 2 * self._threads or self._pending[0][1].done()):
                self._collect(out)
            return True
        raise AssertionError(self._state)  # pragma: no cover

    def _decode(self, header: bytes, payload: bytes, idx: int) -> bytes:
        try:
            if _core.parse_chunk_header(header)["codec"] == "neural":
                from mmz import neural

                model_id = self._header.get("model_id")
                if not model_id:
                    raise CorruptDataError("neural chunk in a frame that names no model")
                return neural.decode_chunk(neural.cached(bytes(model_id)), header, payload)
            return _core.decode_chunk(header, payload)
        except CorruptDataError as e:
            raise self._corrupt(str(e), idx) from None
        except MmzError as e:
            raise MmzError(f"{self._where(idx)}: {e}") from None

    def _collect(self, out: list[bytes]) -> None:
        _, fut = self._pending.popleft()
        data = fut.result()
        self._content_len += len(data)
        if self._header["transform"] == 0:
            self._hash.update(data)
            out.append(data)
        else:
            self._stream_parts.append(data)

    def _trailer(self, out: list[bytes]) -> bool:
        buf = self._buf
        if len(buf) < TRAILER_FIXED_LEN:
            return False
        try:
            total = _core.trailer_len(bytes(buf[:TRAILER_FIXED_LEN]))
        except MmzError as e:
            raise self._corrupt(str(e)) from None
        if len(buf) < total:
            return False
        try:
            trailer = _core.parse_trailer(self._take(total))
        except MmzError as e:
            raise self._corrupt(str(e)) from None
        while self._pending:
            self._collect(out)
        if [tuple(c) for c in trailer["chunks"]] != self._entries or trailer["stream_len"] != self._content_len:
            raise self._corrupt("frame trailer: chunk table disagrees with the chunks (chunks missing or moved)")
        transform = self._header["transform"]
        if transform != 0:
            from mmz import transform as _transform

            original = _transform.inverse(transform, b"".join(self._stream_parts))
            self._stream_parts = []
            if len(original) != trailer["content_len"] or _core.xxh3(original) != trailer["content_hash"]:
                raise self._corrupt("frame content: whole-content checksum mismatch after inverse transform")
            out.append(original)
        elif self._content_len != trailer["content_len"] or self._hash.digest() != trailer["content_hash"]:
            raise self._corrupt("frame content: whole-content checksum mismatch")
        self._frames_done += 1
        self._state = "magic"
        return True

    def _compact(self, out: list[bytes]) -> bool:
        """Decode one compact frame once all of it is buffered."""
        where = f"frame {self._frame_index + 1}"
        try:
            head = _core.parse_compact_header(bytes(self._buf[: _core.COMPACT_MAX_HEADER_LEN]))
        except CorruptDataError as e:
            raise CorruptDataError(f"{where}: {e}") from None
        except MmzError as e:
            raise MmzError(f"{where}: {e}") from None
        if head is None or len(self._buf) < head["frame_len"]:
            return False
        self._frame_index += 1
        frame = self._take(head["frame_len"])
        try:
            info, stream, check = _core.decode_compact(frame)
        except CorruptDataError as e:
            raise self._corrupt(str(e)) from None
        except MmzError as e:
            raise MmzError(f"{where}: {e}") from None
        self.headers.append(_compact_info(info))
        if info["transform"] != 0:
            from mmz import transform as _transform

            try:
                stream = _transform.inverse(info["transform"], stream)
            except CorruptDataError as e:
                raise self._corrupt(str(e)) from None
            except MmzError as e:  # nothing is checked before the inverse: say both possible causes
                raise MmzError(f"{where}: {e} (or the frame is damaged: its one check covers the "
                               "rebuilt content)") from None
            if _core.xxh3(stream) & 0xFFFFFFFF != check:
                raise self._corrupt("compact frame: content checksum mismatch after inverse transform")
        out.append(stream)
        self._frames_done += 1
        return True

    def _bad_magic(self) -> None:
        if self._frames_done:
            raise CorruptDataError(f"data after frame {self._frames_done - 1} is not an mmz frame")
        raise CorruptDataError("not an mmz frame (missing magic bytes 89 4D 4D 5A)")


def _compact_info(head: dict[str, Any]) -> dict[str, Any]:
    """A compact frame's header in the shape of a version-1 header dict."""
    return {
        "version": COMPACT_VERSION, "modality": head["modality"], "level": head["level"],
        "transform": head["transform"], "codec": head["codec"], "chunk_size": head["raw_len"],
        "model_id": None, "tokenizer_id": None,
    }


def header_info(data: bytes) -> dict[str, Any]:
    """Header fields of the frame that starts ``data`` (either format version)."""
    data = bytes(data[: max(HEADER_LEN, _core.COMPACT_MAX_HEADER_LEN)])
    if len(data) > len(MAGIC) and data[: len(MAGIC)] == MAGIC and data[len(MAGIC)] == COMPACT_VERSION:
        head = _core.parse_compact_header(data)
        if head is None:
            raise CorruptDataError("truncated compact frame header")
        return _compact_info(head)
    return {"version": _core.FORMAT_VERSION, **_core.parse_frame_header(data[:HEADER_LEN])}


def scan(fp: BinaryIO) -> Iterator[dict[str, Any]]:
    """Walk the frames of a ``.mmz`` stream without decoding payloads (except compact frames
    with a transform, whose original length is known only after decoding them).

    Yields one dict per frame: the header fields plus ``chunks``,
    ``content_len``, ``compressed_len`` and ``codecs`` (codec names used by
    its chunks). Raises :class:`CorruptDataError` on structural damage.
    """
    index = 0
    while True:
        head = fp.read(len(MAGIC) + 1)
        if not head and index > 0:
            return
        if head[: len(MAGIC)] == MAGIC and head[len(MAGIC):] == bytes([COMPACT_VERSION]):
            yield _scan_compact(fp, head, index)
            index += 1
            continue
        head += fp.read(HEADER_LEN - len(head))
        if len(head) < HEADER_LEN:
            raise CorruptDataError(f"frame {index}: truncated frame header")
        try:
            info: dict[str, Any] = {"version": _core.FORMAT_VERSION, **_core.parse_frame_header(head)}
        except CorruptDataError as e:
            raise CorruptDataError(f"frame {index}: {e}") from None
        size = HEADER_LEN
        codecs: list[str] = []
        chunk = 0
        while True:
            tag = fp.read(1)
            if not tag:
                raise CorruptDataError(f"frame {index}: truncated before its trailer")
            if tag == b"C":
                rest = fp.read(CHUNK_HEADER_LEN - 1)
                try:
                    ch = _core.parse_chunk_header(tag + rest)
                except MmzError as e:
                    raise CorruptDataError(f"frame {index}, chunk {chunk}: {e}") from None
                payload = fp.read(ch["payload_len"])
                if len(payload) != ch["payload_len"]:
                    raise CorruptDataError(f"frame {index}, chunk {chunk}: truncated chunk payload")
                if ch["codec"] not in codecs:
                    codecs.append(ch["codec"])
                size += CHUNK_HEADER_LEN + ch["payload_len"]
                chunk += 1
            elif tag == b"T":
                fixed = tag + fp.read(TRAILER_FIXED_LEN - 1)
                try:
                    total = _core.trailer_len(fixed)
                    trailer = _core.parse_trailer(fixed + fp.read(total - TRAILER_FIXED_LEN))
                except MmzError as e:
                    raise CorruptDataError(f"frame {index}: {e}") from None
                size += total
                break
            else:
                raise CorruptDataError(f"frame {index}, chunk {chunk}: unexpected record tag {tag!r}")
        info.update(chunks=chunk, content_len=trailer["content_len"], compressed_len=size, codecs=codecs)
        yield info
        index += 1


def _scan_compact(fp: BinaryIO, head: bytes, index: int) -> dict[str, Any]:
    """Read past one compact frame whose first five bytes are ``head``."""
    where = f"frame {index}"
    try:
        parsed = None
        while parsed is None:
            more = fp.read(1)
            if not more or len(head) >= _core.COMPACT_MAX_HEADER_LEN:
                raise CorruptDataError("truncated compact frame header")
            head += more
            parsed = _core.parse_compact_header(head)
    except CorruptDataError as e:
        raise CorruptDataError(f"{where}: {e}") from None
    rest = fp.read(parsed["frame_len"] - len(head))
    if len(rest) != parsed["frame_len"] - len(head):
        raise CorruptDataError(f"{where}: truncated compact frame")
    info = _compact_info(parsed)
    content_len = parsed["raw_len"]
    if parsed["transform"] != 0:  # the original length is known only after the inverse transform
        try:
            content_len = len(FrameReader().feed(head + rest))
        except MmzError as e:
            msg = str(e).removeprefix("frame 0: ")
            raise type(e)(f"{where}: {msg}") from None
    info.update(chunks=1 if parsed["raw_len"] else 0, content_len=content_len,
                compressed_len=parsed["frame_len"], codecs=[parsed["codec"]] if parsed["raw_len"] else [])
    return info
