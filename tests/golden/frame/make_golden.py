"""Writes the golden frames in this folder (run once per released format; never rewrite old ones).

    .venv/bin/python tests/golden/frame/make_golden.py

Each ``NAME.mmz`` decodes to ``NAME.raw``; tests/test_compact.py checks that every build still
decodes every committed frame.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import mmz

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parents[2] / "data" / "sample"


def _png() -> bytes:
    from PIL import Image

    r = random.Random(3)
    im = Image.new("RGB", (16, 12))
    im.putdata([(x * 13 % 256, y * 20 % 256, (x * y + r.randrange(8)) % 256) for y in range(12) for x in range(16)])
    b = io.BytesIO()
    im.save(b, "PNG")
    return b.getvalue()


def main() -> None:
    text = (SAMPLE / "text" / "debian_handbook_en.txt").read_bytes()
    cases = {
        "compact_empty": (b"", {}),
        "compact_text": (text[:2000], {}),
        "compact_audio": ((SAMPLE / "music" / "hydrogen_Millo_MultiLayered3__bd_01.wav").read_bytes(), {}),
        "compact_png": (_png(), {}),
        "v1_text": (text[:5000], {"chunk_size": 2000}),
    }
    for name, (raw, kw) in cases.items():
        blob = mmz.compress(raw, **kw)
        (HERE / f"{name}.raw").write_bytes(raw)
        (HERE / f"{name}.mmz").write_bytes(blob)
        print(name, len(raw), len(blob), mmz.frame_info(blob)["version"])


if __name__ == "__main__":
    main()
