"""Tests of the context-mixing engine (codec ``cm``, rust/core/src/ctxmix)."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys

import pytest
from conftest import sample_files

import mmz
from mmz import _core
from mmz.transform import describe, forward


def _roundtrip(data: bytes, level: int = 5, hint: bytes | None = None) -> int:
    hint = hint if hint is not None else _core.make_hint("binary", None)
    rec = _core.encode_chunk(data, "cm", level, hint)
    header, payload = rec[:64], rec[64:]
    assert _core.parse_chunk_header(header)["codec"] in ("cm", "store")
    assert _core.decode_chunk(header, payload) == data
    return len(payload)


def _media_hint(modality: str, regions, start: int = 0, end: int | None = None) -> bytes:
    if not regions:
        return _core.make_hint(modality, None)
    r = regions[0]
    lo, hi = r.offset, r.offset + r.length
    if end is not None:
        unit = r.channels * r.bytes_per_sample
        hi = min(hi, end)
        hi = lo + (hi - lo) // unit * unit
    return _core.make_hint(modality, (r.channels, r.bytes_per_sample, r.big_endian, r.signed, r.width,
                                      lo - start, hi - start, 0))


def test_cm_available():
    assert _core.codec_available("cm")


@pytest.mark.parametrize("n", [0, 1, 2, 7, 100, 4096, 50_000])
def test_random_bytes(n):
    data = random.Random(n).randbytes(n)
    size = _roundtrip(data)
    # incompressible data must not expand beyond the store fallback
    assert size <= max(n, 1) + 16


@pytest.mark.parametrize("level", range(1, 10))
def test_every_level(level):
    rng = random.Random(level)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"\n", b"epsilon", b"42", b"; "]
    data = b" ".join(rng.choice(words) for _ in range(6000))
    size = _roundtrip(data, level)
    assert size < len(data) // 4


@pytest.mark.parametrize("data", [
    b"\x00" * 200_000,
    b"\xff" * 100_000,
    b"a" * 70_000 + b"b" * 70_000,
    bytes(range(256)) * 300,
    b"\x00\xff" * 40_000,
], ids=["zeros", "ff", "runs", "ramp", "alt"])
def test_adversarial_floods(data):
    size = _roundtrip(data)
    assert size < len(data) // 50


@pytest.mark.parametrize("period", [1, 2, 3, 5, 8, 13, 31, 64])
def test_periodic(period):
    unit = random.Random(period).randbytes(period)
    data = unit * (60_000 // period)
    assert _roundtrip(data) < len(data) // 20


def _records(n: int, count: int, seed: int) -> bytes:
    """A table of ``count`` ``n``-byte records: a 4-byte growing offset, a type byte, zeros and a
    few random fields (the shape of an ELF symbol table)."""
    rng = random.Random(seed)
    out = bytearray()
    off = 0
    for _ in range(count):
        off += rng.randrange(4, 40)
        rec = bytearray(off.to_bytes(4, "little") + bytes([0x12, 0, rng.randrange(1, 30), 0]))
        rec += (rng.randrange(1 << 20) if rng.random() < 0.3 else 0).to_bytes(8, "little")
        out += rec + bytes(n - len(rec))
    return bytes(out)


@pytest.mark.parametrize("level", [1, 5, 9])
def test_record_contexts_pay_on_tables(level):
    """Payload v5 (record contexts) codes a table of 24-byte records well below v4, and a table
    whose record length changes midway too; both decode."""
    hint = _core.make_hint("binary", None)
    for data in (_records(24, 700, level), _records(24, 400, 1) + _records(40, 300, 2)):
        sizes = {}
        for version in (4, 5):
            rec = _core.encode_cm_chunk(data, level, hint, version)
            assert _core.decode_chunk(rec[:64], rec[64:]) == data
            sizes[version] = len(rec)
        assert sizes[5] < 0.92 * sizes[4], sizes
    assert _core.encode_chunk(data, "cm", level, hint) == _core.encode_cm_chunk(data, level, hint, 5)


def test_compresses_text_better_than_order2():
    data = (sample_files()[0].parent.parent / "text" / "debian_handbook_en.txt").read_bytes()[:200_000]
    cm = _roundtrip(data, 5, _core.make_hint("text", None))
    o2 = len(_core.encode_chunk(data, "order2", 5, _core.make_hint("text", None))) - 64
    assert cm < 0.75 * o2


def test_determinism():
    data = random.Random(3).randbytes(5000) + b"the quick brown fox " * 3000
    h = _core.make_hint("text", None)
    assert _core.encode_chunk(data, "cm", 5, h) == _core.encode_chunk(data, "cm", 5, h)
    one = mmz.compress(data, 5, codec="cm", threads=1, chunk_size=16_384)
    two = mmz.compress(data, 5, codec="cm", threads=2, chunk_size=16_384)
    assert one == two
    assert mmz.decompress(two) == data


_CHILD = """
import hashlib, sys
import mmz
data = sys.stdin.buffer.read()
for level in (1, 5, 9):
    print(level, hashlib.sha256(mmz.compress(data, level, codec="cm", threads=int(sys.argv[1]),
                                              chunk_size=16_384)).hexdigest())
