"""The neural engine's weight container (``MMZNW001``) and readers for its sources.

Layout (all little-endian), parsed by ``rust/core/src/neural/weights.rs``::

    b"MMZNW001"
    u32 K, then K x i32 config integers: CONFIG_FIELDS, then (start, size) per modality
    u32 T, then per tensor: u32 name length, UTF-8 name, u32 ndim, ndim x u32 dims, f32 data

Tensor names/shapes follow ``pipeline/mmz/model/SPEC.md`` §4 (merged weights, no ``rep_*``).
fp16 weights are widened to float32 exactly once here.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mmz.errors import MmzError

MAGIC = b"MMZNW001"

#: Order of the config integers (must match ``CONFIG_FIELDS`` in weights.rs).
CONFIG_FIELDS: tuple[str, ...] = (
    "d_model", "n_layer", "head_size", "ffn_mult", "n_experts", "top_k", "moe_v", "moe_ffn", "fade",
    "fade_kernel", "decay_lora", "aaa_lora", "mv_lora", "gate_lora", "n_mod", "prefix_base", "vocab_size",
)


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Read a safetensors file (F32/F16 tensors) into float32 arrays."""
    raw = Path(path).read_bytes()
    if len(raw) < 8:
        raise MmzError(f"{path}: not a safetensors file")
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    kinds = {"F32": "<f4", "F16": "<f2"}
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in kinds:
            raise MmzError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        a, b = info["data_offsets"]
        arr = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=kinds[info["dtype"]]).reshape(info["shape"])
        out[name] = arr.astype(np.float32)
    return out


def pack(tensors: Mapping[str, Any], config: Mapping[str, Any], vocab: Mapping[str, Any]) -> bytes:
    """Build a container from named tensors (numpy arrays or torch tensors), a model config dict
    (``manifest["config"]``) and a vocabulary dict (``manifest["tokenizer"]["vocab"]``)."""
    slices = [tuple(s) for s in vocab["slices"]]
    values = {**{k: int(config[k]) for k in CONFIG_FIELDS[:14]}, "n_mod": len(slices),
              "prefix_base": int(vocab["prefix_base"]), "vocab_size": int(vocab["size"])}
    ints = [values[k] for k in CONFIG_FIELDS] + [int(x) for s in slices for x in s]
    parts = [MAGIC, struct.pack("<I", len(ints)), struct.pack(f"<{len(ints)}i", *ints)]
    names = sorted(k for k in tensors if ".rep_" not in k)
    parts.append(struct.pack("<I", len(names)))
    for name in names:
        t = tensors[name]
        arr = np.ascontiguousarray(t.detach().cpu().numpy() if hasattr(t, "detach") else t, dtype="<f4")
        nb = name.encode()
        parts += [struct.pack("<I", len(nb)), nb, struct.pack("<I", arr.ndim),
                  struct.pack(f"<{arr.ndim}I", *arr.shape), arr.tobytes()]
    return b"".join(parts)


def pack_model_dir(model_dir: str | Path) -> tuple[bytes, dict[str, Any]]:
    """Container bytes and manifest of a shipped model directory (``manifest.json`` +
    ``weights.safetensors``)."""
    d = Path(model_dir)
    mf = d / "manifest.json"
    if not mf.is_file():
        raise MmzError(f"{d}: no manifest.json (not a model directory)")
    manifest = json.loads(mf.read_text())
    wfile = d / manifest.get("files", {}).get("weights", "weights.safetensors")
    if not wfile.is_file():
        raise MmzError(f"{d}: weights file {wfile.name} missing")
    return pack(read_safetensors(wfile), manifest["config"], manifest["tokenizer"]["vocab"]), manifest


def pack_torch_model(model: Any) -> bytes:
    """Container of a :class:`mmz.model.model.RwkvMoe` (reparameterisation must already be merged)."""
    import dataclasses

    return pack(model.state_dict(), dataclasses.asdict(model.cfg), model.vocab.to_dict())
