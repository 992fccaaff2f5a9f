"""Benchmark inputs: which files, which group, which denominator, which view each tool gets.

Rules (as ../shared/corpus/baselines.tsv): bits/byte = 8 x compressed / raw bytes, where raw
bytes are the pixel bytes (width x height x channels x bytes per sample) of an image and the PCM
bytes of an audio file's data chunk, and file bytes otherwise. General-purpose tools see images
as PPM/PGM and audio as WAV; PNG/WebP/JPEG-XL tools see the PNG, FLAC sees the WAV, mmz sees
the original file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mmz.codec import detect_modality

SKIP_SUFFIXES = {".tsv", ".md", ".mmz"}


@dataclass
class BenchFile:
    """One input file and its derived views."""

    path: Path
    group: str

    @cached_property
    def data(self) -> bytes:
        return self.path.read_bytes()

    @cached_property
    def modality(self) -> str:
        return detect_modality(self.data[:65536], self.path.name)

    @cached_property
    def image(self) -> tuple[int, int, int, int] | None:
        """(width, height, channels, bytes per sample) for a decodable image."""
        if self.modality != "image":
            return None
        try:
            from PIL import Image

            with Image.open(io.BytesIO(self.data)) as im:
                mode_info = {"1": (1, 1), "L": (1, 1), "P": (1, 1), "RGB": (3, 1), "RGBA": (4, 1),
                             "LA": (2, 1), "I;16": (1, 2), "I;16B": (1, 2), "I": (1, 2)}
                if im.mode not in mode_info:
                    return None
                channels, bps = mode_info[im.mode]
                return im.width, im.height, channels, bps
        except Exception:  # noqa: BLE001 - anything Pillow cannot open is benchmarked as a file
            return None

    @cached_property
    def pcm_bytes(self) -> int | None:
        """Bytes of the WAV data chunk (clipped to the file)."""
        if self.modality != "audio":
            return None
        d = self.data
        if d[:4] != b"RIFF" or d[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= len(d):
            cid, size = d[pos:pos + 4], int.from_bytes(d[pos + 4:pos + 8], "little")
            if cid == b"data":
                return min(size, len(d) - pos - 8)
            pos += 8 + size + (size & 1)
        return None

    @property
    def raw_bytes(self) -> int:
        """The bits/byte denominator."""
        if self.image:
            w, h, c, b = self.image
            return w * h * c * b
        if self.pcm_bytes is not None:
            return self.pcm_bytes
        return len(self.data)

    @cached_property
    def general_view(self) -> bytes:
        """What general-purpose tools compress: PPM/PGM for images, the file otherwise."""
        if not self.image:
            return self.data
        from PIL import Image

        with Image.open(io.BytesIO(self.data)) as im:
            w, h, c, b = self.image
            if b == 2:
                import numpy as np

                arr = np.asarray(im, dtype=np.uint16).astype(">u2")
                return f"P5\n{w} {h}\n65535\n".encode() + arr.tobytes()
            out = io.BytesIO()
            im2 = im.convert("RGB" if c >= 3 else "L") if im.mode not in ("RGB", "L") else im
            im2.save(out, format="PPM")
            return out.getvalue()


def discover(paths: list[str], group_by: str = "modality") -> list[BenchFile]:
    """Regular files under ``paths`` (sorted), grouped by detected modality or top-level folder."""
    out: list[BenchFile] = []
    for root in map(Path, paths):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            if f.suffix in SKIP_SUFFIXES or f.name.startswith("."):
                continue
            bf = BenchFile(f, "")
            if group_by == "folder" and root.is_dir():
                rel = f.relative_to(root)
                bf.group = rel.parts[0] if len(rel.parts) > 1 else root.name
            else:
                bf.group = bf.modality
            out.append(bf)
    return out


def subsample(files: list[BenchFile], per_group: int | None, max_bytes: int | None) -> list[BenchFile]:
    """Deterministic subset: per group, files in a fixed stride over the size-sorted list, under a byte cap."""
    if not per_group and not max_bytes:
        return files
    groups: dict[str, list[BenchFile]] = {}
    for f in files:
        groups.setdefault(f.group, []).append(f)
    chosen: list[BenchFile] = []
    for g in sorted(groups):
        fs = sorted(groups[g], key=lambda f: (f.path.stat().st_size, str(f.path)))
        if per_group and len(fs) > per_group:
            step = len(fs) / per_group
            fs = [fs[int(i * step + step / 2)] for i in range(per_group)]
        total = 0
        for f in fs:
            size = f.path.stat().st_size
            if max_bytes and total + size > max_bytes and total > 0:
                continue
            total += size
            chosen.append(f)
    return chosen
