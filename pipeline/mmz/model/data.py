"""Corpus loading, deterministic train/validation split and balanced sampling (numpy only).

Byte-level token streams (``vocab = "byte"``):

* text / structured / gene: the file bytes;
* image (``image`` + ``medical``): PNG decoded with Pillow to raw sub-pixels in raster order,
  channels interleaved; 16-bit samples as high byte then low byte;
* audio (``speech`` + ``music``): the PCM bytes of the WAV ``data`` chunk; with
  ``audio_layout = "split"`` 16-bit samples become high byte then low byte (big-endian).

Split (per MANIFEST modality, so ``medical`` and ``music`` get their own held-out files): files are
ordered by ``sha256(relpath)``; the first ``max(1, round(val_fraction * n))`` are validation. A
modality with fewer than 10 files is split inside the files instead: the last ``val_fraction``
of every file is validation (a 5-file modality would otherwise lose a fifth of its data).
"""

from __future__ import annotations

import csv
import hashlib
import io
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmz.errors import MmzError
from mmz.model.config import DataConfig, VocabLayout

#: MANIFEST modality -> model modality.
FOLD = {"text": "text", "structured": "structured", "gene": "gene", "image": "image", "medical": "image",
        "speech": "audio", "music": "audio"}


def wav_pcm(data: bytes, layout: str = "split") -> bytes:
    """PCM payload of a RIFF/WAVE file; 16/24/32-bit samples reordered MSB-first for ``layout='split'``.

    Raises :class:`MmzError` if the file is not a PCM WAV.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise MmzError("not a RIFF/WAVE file")
    pos, width, pcm = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            width = struct.unpack("<H", body[14:16])[0] // 8
        elif cid == b"data":
            pcm = body
        pos += 8 + size + (size & 1)
    if pcm is None or width is None:
        raise MmzError("WAV without fmt/data chunk")
    if layout == "split" and width > 1:
        n = len(pcm) // width * width
        arr = np.frombuffer(pcm[:n], dtype=np.uint8).reshape(-1, width)[:, ::-1]
        return arr.tobytes() + pcm[n:]
    return pcm


def image_bytes(data: bytes) -> bytes:
    """Raw sub-pixels (raster order, channels interleaved, 16-bit MSB first) of an image file."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im)
            if arr.dtype != np.uint16:
                if arr.min() < 0 or arr.max() > 65535:
                    raise MmzError(f"image mode {im.mode} with values outside 16 bits")
                arr = arr.astype(np.uint16)
            return arr.astype(">u2").tobytes()
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        if im.mode not in ("L", "LA", "RGB", "RGBA"):
            im = im.convert("RGB")
        return np.asarray(im).tobytes()


def file_tokens_bytes(data: bytes, modality: str, cfg: DataConfig) -> bytes:
    """Byte stream the model predicts for one file of a model modality."""
    if modality == "image":
        return image_bytes(data)
    if modality == "audio":
        return wav_pcm(data, cfg.audio_layout)
    return data


@dataclass
class Stream:
    """One file's byte stream (already cut to its train or validation part)."""

    path: str
    modality: str
    data: np.ndarray  #: uint8


@dataclass
class Corpus:
    """Train/validation streams per model modality plus provenance."""

    train: dict[str, list[Stream]] = field(default_factory=dict)
    val: dict[str, list[Stream]] = field(default_factory=dict)
    data_hash: str = ""

    def summary(self) -> dict[str, dict[str, int]]:
        """Bytes per modality and split."""
        return {m: {"train_bytes": int(sum(s.data.size for s in self.train.get(m, []))),
                    "val_bytes": int(sum(s.data.size for s in self.val.get(m, [])))}
                for m in sorted(set(self.train) | set(self.val))}


def read_manifest(corpus: str | Path) -> list[dict[str, str]]:
    """Rows of ``MANIFEST.tsv`` (set == dev)."""
    p = Path(corpus) / "MANIFEST.tsv"
    if not p.is_file():
        raise MmzError(f"{p} not found: pass the corpus root (containing MANIFEST.tsv and dev/)")
    with p.open(newline="") as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r.get("set") == "dev"]


def split_rows(rows: list[dict[str, str]], val_fraction: float) -> dict[str, tuple[str, str]]:
    """relpath -> ("file", "train"|"val") or ("tail", "") (split inside the file)."""
    by_mod: dict[str, list[str]] = {}
    for r in rows:
        by_mod.setdefault(r["modality"], []).append(r["path"])
    out: dict[str, tuple[str, str]] = {}
    for paths in by_mod.values():
        if len(paths) < 10:
            out.update({p: ("tail", "") for p in paths})
            continue
        ranked = sorted(paths, key=lambda p: hashlib.sha256(p.encode()).hexdigest())
        n_val = max(1, round(val_fraction * len(paths)))
        out.update({p: ("file", "val" if i < n_val else "train") for i, p in enumerate(ranked)})
    return out


