"""Header parsers that locate raw samples in identity-layout files.

Each parser reads only the header and returns regions as the header declares
them; lengths the header lies about are clipped later by the caller
(:func:`mmz.transform.clip_regions`) or by the codec. Parsers return ``()``
for anything they do not fully understand.
"""

from __future__ import annotations

import struct

from mmz.transform import SampleRegion

#: Most per-row regions emitted for a padded BMP (further rows are plain bytes).
MAX_ROW_REGIONS = 1 << 16
#: Largest plausible image side.
MAX_SIDE = 1 << 24

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def describe(head: bytes) -> tuple[SampleRegion, ...]:
    """Dispatch on the magic bytes of ``head``; see :func:`mmz.transform.describe`."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return wav(head)
    if head[:2] in (b"P5", b"P6"):
        return pnm(head)
    if head[:2] == b"BM":
        return bmp(head)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return tiff(head)
    return ()


def wav(head: bytes) -> tuple[SampleRegion, ...]:
    """One region over the ``data`` chunk of a PCM RIFF/WAVE file."""
    pos = 12
    fmt: tuple[int, int, int] | None = None  # channels, bytes/sample, block align
    while pos + 8 <= len(head):
        cid = head[pos:pos + 4]
        (size,) = struct.unpack_from("<I", head, pos + 4)
        body = pos + 8
        if cid == b"fmt " and size >= 16 and body + 16 <= len(head):
            tag, channels, _rate, _byte_rate, align, bits = struct.unpack_from("<HHIIHH", head, body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and size >= 40 and body + 26 <= len(head):
                (tag,) = struct.unpack_from("<H", head, body + 24)  # SubFormat GUID, first 2 bytes
            if tag != _WAVE_FORMAT_PCM or bits not in (8, 16, 24) or not 1 <= channels <= 8:
                return ()
            bps = bits // 8
            if align != channels * bps:
                return ()
            fmt = (channels, bps, align)
        elif cid == b"data":
            if fmt is None:
                return ()
            channels, bps, align = fmt
            length = size // align * align
            if length <= 0:
                return ()
            return (SampleRegion(body, length, channels, bps, False, bps > 1, 0),)
        pos = body + size + (size & 1)
    return ()


def _pnm_tokens(head: bytes, count: int) -> tuple[list[int], int] | None:
    """Read ``count`` decimal header fields after the magic; return them and the data offset."""
    pos = 2
    values: list[int] = []
    n = len(head)
    while len(values) < count:
        while pos < n and (head[pos] in b" \t\r\n\x0b\x0c" or head[pos] == 0x23):
            if head[pos] == 0x23:  # comment to end of line
                while pos < n and head[pos] not in b"\r\n":
                    pos += 1
            else:
                pos += 1
        start = pos
        while pos < n and 0x30 <= head[pos] <= 0x39 and pos - start < 10:
            pos += 1
        if pos == start or pos >= n:
            return None
        values.append(int(head[start:pos]))
    if head[pos] not in b" \t\r\n\x0b\x0c":
        return None
    return values, pos + 1


def pnm(head: bytes) -> tuple[SampleRegion, ...]:
    """One region over the raster of a binary PGM (P5) or PPM (P6)."""
    parsed = _pnm_tokens(head, 3)
    if parsed is None:
        return ()
    (width, height, maxval), offset = parsed
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and 0 < maxval < 65536):
        return ()
    channels = 1 if head[1:2] == b"5" else 3
    bps = 1 if maxval < 256 else 2
    return (SampleRegion(offset, width * height * channels * bps, channels, bps, bps == 2, False, width),)


def bmp(head: bytes) -> tuple[SampleRegion, ...]:
    """Regions of a 24/32-bit uncompressed BMP: one, or one per row when rows are padded."""
    if len(head) < 54:
        return ()
    (offset,) = struct.unpack_from("<I", head, 10)
    (dib,) = struct.unpack_from("<I", head, 14)
    if dib < 40:
        return ()
    width, height, _planes, bits, compression = struct.unpack_from("<iiHHI", head, 18)
    if bits not in (24, 32) or compression not in (0, 3) or (compression == 3 and bits != 32):
        return ()
    height = abs(height)
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or offset < 54:
        return ()
    channels = bits // 8
    row = width * channels
    stride = (row + 3) // 4 * 4
    if stride == row:
        return (SampleRegion(offset, row * height, channels, 1, False, False, width),)
    rows = min(height, MAX_ROW_REGIONS)
    return tuple(SampleRegion(offset + y * stride, row, channels, 1, False, False, width) for y in range(rows))


def tiff(head: bytes) -> tuple[SampleRegion, ...]:
    """Regions of the strips of an uncompressed, chunky, 8/16-bit TIFF (first IFD only)."""
    end = "<" if head[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(end + "I", head, 4)
    if ifd + 2 > len(head):
        return ()
    (count,) = struct.unpack_from(end + "H", head, ifd)
    sizes = {1: 1, 3: 2, 4: 4}
    tags: dict[int, list[int]] = {}
    for i in range(count):
        e = ifd + 2 + 12 * i
        if e + 12 > len(head):
            return ()
        tag, typ, n = struct.unpack_from(end + "HHI", head, e)
        if typ not in sizes or n == 0 or n > 1 << 16:
            continue
        size = sizes[typ] * n
        where = e + 8 if size <= 4 else struct.unpack_from(end + "I", head, e + 8)[0]
        if where + size > len(head):
            continue
        fmt = {1: "B", 3: "H", 4: "I"}[typ]
        tags[tag] = list(struct.unpack_from(f"{end}{n}{fmt}", head, where))
    try:
        width, height = tags[256][0], tags[257][0]
        bits = tags.get(258, [1])
        compression = tags.get(259, [1])[0]
        photometric = tags[262][0]
        offsets, counts = tags[273], tags[279]
    except (KeyError, IndexError):
        return ()
    channels = tags.get(277, [1])[0]
    planar = tags.get(284, [1])[0]
    if compression != 1 or planar != 1 or photometric > 2 or not 1 <= channels <= 4:
        return ()
    if len(set(bits)) != 1 or bits[0] not in (8, 16) or len(offsets) != len(counts):
        return ()
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        return ()
    bps = bits[0] // 8
    unit = channels * bps
    return tuple(
        SampleRegion(o, c // unit * unit, channels, bps, end == ">", False, width)
        for o, c in zip(offsets, counts, strict=True)
        if c >= unit
    )
