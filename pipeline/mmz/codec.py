"""Codec selection and chunk planning: which engine, which level, how a
stream is cut into chunks and what each chunk's hint tells the engine.

This module is the glue between modality detection (:mod:`mmz.modality`),
the reversible transforms (:mod:`mmz.transform`) and the Rust core's chunk
codecs. It holds no I/O; :mod:`mmz.frame` drives it.
"""

from __future__ import annotations

import functools
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

#: Largest input (or, for a stream of unknown length, chunk) in raw bytes that ``--codec auto``
#: codes with the neural codec, by preset and modality; bigger ones, other modalities and the fast
#: preset use the CM engine. Chosen from ``bench/auto_policy.py`` (docs/BENCHMARKS.md "Where the
#: neural codec pays"): the network's gain over CM falls with input size (level 5: text 21-25% at
#: 16 KiB, 5-9% at 256 KiB, nothing at 1 MiB; structured and FASTQ still 4-5% at 1 MiB; level 9:
#: 2-5% at 1 MiB, text 0-6% at 2 MiB and 0% at 4 MiB, CSV 5.5% at 4 MiB) while it costs 20-100x
#: CM's CPU time; on images and audio it gains under 1.5%.
NEURAL_AUTO_LIMIT: dict[str, dict[str, int]] = {
    "fast": {},
    "default": {"text": 256 << 10, "structured": 1 << 20, "gene": 1 << 20},
    "max": {"text": 2 << 20, "structured": 4 << 20, "gene": 4 << 20},
}


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
    """Turn a user codec name into the engine of a frame that is not a neural ``auto`` frame.

    ``auto`` resolves to the CM engine here; :func:`auto_neural_limit` says for which inputs
    ``auto`` runs the neural codec instead (small text-like inputs, where the network's prior
    beats a cold context model by up to 25%).
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


def auto_neural_limit(level: int, modality: str, head: bytes = b"") -> int:
    """Raw bytes up to which ``--codec auto`` uses the neural codec for ``modality`` at ``level``
    (0 = never: fast preset, a modality where the network does not pay, or no usable model).
    ``head`` (the input's first bytes) restricts gene inputs to FASTQ (``@`` first): the network
    gains on FASTQ but never beat CM on FASTA sequence (0.0% from 16 KiB to 1 MiB,
    bench/auto_policy.py), and other gene formats were not measured.

    A model that cannot be loaded or fails its golden probe on this CPU is not an error for
    ``auto``: the input is coded with the CM engine instead.
    """
    limit = NEURAL_AUTO_LIMIT[preset_for_level(level)].get(modality, 0)
    if limit <= 0 or (modality == "gene" and head[:1] != b"@"):
        return 0
    return limit if _neural_usable(os.environ.get("MMZ_MODEL")) else 0


@functools.lru_cache(maxsize=8)
def _neural_usable(model_env: str | None) -> bool:
    """True if the model the neural writer would use (the default, or ``$MMZ_MODEL``) is a shipped
    one, loads and passes its probe; memoized per ``$MMZ_MODEL`` value. ``auto`` output must decode
    with any mmz that ships the model, so a private ``--model`` is used only by ``--codec neural``."""
    from mmz import neural

    if not neural.available():
        return False
    try:
        model = neural.cached(None)
    except Exception:  # noqa: BLE001 - a model that cannot load (damaged manifest, probe) means CM, not an error
        return False
    shipped = neural.MODELS_DIR.resolve()
    return model.directory is not None and model.directory.resolve().parent == shipped


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