def load_corpus(cfg: DataConfig) -> Corpus:
    """Load ``cfg.corpus``/dev into memory as byte streams, split and hashed."""
    rows = read_manifest(cfg.corpus)
    plan = split_rows(rows, cfg.val_fraction)
    corpus = Corpus()
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: r["path"]):
        mod = FOLD.get(r["modality"])
        if mod is None or mod not in cfg.modalities:
            continue
        h.update(f"{r['path']}\t{r['sha256']}\n".encode())
        raw = (Path(cfg.corpus) / r["path"]).read_bytes()
        try:
            arr = np.frombuffer(file_tokens_bytes(raw, mod, cfg), dtype=np.uint8)
        except MmzError as e:
            raise MmzError(f"{r['path']}: {e}") from e
        kind, part = plan[r["path"]]
        if kind == "file":
            (corpus.val if part == "val" else corpus.train).setdefault(mod, []).append(Stream(r["path"], mod, arr))
        else:
            cut = int(arr.size * (1 - cfg.val_fraction))
            corpus.train.setdefault(mod, []).append(Stream(r["path"], mod, arr[:cut]))
            corpus.val.setdefault(mod, []).append(Stream(r["path"] + "#tail", mod, arr[cut:]))
    h.update(f"val_fraction={cfg.val_fraction};audio={cfg.audio_layout};image={cfg.image_layout}".encode())
    corpus.data_hash = h.hexdigest()
    return corpus


class BalancedSampler:
    """Round-robin over modalities: every batch holds ``seqs_per_modality`` windows of each modality.

    A window is ``prefix token + seq_len tokens`` taken from a file chosen with probability
    proportional to its length (files shorter than ``seq_len + 1`` bytes are skipped).
    """

    def __init__(self, streams: dict[str, list[Stream]], vocab: VocabLayout, cfg: DataConfig, seed: int) -> None:
        self.cfg, self.vocab = cfg, vocab
        self.mods = [m for m in cfg.modalities if streams.get(m)]
        if not self.mods:
            raise MmzError("no training data: check [data] corpus and modalities")
        self.files: dict[str, list[np.ndarray]] = {}
        self.probs: dict[str, np.ndarray] = {}
        for m in self.mods:
            fs = [s.data for s in streams[m] if s.data.size > cfg.seq_len + 1]
            if not fs:
                raise MmzError(f"modality {m}: no file longer than seq_len={cfg.seq_len}")
            sizes = np.array([f.size - cfg.seq_len for f in fs], dtype=np.float64)
            self.files[m], self.probs[m] = fs, sizes / sizes.sum()
        self.rng = np.random.default_rng(seed)

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        """(tokens int64 [B, seq_len + 1] with the prefix at column 0, modality ids int64 [B])."""
        t = self.cfg.seq_len
        toks, mids = [], []
        for m in self.mods:
            mid = self.vocab.modality_id(m)
            start = self.vocab.slices[mid][0]
            for _ in range(self.cfg.seqs_per_modality):
                f = self.files[m][self.rng.choice(len(self.files[m]), p=self.probs[m])]
                off = int(self.rng.integers(0, f.size - t))
                row = np.empty(t + 1, dtype=np.int64)
                row[0] = self.vocab.prefix_base + mid
                row[1:] = f[off:off + t].astype(np.int64) + start
                toks.append(row)
                mids.append(mid)
        return np.stack(toks), np.array(mids, dtype=np.int64)

    def get_state(self) -> dict:
        """RNG state for checkpoints."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`."""
        self.rng.bit_generator.state = state


def val_windows(streams: dict[str, list[Stream]], vocab: VocabLayout, cfg: DataConfig
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fixed validation windows per modality: ``val_windows`` evenly spaced over the concatenated streams."""
    t = cfg.seq_len
    out = {}
    for m in cfg.modalities:
        fs = [s.data for s in streams.get(m, []) if s.data.size > t]
        if not fs:
            continue
        cat = np.concatenate(fs)
        mid = vocab.modality_id(m)
        offs = np.linspace(0, cat.size - t, cfg.val_windows).astype(np.int64)
        rows = np.empty((len(offs), t + 1), dtype=np.int64)
        rows[:, 0] = vocab.prefix_base + mid
        for i, o in enumerate(offs):
            rows[i, 1:] = cat[o:o + t].astype(np.int64) + vocab.slices[mid][0]
        out[m] = (rows, np.full(len(offs), mid, dtype=np.int64))
    return out
