"""Modality detection: content first, name second, never raises; confusion table over the dev corpus."""

from __future__ import annotations

import csv
import io
import struct
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import DEV, SAMPLE
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mmz.modality import MODALITIES, detect

# MANIFEST.tsv modality -> detector modality
_EXPECT = {"speech": "audio", "music": "audio", "medical": "image"}


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8), "RGB").save(buf, "PNG")
    return buf.getvalue()


def _wav(bits: int = 16) -> bytes:
    pcm = bytes(100 * bits // 8)
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 8000 * bits // 8, bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _bmp() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8), "RGB").save(buf, "BMP")
    return buf.getvalue()


def _tiff() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8), "L").save(buf, "TIFF")
    return buf.getvalue()


PROSE = (b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the age "
         b"of foolishness.\n\nThe second paragraph continues the story with ordinary words.\n") * 20
CSV = b"id,name,value\n" + b"".join(b"%d,item%d,%d.5\n" % (i, i, i * 3) for i in range(50))
TSV = b"a\tb\tc\n" + b"1\t2\t3\n" * 30
SQL = (b"BEGIN TRANSACTION;\nCREATE TABLE t (a INTEGER, b TEXT);\n"
       + b"".join(b"INSERT INTO t VALUES(%d,'x');\n" % i for i in range(30)) + b"COMMIT;\n")
JSON = b'{\n  "name": "mmz",\n  "values": [1, 2, 3],\n  "nested": {"a": true}\n}\n'
CODE = b"".join(b"def f%d(x):\n    return x + %d\n\n" % (i, i) for i in range(20)) + b"import os\n"
FASTA = b">seq1 some description\n" + b"ACGTACGTTAGCNNACGT" * 4 + b"\n" + b"GATTACA" * 8 + b"\n"
FASTQ = b"".join(b"@r%d\nACGTNACGTA\n+\nIIIIHHHH##\n" % i for i in range(10))
SPACE_TABLE = b"".join(b"%.6f %.3f\n" % (i * 0.001 - 0.5, i * 0.01) for i in range(40))

CASES = [
    (_png(), "image"), (_bmp(), "image"), (_tiff(), "image"),
    (b"P6\n4 4\n255\n" + bytes(48), "image"), (b"P5 2 2 65535\n" + bytes(8), "image"),
    (bytes(128) + b"DICM" + bytes(64), "image"),
    (_wav(8), "audio"), (_wav(16), "audio"), (_wav(24), "audio"),
    (b"FORM\x00\x00\x01\x00AIFFCOMM" + bytes(40), "audio"),
    (PROSE, "text"), (CSV, "structured"), (TSV, "structured"), (SQL, "structured"), (JSON, "structured"),
    (CODE, "structured"), (SPACE_TABLE, "structured"), (FASTA, "gene"), (FASTQ, "gene"),
    (b"\x1f\x8b\x08\x00" + bytes(100), "binary"), (b"\x7fELF" + bytes(100), "binary"),
    (b"\xff\xd8\xff\xe0" + bytes(100), "binary"), (bytes(range(256)) * 10, "binary"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "binary"),
]


@pytest.mark.parametrize(("data", "expected"), CASES, ids=[f"{e}-{i}" for i, (_, e) in enumerate(CASES)])
def test_content(data: bytes, expected: str) -> None:
    assert detect(data) == expected
    assert detect(data, None) == expected


@pytest.mark.parametrize(("data", "expected", "name"), [
    (_png(), "image", "notes.txt"),
    (_wav(), "audio", "table.csv"),
    (PROSE, "text", "picture.png"),
    (CSV, "structured", "story.txt"),
    (FASTQ, "gene", "reads.csv"),
    (bytes(range(256)) * 4, "binary", "x.fasta"),
    (SQL, "structured", "song.wav"),
])
def test_content_beats_misleading_name(data: bytes, expected: str, name: str) -> None:
    assert detect(data, name) == expected


def test_name_breaks_ties() -> None:
    assert detect(b"", "x.png") == "image"
    assert detect(b"", "dir/READS.FASTQ") == "gene"
    assert detect(b"", None) == "binary"
    assert detect(b"", "noext") == "binary"
    # short, word-poor text: the name decides between text and structured/gene
    assert detect(b"1 2\n", "t.csv") == "structured"
    assert detect(b"1 2\n", "t.txt") == "text"


@given(st.binary(max_size=2000), st.one_of(st.none(), st.text(max_size=30)))
@settings(max_examples=300, deadline=None)
def test_never_raises(data: bytes, name: str | None) -> None:
    assert detect(data, name) in MODALITIES


def test_bad_arguments_do_not_raise() -> None:
    assert detect(bytearray(b"hello world\n")) == "text"
    assert detect(memoryview(_png())) == "image"
    assert detect(b"x", 123) in MODALITIES  # type: ignore[arg-type]


def test_fast_on_64k() -> None:
    heads = [PROSE * 40, CSV * 50, FASTQ * 300, bytes(range(256)) * 256]
    for head in heads:
        head = head[:65536]
        detect(head)
        t0 = time.perf_counter()
        for _ in range(20):
            detect(head)
        # generous bound (shared CI machine); bench numbers are ~0.5 ms
        assert (time.perf_counter() - t0) / 20 < 0.02


def _manifest_rows(root: Path) -> list[tuple[str, Path]]:
    """(expected modality, path) for every file in ``root/MANIFEST.tsv`` (paths relative to root)."""
    manifest = root / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as f:
        return [(_EXPECT.get(r["modality"], r["modality"]), root / r["path"])
                for r in csv.DictReader(f, delimiter="\t")]


def _confusion(rows: list[tuple[str, Path]], use_name: bool) -> tuple[Counter, list[str]]:
    table: Counter = Counter()
    wrong = []
    for expected, path in rows:
        with path.open("rb") as f:
            got = detect(f.read(65536), path.name if use_name else None)
        table[expected, got] += 1
        if got != expected:
            wrong.append(f"{path}: expected {expected}, got {got}")
    return table, wrong


def _print_table(title: str, table: Counter) -> None:
    print(f"\n{title} (rows: expected, columns: detected)")
    print(f"{'':>11}" + "".join(f"{m:>11}" for m in MODALITIES))
    for e in MODALITIES:
        if any(table[e, g] for g in MODALITIES):
            print(f"{e:>11}" + "".join(f"{table[e, g]:>11}" for g in MODALITIES))


def test_detection_report_dev_corpus() -> None:
    """Confusion table over the dev corpus (``pytest -s`` prints it); 100 % with and without names."""
    rows = _manifest_rows(DEV.parent)
    if not rows:
        pytest.skip(f"dev corpus not found at {DEV}")
    for use_name in (True, False):
        table, wrong = _confusion(rows, use_name)
        _print_table(f"dev corpus, {len(rows)} files, {'with' if use_name else 'without'} names", table)
        assert not wrong, "\n".join(wrong)


def test_detection_sample_corpus() -> None:
    rows = [(_EXPECT.get(p.parent.name, p.parent.name), p)
            for p in sorted(SAMPLE.rglob("*")) if p.is_file() and p.name != "MANIFEST.tsv"]
    assert rows
    table, wrong = _confusion(rows, True)
    _print_table(f"data/sample, {len(rows)} files", table)
    assert not wrong, "\n".join(wrong)