"""


def test_determinism_across_processes():
    """Two fresh interpreters (1 and 2 threads) write the same CM bytes as this process, at every preset."""
    data = random.Random(3).randbytes(5000) + b"the quick brown fox " * 3000 + bytes(range(256)) * 40
    here = "".join(
        f"{lv} {hashlib.sha256(mmz.compress(data, lv, codec='cm', threads=1, chunk_size=16_384)).hexdigest()}\n"
        for lv in (1, 5, 9))
    for threads in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", _CHILD, threads], input=data, capture_output=True,
                             timeout=300, check=True).stdout.decode()
        assert out == here, f"process with {threads} thread(s) wrote different bytes"


def test_corrupt_payload_never_panics():
    data = b"some text to compress " * 500
    rec = bytearray(_core.encode_chunk(data, "cm", 5, _core.make_hint("text", None)))
    for i in range(64, len(rec), max(1, (len(rec) - 64) // 20)):
        bad = bytearray(rec)
        bad[i] ^= 0x5A
        with pytest.raises((_core.CorruptDataError, _core.MmzCoreError)):  # never a crash
            _core.decode_chunk(bytes(bad[:64]), bytes(bad[64:]))


def _sample_cases():
    out = []
    for p in sample_files():
        mod = p.parent.name
        out.append(pytest.param(p, id=f"{mod}/{p.name}"))
    return out


def _hinted(path):
    mod = path.parent.name
    data = path.read_bytes()
    if mod in ("image", "medical"):
        t = forward(data, "image")
        assert t.transform == 1 and t.regions, "PNG sample should become raw pixels"
        return t.stream, _media_hint("image", t.regions)
    if mod in ("speech", "music"):
        regions = describe(data[:65536], "audio")
        assert regions
        return data, _media_hint("audio", regions, 0, len(data))
    return data, _core.make_hint("text" if mod == "text" else "structured" if mod == "structured" else "gene", None)


@pytest.mark.parametrize("path", _sample_cases())
def test_sample_files(path):
    stream, hint = _hinted(path)
    stream = stream[:300_000] if path.parent.name in ("text", "structured") else stream
    if path.parent.name in ("text", "structured"):
        hint = _core.make_hint(path.parent.name, None)
    size = _roundtrip(stream, 5, hint)
    assert size < len(stream)


def test_media_chunk_cut_mid_image():
    path = next(p for p in sample_files() if p.parent.name == "image")
    t = forward(path.read_bytes(), "image")
    r = t.regions[0]
    start = r.offset + 1000 * r.channels * r.bytes_per_sample + r.bytes_per_sample  # mid-pixel phase
    piece = t.stream[start:start + 60_000]
    unit = r.bytes_per_sample
    first = (start - r.offset) // unit
    hint = _core.make_hint("image", (r.channels, r.bytes_per_sample, r.big_endian, r.signed, r.width,
                                     0, len(piece) // unit * unit, first))
    _roundtrip(piece, 5, hint)


def test_hinted_media_beats_unhinted():
    path = next(p for p in sample_files() if p.parent.name == "speech")
    data = path.read_bytes()
    hinted = _roundtrip(data, 5, _media_hint("audio", describe(data[:65536], "audio"), 0, len(data)))
    plain = _roundtrip(data, 5, _core.make_hint("binary", None))
    assert hinted < plain


@pytest.mark.slow
@pytest.mark.parametrize("level", [1, 5, 9])
@pytest.mark.parametrize("path", _sample_cases())
def test_sample_files_full_all_levels(path, level):
    stream, hint = _hinted(path)
    _roundtrip(stream, level, hint)
