"""Codec selection and chunk planning: which engine, which level, how a
stream is cut into chunks and what each chunk's hint tells the engine.

This module is the glue between modality detection (:mod:`mmz.modality`),
the reversible transforms (:mod:`mmz.transform`) and the Rust core's chunk
codecs. It holds no I/O; :mod:`mmz.frame` drives it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mmz import _core
from mmz.errors import MmzError
from mmz.transform import SampleRegion as Region

#: Codec names accepted by ``--codec`` (``auto`` resolves to the best available engine).
CODECS = ("auto", "neural", "cm", "order2", "store")

#: Modality names, in on-disk id order.
MODALITIES = ("binary", "text", "structured", "gene", "image", "audio")

#: Level -> preset name.
PRESETS = {1: "fast", 2: "fast", 3: "fast", 4: "default", 5: "default", 6: "default",
           7: "max", 8: "max", 9: "max"}

#: Default level, as ``-5``.
DEFAULT_LEVEL = 5

#: Bytes read from the start of an input to detect its modality.
DETECT_BYTES = 64 * 1024

#: Inputs up to this size are read whole so image transforms (PNG) can apply.
TRANSFORM_LIMIT = 512 * 1024 * 1024

_CHUNK_BY_PRESET = {"fast": 4 << 20, "default": 8 << 20, "max": 16 << 20}


def preset_for_level(level: int) -> str:
    """The preset name (``fast``, ``default``, ``max``) of a level 1..9."""
    check_level(level)
    return PRESETS[level]


def check_level(level: int) -> int:
    """Validate a level; raises :class:`MmzError` outside 1..9."""
    if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 9:
        raise MmzError(f"compression level must be an integer 1..9, got {level!r}")
    return level


def default_chunk_size(level: int) -> int:
    """Raw bytes per chunk for a level: bigger chunks keep more context, smaller ones parallelize."""
    return _CHUNK_BY_PRESET[preset_for_level(level)]


def resolve_codec(codec: str) -> str:
    """Turn a user codec name into the engine that will run.

    ``auto`` is the CM engine: on every dev-corpus modality it is both denser and ~100x faster
    than the shipped neural model (docs/BENCHMARKS.md), so the neural codec is opt-in
    (``--codec neural``) until a model beats it.
    """
    if codec not in CODECS:
        raise MmzError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    if codec == "auto":
        for candidate in ("cm", "order2"):
            if _core.codec_available(candidate):
                return candidate
        return "store"
    if codec == "neural":
        from mmz import neural

        if not neural.available():
            raise MmzError("codec 'neural' needs the Rust neural engine and a shipped model; use --codec auto")
        return codec
    if not _core.codec_available(codec):
        raise MmzError(f"codec {codec!r} is not available in this build of mmz; use --codec auto")
    return codec


def default_threads() -> int:
    """All cores by default, as ``zstd -T0``."""
    return max(1, os.cpu_count() or 1)


def detect_modality(head: bytes, name: str | None = None) -> str:
    """Modality of an input from its first bytes and its name (``binary`` if unknown)."""
    try:
        from mmz.modality import detect
    except ImportError:  # pragma: no cover - detection module ships with mmz
        return "binary"
    modality = detect(head, name)
    return modality if modality in MODALITIES else "binary"


def check_modality(modality: str) -> str:
    """Validate a ``--modality`` override."""
    if modality not in MODALITIES:
        raise MmzError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    return modality


@dataclass(frozen=True)
class Plan:
    """How one input is represented for chunking."""

    modality: str
    transform: int
    stream: bytes | None
    regions: tuple[Region, ...]


def _regions(raw: Iterable[Region] | None) -> tuple[Region, ...]:
    """The usable sample regions (non-empty, 1-3 bytes per sample) of a transform's description."""
    return tuple(r for r in raw or () if r.length > 0 and r.channels > 0 and r.bytes_per_sample in (1, 2, 3))


def plan_whole(data: bytes, modality: str) -> Plan:
    """Plan for an input held whole in memory: apply the best reversible transform."""
    try:
        from mmz import transform
    except ImportError:  # pragma: no cover
        return Plan(modality, 0, data, ())
    if modality in ("image", "audio"):
        t = transform.forward(data, modality)
        return Plan(modality, t.transform, t.stream, _regions(t.regions))
    return Plan(modality, 0, data, ())


def plan_streaming(head: bytes, modality: str) -> Plan:
    """Plan for an input read as a stream: identity transform, layout from the first bytes."""
    if modality not in ("image", "audio"):
        return Plan(modality, 0, None, ())
    try:
        from mmz import transform
    except ImportError:  # pragma: no cover
        return Plan(modality, 0, None, ())
    return Plan(modality, 0, None, _regions(transform.describe(head, modality)))


def chunk_hint(modality: str, regions: tuple[Region, ...], start: int, end: int) -> bytes:
    """The 28-byte hint of the chunk covering stream bytes ``[start, end)``.

    The first sample region overlapping the chunk is described (start and end
    aligned to whole samples, with the index of its first sample so the engine
    knows the column and channel phase); other bytes are coded as bytes.
    """
    for r in regions:
        bps = r.bytes_per_sample
        lo = max(r.offset, start)
        hi = min(r.offset + r.length, end)
        lo = r.offset + -(-(lo - r.offset) // bps) * bps
        if hi - lo < bps:
            continue
        hi = lo + (hi - lo) // bps * bps
        first_sample = (lo - r.offset) // bps
        layout = (r.channels, bps, r.big_endian, r.signed, r.width, lo - start, hi - start, first_sample)
        return _core.make_hint(modality, layout)
    return _core.make_hint(modality, None)


def cut(total: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each chunk of a stream of ``total`` bytes."""
    for start in range(0, total, chunk_size):
        yield start, min(total, start + chunk_size)
