"""Neural codec (codec id 3): the deterministic Rust RWKV-MoE engine behind a small Python API.

Contract (used by :mod:`mmz.api`)::

    mmz.neural.available() -> bool
    model = mmz.neural.load(model_dir_or_id=None)      # default: the shipped model
    model.id                                            # 32-byte sha256 (manifest model_id)
    record = mmz.neural.encode_chunk(model, data, level, hint)   # 64-byte header + payload
    data = mmz.neural.decode_chunk(model, header, payload)

``encode_chunk`` keeps the cheapest of the mixed neural payload (network + online context models,
payload flags 1), the plain neural payload, the CM codec and stored bytes, so the
record's codec id may be 3, 2 or 0; ``decode_chunk`` decodes any of them and verifies both
checksums. Loading runs the golden probe (a fixed token sequence whose quantized-CDF hash is
recorded in ``probes.json`` next to this file) and refuses a model/engine that computes anything
else; every neural payload also carries the encoder's probe hash, checked before decoding.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmz.errors import MmzError

#: Directory holding shipped models (``<id16>/manifest.json``).
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
#: Sidecar of reference probe hashes, ``{model_id: probe_hash}``.
PROBES_FILE = Path(__file__).resolve().parent / "probes.json"
FORMAT = "mmz-rwkv-moe/1"


def _core() -> Any:
    from mmz import _core as core

    return core


def available() -> bool:
    """True if this build has the neural engine and a model is shipped."""
    try:
        if not hasattr(_core(), "NeuralEngine"):
            return False
    except ImportError:
        return False
    return bool(_shipped_dirs())


def _shipped_dirs(base: Path = MODELS_DIR) -> list[Path]:
    out = []
    if base.is_dir():
        for d in sorted(base.iterdir()):
            mf = d / "manifest.json"
            if mf.is_file():
                try:
                    if json.loads(mf.read_text()).get("format") == FORMAT:
                        out.append(d)
                except ValueError:
                    continue
    return out


def find_model_dir(model_dir_or_id: str | os.PathLike[str] | bytes | None = None) -> Path:
    """Resolve a model directory: ``None`` = newest shipped model; a path; or a hex id (prefix) /
    32-byte id of a shipped model."""
    if model_dir_or_id is None:
        dirs = _shipped_dirs()
        if not dirs:
            raise MmzError(f"no neural model shipped in {MODELS_DIR} (export one with `mmz export`)")
        return max(dirs, key=lambda d: json.loads((d / "manifest.json").read_text()).get("exported", ""))
    if isinstance(model_dir_or_id, bytes):
        model_dir_or_id = model_dir_or_id.hex()
    p = Path(model_dir_or_id)
    if (p / "manifest.json").is_file():
        return p
    key = str(model_dir_or_id).lower()
    for d in _shipped_dirs():
        mid = json.loads((d / "manifest.json").read_text()).get("model_id", "")
        if len(key) >= 8 and mid.startswith(key):
            return d
    raise MmzError(f"neural model {model_dir_or_id!r} not found (shipped: {[d.name for d in _shipped_dirs()]})")


def reference_probes() -> dict[str, int]:
    """Recorded probe hashes ``{model_id hex: probe hash}``."""
    if not PROBES_FILE.is_file():
        return {}
    return {k: int(v, 16) for k, v in json.loads(PROBES_FILE.read_text()).items()}


@dataclass
class Model:
    """A loaded neural model: the Rust engine plus its manifest."""

    engine: Any
    manifest: dict[str, Any]
    directory: Path | None = None
    batch: int = 64  #: streams per lockstep group
    threads: int = 0  #: rayon threads (0 = global pool / RAYON_NUM_THREADS)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> bytes:
        """32-byte model id (sha256 of model.onnx, as in the manifest)."""
        return bytes.fromhex(self.manifest["model_id"])

    @property
    def probe_hash(self) -> int:
        """Golden probe hash computed by this engine on this model."""
        return int(self.engine.probe_hash)


def from_container(container: bytes, manifest: dict[str, Any], directory: Path | None = None,
                   check_probe: bool = True) -> Model:
    """Build a :class:`Model` from container bytes; verifies the recorded probe hash if any."""
    mods = list(manifest["tokenizer"]["vocab"]["modalities"])
    eng = _core().NeuralEngine(container, mods)
    model = Model(engine=eng, manifest=manifest, directory=directory)
    ref = reference_probes().get(manifest.get("model_id", ""))
    if check_probe and ref is not None and ref != model.probe_hash:
        raise MmzError(f"neural engine self-check failed: golden probe hash {model.probe_hash:016x} differs from the "
                       f"recorded {ref:016x} for model {manifest['model_id'][:16]}; this build/CPU does not reproduce "
                       "the reference arithmetic, refusing to use the model")
    return model


def load(model_dir_or_id: str | os.PathLike[str] | bytes | None = None) -> Model:
    """Load a model directory (default: the shipped model) into the Rust engine."""
    from mmz.neural.weights import pack_model_dir

    d = find_model_dir(model_dir_or_id)
    container, manifest = pack_model_dir(d)
    return from_container(container, manifest, d)


_CACHE: dict[str, Model] = {}
_RESOLVED: dict[tuple[object, str | None], Model] = {}
_CACHE_LOCK = threading.Lock()


def cached(model_dir_or_id: str | os.PathLike[str] | bytes | None = None) -> Model:
    """Load a model once per process (the probe runs once); ``None`` = ``$MMZ_MODEL`` or the shipped model.

    A 32-byte id (as recorded in a frame header) is looked up among the shipped models and
    ``$MMZ_MODEL``, so a frame always decodes with the exact model that coded it.
    """
    env = os.environ.get("MMZ_MODEL")
    request = (model_dir_or_id if isinstance(model_dir_or_id, (bytes, type(None))) else str(model_dir_or_id), env)
    hit = _RESOLVED.get(request)  # the reader asks once per chunk: skip the manifest scan
    if hit is not None:
        return hit
    if isinstance(model_dir_or_id, bytes):
        if env:
            try:
                d = find_model_dir(env)
                if json.loads((d / "manifest.json").read_text()).get("model_id") == model_dir_or_id.hex():
                    model_dir_or_id = d
            except MmzError:
                pass
    elif model_dir_or_id is None and env:
        model_dir_or_id = env
    d = find_model_dir(model_dir_or_id)
    key = str(d.resolve())
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = load(d)
            _CACHE[key] = model
        _RESOLVED[request] = model
        return model


def encode_chunk(model: Model, data: bytes, level: int, hint: bytes) -> bytes:
    """One complete chunk record (64-byte header + payload): cheapest of neural / CM / stored."""
    return bytes(model.engine.encode_chunk(data, level, hint, model.batch, model.threads))


def decode_chunk(model: Model, header: bytes, payload: bytes) -> bytes:
    """Decode a chunk record (any codec), verifying header, payload and data checksums."""
    return bytes(model.engine.decode_chunk(header, payload, model.batch, model.threads))


def encode_payload(model: Model, data: bytes, level: int, hint: bytes, mixed: bool = False,
                   cm_mixed: bool = False, cm_group: bool = False) -> bytes:
    """Neural payload only (always codec 3, no fallback); ``mixed`` = the network mixed bitwise with
    online context models of each sub-stream (payload flags 1) instead of the network alone,
    ``cm_mixed`` = the network mixed bitwise with the full CM byte model of each sub-stream (flags 2),
    ``cm_group`` = the same with one CM byte model per group of sub-streams (flags 3)."""
    return bytes(model.engine.encode_payload(data, level, hint, model.batch, model.threads, mixed, cm_mixed,
                                             cm_group))


def encode_all_forms(model: Model, data: bytes, level: int,
                     hint: bytes) -> tuple[bytes, bytes | None, bytes | None, bytes | None]:
    """``(plain, mixed, cm_mixed, cm_group)`` neural payloads (flags 0, 1, 2, 3) from one run of the
    network (the mixed forms are None when the model slice is not byte-wide)."""
    forms = model.engine.encode_forms(data, level, hint, model.batch, model.threads)
    plain, rest = forms[0], forms[1:]
    mixed, cmx, cmg = (bytes(f) if f is not None else None for f in rest)
    return bytes(plain), mixed, cmx, cmg


def encode_forms(model: Model, data: bytes, level: int, hint: bytes) -> tuple[bytes, bytes | None]:
    """``(plain, mixed)`` neural payloads from one run of the network (``mixed`` is None when the
    model slice is not byte-wide)."""
    plain, mixed, _, _ = encode_all_forms(model, data, level, hint)
    return plain, mixed


def encode_sample_mixed(model: Model, data: bytes, level: int, hint: bytes) -> bytes | None:
    """The sample-mixed neural payload (flags 4: whole samples of the hint's sample region coded by
    the CM sample model mixed with the network), or None when ``hint`` has no sample region."""
    out = model.engine.encode_sample_mixed(data, level, hint, model.batch, model.threads)
    return bytes(out) if out is not None else None


def decode_payload(model: Model, payload: bytes, raw_len: int, hint: bytes) -> bytes:
    """Inverse of :func:`encode_payload`."""
    return bytes(model.engine.decode_payload(payload, raw_len, hint, model.batch, model.threads))


def cross_entropy_bits(model: Model, data: bytes, level: int, hint: bytes) -> float:
    """Model cross-entropy of ``data`` (bits) under the codec's stream segmentation."""
    return float(model.engine.cross_entropy_bits(data, level, hint, model.batch, model.threads))


