"""Split a transformed file into its samples and everything else, exactly.

Used by the media tokenizers: samples become tokens, the rest (container
headers, extra chunks, PNG side info) travels verbatim in a header.

Header layout (integers little-endian)::

    b"MZC" | u8 version=1 | u8 transform | u64 stream_len | u32 n_regions
    | n_regions x (u64 offset, u64 length, u8 channels, u8 bytes_per_sample,
                   u8 flags (1 = big-endian, 2 = signed), u32 width)
    | the stream with every region's bytes removed

Samples are returned *most significant byte first* regardless of the file's
endianness, so every sample of ``b`` bytes is ``b`` consecutive values with
the high byte first.
"""

from __future__ import annotations

import struct

import numpy as np

from mmz.errors import CorruptDataError
from mmz.transform import SampleRegion, Transformed, forward, inverse

_HEAD = struct.Struct("<3sBBQI")
_REGION = struct.Struct("<QQBBBI")
_VERSION = 1


def _disjoint(regions: tuple[SampleRegion, ...], size: int) -> list[SampleRegion]:
    out: list[SampleRegion] = []
    end = 0
    for r in sorted(regions, key=lambda r: r.offset):
        unit = r.channels * r.bytes_per_sample
        if r.offset < end or r.offset + r.length > size or unit <= 0 or r.length % unit or r.length == 0:
            continue
        out.append(r)
        end = r.offset + r.length
    return out


def _msb_first(buf: bytes, r: SampleRegion) -> bytes:
    if r.bytes_per_sample == 1 or r.big_endian:
        return buf
    a = np.frombuffer(buf, dtype=np.uint8).reshape(-1, r.bytes_per_sample)
    return a[:, ::-1].tobytes()


def carve(data: bytes, modality: str) -> tuple[bytes, bytes, list[SampleRegion]]:
    """Forward-transform ``data`` and split it.

    Args:
        data: the original file.
        modality: passed to :func:`mmz.transform.forward`.

    Returns:
        ``(samples, header, regions)``: samples (MSB first) of every region in
        stream order, the header that :func:`uncarve` needs, and the regions.
    """
    t: Transformed = forward(data, modality)
    stream = t.stream
    regions = _disjoint(t.regions, len(stream))
    parts = []
    rest = []
    pos = 0
    table = []
    for r in regions:
        rest.append(stream[pos:r.offset])
        parts.append(_msb_first(stream[r.offset:r.offset + r.length], r))
        pos = r.offset + r.length
        flags = (1 if r.big_endian else 0) | (2 if r.signed else 0)
        table.append(_REGION.pack(r.offset, r.length, r.channels, r.bytes_per_sample, flags, r.width))
    rest.append(stream[pos:])
    header = _HEAD.pack(b"MZC", _VERSION, t.transform, len(stream), len(regions)) + b"".join(table) + b"".join(rest)
    return b"".join(parts), header, regions


def parse_header(header: bytes) -> tuple[int, int, list[SampleRegion], bytes]:
    """Return (transform, stream_len, regions, non-sample bytes) of a carve header.

    Raises:
        CorruptDataError: the header is malformed.
    """
    if len(header) < _HEAD.size:
        raise CorruptDataError("media token header: truncated")
    magic, version, transform, stream_len, n = _HEAD.unpack_from(header, 0)
    if magic != b"MZC" or version != _VERSION:
        raise CorruptDataError("media token header: bad magic or version")
    pos = _HEAD.size
    if n * _REGION.size > len(header) - pos:
        raise CorruptDataError("media token header: region table runs past the end")
    regions = []
    end = 0
    for i in range(n):
        off, length, ch, bps, flags, width = _REGION.unpack_from(header, pos + i * _REGION.size)
        if off < end or bps not in (1, 2, 3) or ch == 0 or length % (ch * bps) or off + length > stream_len:
            raise CorruptDataError(f"media token header: region {i} is inconsistent")
        end = off + length
        regions.append(SampleRegion(off, length, ch, bps, bool(flags & 1), bool(flags & 2), width))
    rest = header[pos + n * _REGION.size:]
    if len(rest) + sum(r.length for r in regions) != stream_len:
        raise CorruptDataError("media token header: sizes do not add up")
    return transform, stream_len, regions, rest


def uncarve(samples: bytes, header: bytes) -> bytes:
    """Inverse of :func:`carve`: rebuild the original file.

    Raises:
        CorruptDataError: header and samples do not fit together.
    """
    transform, stream_len, regions, rest = parse_header(header)
    if len(samples) != sum(r.length for r in regions):
        raise CorruptDataError("media tokens: sample count does not match the header")
    out = []
    pos = 0  # in stream
    rpos = 0  # in rest
    spos = 0  # in samples
    for r in regions:
        gap = r.offset - pos
        out.append(rest[rpos:rpos + gap])
        rpos += gap
        out.append(_msb_first(samples[spos:spos + r.length], r))  # the swap is its own inverse
        spos += r.length
        pos = r.offset + r.length
    out.append(rest[rpos:])
    return inverse(transform, b"".join(out))
