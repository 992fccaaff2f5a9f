"""Transform 1: PNG <-> side info + raw pixels, byte-exact.

Forward: walk the chunks, inflate the IDAT zlib stream, record the per-row
filter types, unfilter to raw samples, then search the deflate parameters that
re-create the original zlib stream with the pinned engine of the Rust core
(``mmz._core.zlib_search``; bundled static zlib). The candidate is accepted
only if :func:`inverse` of the result equals the input byte-for-byte.

Stream layout (integers little-endian)::

    u32 side_len | side | pixels

    side = b"MZPG" | u8 version=1 | u8 engine | u8 level | u8 mem_level
         | u8 strategy | u8 window_bits | u32 width | u32 height
         | u8 channels | u8 bytes_per_sample
         | u32 prefix_len | prefix        (signature + every chunk before IDAT)
         | u32 n_idat | u32 size * n_idat (IDAT chunk data sizes)
         | u32 suffix_len | suffix        (everything after the last IDAT)
         | filters                        (one byte per row)

    pixels = height rows x width x channels samples, 16-bit big-endian;
             palette images carry indices (1 channel).

Interlaced images and bit depths below 8 stay on the identity path.
"""

from __future__ import annotations

import struct
import zlib

from mmz import _core
from mmz.errors import CorruptDataError, MmzError
from mmz.transform import PNG_PIXELS, SampleRegion, Transformed

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAGIC = b"MZPG"
_VERSION = 1
_FIXED = struct.Struct("<4sBBBBBBIIBB")
#: Samples per pixel by PNG colour type.
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Cap on deflate candidates tried per file (the likely ones come first).
MAX_TRIES = 64