def estimate(data: bytes, level: int = 5, name: str | None = None, model: Model | None = None,
             chunk_size: int | None = None) -> dict[str, float]:
    """Model cross-entropy of a whole input next to the real neural payload size.

    The input is planned and chunked exactly as :func:`mmz.compress` does (modality detection,
    reversible transform, chunk hints); per chunk the float cross-entropy of the quantized-input
    model and the size of the coded neural payload are summed. Returns ``{"raw_bytes",
    "stream_bytes", "estimate_bits", "coded_bits", "gap_pct"}`` where ``gap_pct`` is how much the
    real bits exceed the estimate (coder overhead + CDF quantization + per-stream headers).
    """
    from mmz import codec as _codec

    model = model or cached()
    mod = _codec.detect_modality(data[:_codec.DETECT_BYTES], name)
    plan = _codec.plan_whole(data, mod)
    stream = plan.stream if plan.stream is not None else data
    chunk = chunk_size or _codec.default_chunk_size(level)
    ce = 0.0
    coded = 0
    for start, end in _codec.cut(len(stream), chunk):
        piece = stream[start:end]
        hint = _codec.chunk_hint(mod, plan.regions, start, end)
        ce += cross_entropy_bits(model, piece, level, hint)
        coded += 8 * len(encode_payload(model, piece, level, hint))
    return {"raw_bytes": float(len(data)), "stream_bytes": float(len(stream)), "estimate_bits": ce,
            "coded_bits": float(coded), "gap_pct": 100.0 * (coded - ce) / ce if ce > 0 else 0.0}


__all__ = ["estimate", "Model", "available", "load", "cached", "encode_chunk", "decode_chunk", "encode_payload",
           "encode_all_forms",
           "encode_sample_mixed",
           "encode_forms",
           "decode_payload", "cross_entropy_bits", "find_model_dir", "from_container", "reference_probes"]
