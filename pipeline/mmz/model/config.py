"""Model / training configuration (pure Python: no torch, importable by the inference path).

A run is described by one TOML file (``configs/s.toml``) with three tables: ``[model]``,
``[data]`` and ``[train]``. :func:`load_config` parses it into :class:`RunConfig`;
unknown keys are errors so typos never silently fall back to defaults.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from mmz.errors import MmzError

#: Model modalities (``medical`` folds into ``image``, ``speech``/``music`` into ``audio``).
MODEL_MODALITIES: tuple[str, ...] = ("text", "structured", "gene", "image", "audio")


@dataclass
class ModelConfig:
    """Architecture hyper-parameters of the RWKV-MoE predictor (see SPEC.md)."""

    d_model: int = 128
    n_layer: int = 4
    head_size: int = 64
    ffn_mult: int = 4  #: dense channel-mix hidden factor; each MoE expert uses ffn_mult // 2
    n_experts: int = 4
    top_k: int = 2
    moe_v: bool = True  #: modality-routing MoE on the time-mix V projection
    moe_ffn: bool = True  #: modality-routing MoE channel mix
    reparam: bool = True  #: training-time high-rank branches on R/K/V (merged at export)
    fade: bool = False  #: FADE local stream + gate + gated refiner
    fade_kernel: int = 4
    decay_lora: int = 16
    aaa_lora: int = 16
    mv_lora: int = 16
    gate_lora: int = 32
    chunk_len: int = 32  #: chunk length of the parallel (training) WKV form
    vocab: str = "byte"  #: "byte": one 256-value slice per modality + one prefix token each

    @property
    def n_head(self) -> int:
        """Number of WKV heads."""
        return self.d_model // self.head_size


@dataclass
class DataConfig:
    """Corpus, split and sampling."""

    corpus: str = "/work/shared/corpus"
    seq_len: int = 512
    seqs_per_modality: int = 4  #: batch = seqs_per_modality * len(MODEL_MODALITIES)
    val_fraction: float = 0.1
    audio_layout: str = "split"  #: "split" (high byte, low byte per sample) or "le" (file order)
    image_layout: str = "raster"
    val_windows: int = 8  #: fixed validation windows per modality
    modalities: list[str] = field(default_factory=lambda: list(MODEL_MODALITIES))


@dataclass
class TrainConfig:
    """Optimisation and schedule."""

    seed: int = 1234
    lr: float = 2e-3
    lr_min: float = 1e-4
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    total_steps: int = 4000
    stage_fractions: list[float] = field(default_factory=lambda: [0.15, 0.15, 0.7])
    balance_coef: float = 1e-2
    zloss_coef: float = 1e-3
    threads: int = 1
    checkpoint_minutes: float = 10.0
    eval_every: int = 100
    log_every: int = 10
    run_dir: str = "checkpoints/s"


@dataclass
class RunConfig:
    """A whole training recipe."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = "s"

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (stored in checkpoints and manifests)."""
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """sha256 of the canonical JSON recipe."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def _fill(cls: type, table: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(table) - names
    if unknown:
        raise MmzError(f"{where}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(names)}")
    return cls(**table)


def config_from_dict(d: dict[str, Any]) -> RunConfig:
    """Build a :class:`RunConfig` from a dict shaped like the TOML file."""
    unknown = set(d) - {"model", "data", "train", "name"}
    if unknown:
        raise MmzError(f"config: unknown table(s) {sorted(unknown)}; expected [model], [data], [train]")
    cfg = RunConfig(
        model=_fill(ModelConfig, d.get("model", {}), "[model]"),
        data=_fill(DataConfig, d.get("data", {}), "[data]"),
        train=_fill(TrainConfig, d.get("train", {}), "[train]"),
        name=d.get("name", "s"),
    )
    m = cfg.model
    if m.d_model % m.head_size:
        raise MmzError(f"[model] d_model={m.d_model} must be a multiple of head_size={m.head_size}")
    if not 1 <= m.top_k <= m.n_experts:
        raise MmzError(f"[model] top_k={m.top_k} must be in 1..n_experts={m.n_experts}")
    if m.vocab != "byte":
        raise MmzError(f"[model] vocab={m.vocab!r} is not supported yet; use 'byte'")
    bad = [x for x in cfg.data.modalities if x not in MODEL_MODALITIES]
    if bad:
        raise MmzError(f"[data] modalities {bad} unknown; choose from {MODEL_MODALITIES}")
    if abs(sum(cfg.train.stage_fractions) - 1.0) > 1e-6 or len(cfg.train.stage_fractions) != 3:
        raise MmzError("[train] stage_fractions must be three numbers summing to 1")
    return cfg


def load_config(path: str | Path) -> RunConfig:
    """Parse a TOML recipe; raises :class:`MmzError` with the offending key on errors."""
    p = Path(path)
    if not p.is_file():
        raise MmzError(f"config file {p} not found (try configs/s.toml)")
    with p.open("rb") as f:
        d = tomllib.load(f)
    d.setdefault("name", p.stem)
    return config_from_dict(d)


@dataclass(frozen=True)
class VocabLayout:
    """Unified token space: per-modality output slices plus one prefix token per modality.

    ``slices[i] = (start, size)`` for ``modalities[i]``; prefix token of modality ``i`` is
    ``prefix_base + i``. Values inside a slice are ``start + value``.
    """

    modalities: tuple[str, ...]
    slices: tuple[tuple[int, int], ...]
    prefix_base: int

    @property
    def size(self) -> int:
        """Total vocabulary (slices + prefixes)."""
        return self.prefix_base + len(self.modalities)

    @property
    def max_slice(self) -> int:
        """Largest slice size (the width of the exported logits output)."""
        return max(s for _, s in self.slices)

    def modality_id(self, modality: str) -> int:
        """Index of ``modality``; raises with the valid names otherwise."""
        try:
            return self.modalities.index(modality)
        except ValueError:
            raise MmzError(f"modality {modality!r} not in model vocabulary {self.modalities}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for manifests."""
        return {"modalities": list(self.modalities), "slices": [list(s) for s in self.slices],
                "prefix_base": self.prefix_base, "size": self.size}


def byte_vocab(modalities: tuple[str, ...] = MODEL_MODALITIES) -> VocabLayout:
    """Byte-level layout: modality ``i`` owns ids ``[256 i, 256 i + 256)``; prefixes follow."""
    slices = tuple((256 * i, 256) for i in range(len(modalities)))
    return VocabLayout(modalities=tuple(modalities), slices=slices, prefix_base=256 * len(modalities))
