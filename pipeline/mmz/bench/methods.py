"""Benchmark methods: the classical tools (named as in baselines.tsv) and mmz presets/codecs."""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass, field

from mmz.bench.inputs import BenchFile


@dataclass(frozen=True)
class ToolMethod:
    """A classical tool run as a process: ``{i}`` and ``{o}`` are substituted with file paths."""

    name: str
    binary: str
    compress: tuple[str, ...]
    decompress: tuple[str, ...]
    view: str = "general"  # general (PPM/WAV/file) | png | wav
    modalities: tuple[str, ...] = ()  # empty = every modality
    in_suffix: str = ".bin"
    out_suffix: str = ".cmp"
    dec_suffix: str = ".dec"
    verify: str = "bytes"  # bytes | pixels | pcm
    eight_bit_only: bool = False

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def version(self) -> str:
        for flag in ("--version", "-V", "-h"):
            try:
                r = subprocess.run([self.binary, flag], capture_output=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                continue
            text = (r.stdout or r.stderr).decode(errors="replace").strip().splitlines()
            if text:
                return text[0][:120]
        return "unknown"

    def applies(self, f: BenchFile) -> bool:
        if self.modalities and f.modality not in self.modalities:
            return False
        if self.view == "png" and (not f.image or not f.data.startswith(b"\x89PNG")):
            return False
        if self.eight_bit_only and f.image and f.image[3] != 1:
            return False
        if self.view == "wav" and f.pcm_bytes is None:
            return False
        return True

    def input_bytes(self, f: BenchFile) -> bytes:
        return f.general_view if self.view == "general" else f.data


def _shell(*args: str) -> tuple[str, ...]:
    """A command with stdout redirected, run by ``sh`` that then *becomes* the tool (``exec``),
    so the timed process and its peak RSS are the tool's own, not a waiting shell's."""
    return ("sh", "-c", "exec " + " ".join(args))


TOOLS: tuple[ToolMethod, ...] = (
    ToolMethod("gzip-9", "gzip", _shell("gzip -9 -c {i} > {o}"), _shell("gzip -d -c {o} > {d}")),
    ToolMethod("bzip2-9", "bzip2", _shell("bzip2 -9 -c {i} > {o}"), _shell("bzip2 -d -c {o} > {d}")),
    ToolMethod("xz-9e", "xz", _shell("xz -9e -T1 -c {i} > {o}"), _shell("xz -d -c {o} > {d}")),
    ToolMethod("zstd-19", "zstd", _shell("zstd -19 -T1 -q -c {i} > {o}"), _shell("zstd -d -q -c {o} > {d}")),
    ToolMethod("zstd-22-long27", "zstd", _shell("zstd --ultra -22 --long=27 -T1 -q -c {i} > {o}"),
               _shell("zstd -d --long=27 -q -c {o} > {d}")),
    ToolMethod("brotli-11", "brotli", _shell("brotli -q 11 -c {i} > {o}"), _shell("brotli -d -c {o} > {d}")),
    ToolMethod("flac-8", "flac", ("flac", "-8", "--no-padding", "-s", "-f", "-o", "{o}", "{i}"),
               ("flac", "-d", "-s", "-f", "-o", "{d}", "{o}"), view="wav", modalities=("audio",),
               in_suffix=".wav", out_suffix=".flac", dec_suffix=".wav", verify="pcm"),
    ToolMethod("jxl-d0-e9", "cjxl", ("cjxl", "{i}", "{o}", "-d", "0", "-e", "9", "--quiet"),
               ("djxl", "{o}", "{d}", "--quiet"), view="png", modalities=("image",),
               in_suffix=".png", out_suffix=".jxl", dec_suffix=".png", verify="pixels"),
    ToolMethod("webp-lossless-z9", "cwebp", ("cwebp", "-lossless", "-z", "9", "-quiet", "{i}", "-o", "{o}"),
               ("dwebp", "{o}", "-quiet", "-o", "{d}"), view="png", modalities=("image",),
               in_suffix=".png", out_suffix=".webp", dec_suffix=".png", verify="pixels", eight_bit_only=True),
    ToolMethod("png-optipng-o2", "optipng", ("optipng", "-o2", "-quiet", "-out", "{o}", "{i}"),
               ("cp", "{o}", "{d}"), view="png", modalities=("image",),
               in_suffix=".png", out_suffix=".opt.png", dec_suffix=".png", verify="pixels"),
)


@dataclass(frozen=True)
class MmzMethod:
    """An mmz preset or codec, timed in-process in a dedicated worker process."""

    name: str
    level: int
    codec: str = "auto"
    options: dict[str, str] = field(default_factory=dict)

    def available(self) -> bool:
        if self.codec in ("auto", "store"):
            return True
        from mmz import _core

        if self.codec == "neural":
            try:
                from mmz import neural  # type: ignore[attr-defined]

                return bool(neural.available())
            except ImportError:
                return False
        return bool(_core.codec_available(self.codec))


MMZ: tuple[MmzMethod, ...] = (
    MmzMethod("mmz-fast", 2),
    MmzMethod("mmz-default", 5),
    MmzMethod("mmz-max", 9),
    MmzMethod("mmz-cm", 5, "cm"),
    MmzMethod("mmz-order2", 5, "order2"),
    MmzMethod("mmz-neural", 5, "neural"),
)


def pcm_of(wav: bytes) -> bytes:
    """The data chunk of a WAV file (for FLAC round-trip checks)."""
    pos = 12
    while pos + 8 <= len(wav):
        cid, size = wav[pos:pos + 4], int.from_bytes(wav[pos + 4:pos + 8], "little")
        if cid == b"data":
            return wav[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    return b""


def same_pixels(a: bytes, b: bytes) -> bool:
    """True when two image files decode to the same samples (gray vs RGB replicas allowed)."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(a)) as ia, Image.open(io.BytesIO(b)) as ib:
        x = np.asarray(ia.convert("RGBA") if ia.mode == "P" else ia)
        y = np.asarray(ib.convert("RGBA") if ib.mode == "P" else ib)
    if x.ndim == 2:
        x = x[..., None]
    if y.ndim == 2:
        y = y[..., None]
    if x.shape[:2] != y.shape[:2]:
        return False
    if x.shape[2] != y.shape[2]:
        # cwebp/djxl may add channels: compare the common ones and require replicas/opaque alpha
        c = min(x.shape[2], y.shape[2])
        wide = x if x.shape[2] > y.shape[2] else y
        narrow = y if wide is x else x
        if c == 1:
            return bool(all((wide[..., k] == narrow[..., 0]).all() for k in range(min(3, wide.shape[2]))))
        return bool((wide[..., :c] == narrow[..., :c]).all())
    return bool((x.astype(np.int64) == y.astype(np.int64)).all())
