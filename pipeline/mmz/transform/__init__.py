"""Reversible transforms for images and audio, and sample-layout description.

The codec compresses a *stream* plus a list of *sample regions* inside it. For
most files the stream is the file itself (transform 0, identity) and
:func:`describe` finds where the samples are (WAV, PNM, BMP, uncompressed
TIFF). For PNG the pixels are hidden behind deflate, so :func:`forward` turns
the file into side info + raw pixels (transform 1) when it can prove that
:func:`inverse` rebuilds the original byte-for-byte (see :mod:`mmz.transform.png`).

Transform ids are part of the ``.mmz`` format and are never reused:

* ``0`` identity: the stream is the input.
* ``1`` PNG pixels: ``u32le side_len | side info | raw pixels`` (``png.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mmz.errors import MmzError

#: Identity transform id.
IDENTITY = 0
#: PNG -> side info + unfiltered pixels.
PNG_PIXELS = 1

#: How many leading bytes :func:`describe` looks at (the codec passes at most this).
HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class SampleRegion:
    """A run of whole samples inside a stream.

    Attributes:
        offset: byte offset in the stream where the sample data starts.
        length: bytes of sample data (a whole number of samples).
        channels: samples per pixel / per audio frame.
        bytes_per_sample: 1, 2 or 3.
        big_endian: PNM/PNG 16-bit are big-endian; WAV is little-endian.
        signed: WAV 16/24-bit signed; 8-bit WAV and all image samples unsigned.
        width: pixels per row for images; 0 for audio.
    """

    offset: int
    length: int
    channels: int
    bytes_per_sample: int
    big_endian: bool
    signed: bool
    width: int


@dataclass(frozen=True)
class Transformed:
    """Result of :func:`forward`.

    Attributes:
        transform: transform id (0 = identity, the stream is the input).
        stream: what the codec chunks and compresses.
        regions: sample regions inside ``stream``.
    """

    transform: int
    stream: bytes
    regions: tuple[SampleRegion, ...]


def describe(head: bytes, modality: str) -> tuple[SampleRegion, ...]:
    """Sample regions of an identity-layout file from its first bytes.

    Recognizes WAV (PCM 8/16/24-bit, WAVE_FORMAT_EXTENSIBLE PCM), PNM (P5/P6),
    BMP (24/32-bit uncompressed) and uncompressed 8/16-bit TIFF by their magic
    bytes, whatever ``modality`` says. Regions come from the header and may
    extend past ``len(head)`` (the caller clips them). Returns an empty tuple
    when the format is unknown or the header is unusable. Never raises.

    Args:
        head: the first bytes of the file (up to :data:`HEAD_BYTES`).
        modality: the detected modality (informational only).
    """
    from mmz.transform import layout

    try:
        return layout.describe(bytes(head[:HEAD_BYTES]))
    except Exception:  # noqa: BLE001 - the contract is "never raises"
        return ()


def clip_regions(regions: tuple[SampleRegion, ...], size: int) -> tuple[SampleRegion, ...]:
    """Clip regions to a stream of ``size`` bytes, keeping whole frames/pixels.

    Args:
        regions: regions as returned by :func:`describe`.
        size: the real length of the stream.
    """
    out = []
    for r in regions:
        unit = r.channels * r.bytes_per_sample
        if unit <= 0 or r.offset >= size or r.offset < 0:
            continue
        length = min(r.length, size - r.offset) // unit * unit
        if length > 0:
            out.append(SampleRegion(r.offset, length, r.channels, r.bytes_per_sample,
                                    r.big_endian, r.signed, r.width))
    return tuple(out)


def forward(data: bytes, modality: str) -> Transformed:
    """Best reversible representation of ``data`` for the codec.

    PNG becomes side info + raw pixels (transform 1) when re-encoding was
    verified to reproduce the file exactly; everything else (and every PNG
    that fails verification) is the identity with :func:`describe` regions
    clipped to the data. Never raises for any input.

    Args:
        data: the whole input file.
        modality: the detected modality (informational only).
    """
    data = bytes(data)
    try:
        from mmz.transform import png

        if data.startswith(png.SIGNATURE):
            t = png.forward(data)
            if t is not None:
                return t
    except Exception:  # noqa: BLE001 - any failure means "use the identity"
        pass
    return Transformed(IDENTITY, data, clip_regions(describe(data[:HEAD_BYTES], modality), len(data)))


def inverse(transform: int, stream: bytes) -> bytes:
    """Rebuild the original file from a transformed stream.

    Args:
        transform: the transform id recorded in the frame.
        stream: the decoded stream.

    Raises:
        CorruptDataError: the stream is malformed for this transform.
        MmzError: the transform id is unknown to this build (upgrade mmz).
    """
    if transform == IDENTITY:
        return bytes(stream)
    if transform == PNG_PIXELS:
        from mmz.transform import png

        return png.inverse(bytes(stream))
    raise MmzError(f"unknown transform id {transform}: this build cannot rebuild it, upgrade mmz")


__all__ = [
    "HEAD_BYTES",
    "IDENTITY",
    "PNG_PIXELS",
    "SampleRegion",
    "Transformed",
    "clip_regions",
    "describe",
    "forward",
    "inverse",
]