class _Reader:
    """Bounds-checked reader over the side info; every failure is CorruptDataError."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise CorruptDataError(f"PNG transform stream: truncated {what}")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.take(4, what))[0])


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _walk(data: bytes) -> tuple[bytes, int, list[int], int] | None:
    """Return (IHDR body, offset of first IDAT chunk, IDAT sizes, end of last IDAT)."""
    pos = len(SIGNATURE)
    ihdr = None
    first = -1
    sizes: list[int] = []
    while pos + 12 <= len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        ctype = data[pos + 4:pos + 8]
        if n > 0x7FFFFFFF or pos + 12 + n > len(data):
            return None
        if ihdr is None:
            if ctype != b"IHDR" or n != 13:
                return None
            ihdr = data[pos + 8:pos + 21]
        if ctype == b"IDAT":
            if first < 0:
                first = pos
            sizes.append(n)
        elif first >= 0:
            return (ihdr, first, sizes, pos) if ihdr is not None else None
        pos += 12 + n
    if first >= 0 and ihdr is not None:
        return ihdr, first, sizes, pos
    return None


def forward(data: bytes) -> Transformed | None:
    """Pixel representation of a PNG, or None when an exact rebuild is not possible."""
    walked = _walk(data)
    if walked is None:
        return None
    ihdr, first, sizes, end = walked
    width, height, depth, ctype, method, fmethod, interlace = struct.unpack(">IIBBBBB", ihdr)
    if method or fmethod or interlace or ctype not in _CHANNELS or depth not in (8, 16):
        return None
    if ctype == 3 and depth != 8:
        return None
    channels = _CHANNELS[ctype]
    bps = depth // 8
    row = width * channels * bps
    if width == 0 or height == 0:
        return None
    expect = height * (row + 1)
    # Collect the zlib stream.
    idat = bytearray()
    pos = first
    for n in sizes:
        idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    idat_b = bytes(idat)
    d = zlib.decompressobj()
    try:
        filtered = d.decompress(idat_b, expect + 1)
    except zlib.error:
        return None
    if len(filtered) != expect or not d.eof or d.unused_data or d.unconsumed_tail:
        return None
    params = _core.zlib_search(filtered, idat_b, MAX_TRIES)
    if params is None:
        return None
    filters, pixels = _core.png_unfilter(filtered, row, channels * bps)
    level, mem_level, strategy, window_bits = params
    prefix, suffix = data[:first], data[end:]
    side = b"".join([
        _FIXED.pack(_MAGIC, _VERSION, _core.deflate_engine(), level, mem_level, strategy, window_bits,
                    width, height, channels, bps),
        struct.pack("<I", len(prefix)), prefix,
        struct.pack(f"<I{len(sizes)}I", len(sizes), *sizes),
        struct.pack("<I", len(suffix)), suffix,
        filters,
    ])
    stream = struct.pack("<I", len(side)) + side + pixels
    # Verify: zlib_search matched the deflate output byte-for-byte, so what is
    # left to check is the refiltering and the chunk framing (CRCs included).
    if _core.png_filter(pixels, filters, row, channels * bps) != filtered:
        return None
    if _assemble(prefix, sizes, idat_b, suffix) != data:
        return None
    region = SampleRegion(4 + len(side), len(pixels), channels, bps, bps == 2, False, width)
    return Transformed(PNG_PIXELS, stream, (region,))


def split(stream: bytes) -> tuple[bytes, bytes]:
    """Split a transform-1 stream into (side info with its length prefix, pixels)."""
    if len(stream) < 4:
        raise CorruptDataError("PNG transform stream: shorter than its length field")
    (side_len,) = struct.unpack_from("<I", stream, 0)
    if 4 + side_len > len(stream):
        raise CorruptDataError("PNG transform stream: side info runs past the end")
    return stream[:4 + side_len], stream[4 + side_len:]


def inverse(stream: bytes) -> bytes:
    """Rebuild the PNG file from a transform-1 stream.

    Raises:
        CorruptDataError: the stream is malformed or inconsistent.
        MmzError: the stream needs a deflate engine this build lacks.
    """
    head, pixels = split(stream)
    r = _Reader(head)
    r.take(4, "length")
    magic, version, engine, level, mem_level, strategy, wbits, width, height, channels, bps = _FIXED.unpack(
        r.take(_FIXED.size, "fixed header"))
    if magic != _MAGIC or version != _VERSION:
        raise CorruptDataError("PNG transform stream: bad magic or version")
    if engine != _core.deflate_engine():
        raise MmzError(f"PNG transform needs deflate engine {engine}, this build has "
                       f"{_core.deflate_engine()}: upgrade mmz")
    if not (1 <= channels <= 4 and bps in (1, 2) and width > 0 and height > 0):
        raise CorruptDataError("PNG transform stream: bad image geometry")
    row = width * channels * bps
    if row * height != len(pixels):  # caps every allocation by the stream length
        raise CorruptDataError(
            f"PNG transform stream: {len(pixels)} pixel bytes, header says {width}x{height}x{channels}x{bps}")
    prefix = r.take(r.u32("prefix length"), "prefix")
    n_idat = r.u32("IDAT count")
    if n_idat == 0 or n_idat * 4 > len(head):
        raise CorruptDataError("PNG transform stream: bad IDAT count")
    sizes = struct.unpack(f"<{n_idat}I", r.take(4 * n_idat, "IDAT sizes"))
    suffix = r.take(r.u32("suffix length"), "suffix")
    filters = r.take(height, "row filters")
    if r.pos != len(head):
        raise CorruptDataError("PNG transform stream: trailing bytes in side info")
    try:
        filtered = _core.png_filter(pixels, filters, row, channels * bps)
        z = _core.zlib_deflate(filtered, level, mem_level, strategy, wbits)
    except MmzError as e:
        raise CorruptDataError(f"PNG transform stream: {e}") from e
    if sum(sizes) != len(z):
        raise CorruptDataError("PNG transform stream: IDAT sizes do not match the deflated data")
    return _assemble(prefix, sizes, z, suffix)


def _assemble(prefix: bytes, sizes: tuple[int, ...] | list[int], z: bytes, suffix: bytes) -> bytes:
    out = [prefix]
    pos = 0
    for n in sizes:
        out.append(_chunk(b"IDAT", z[pos:pos + n]))
        pos += n
    out.append(suffix)
    return b"".join(out)
