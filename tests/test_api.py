"""Round trips through the Python API: sample corpus, dev corpus sample, bad inputs."""

from __future__ import annotations

import io
import os
import random

import pytest
from conftest import dev_sample_files, sample_files

import mmz


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.name)
def test_sample_roundtrip(path):
    data = path.read_bytes()
    blob = mmz.compress(data, name=str(path))
    assert mmz.decompress(blob) == data


@pytest.mark.parametrize("path", dev_sample_files(), ids=lambda p: p.name)
def test_dev_sample_roundtrip(path):
    data = path.read_bytes()
    for level in (1, 9):
        assert mmz.decompress(mmz.compress(data, level=level, name=str(path))) == data


BAD_INPUTS = {
    "empty": b"",
    "one": b"\x00",
    "one-ff": b"\xff",
    "zeros": bytes(100_000),
    "random": random.Random(1).randbytes(200_000),
    "ff-flood": b"\xff" * 70_000,
    "period-3": b"abc" * 20_000,
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
@pytest.mark.parametrize("codec", ["auto", "order2", "store"])
def test_bad_inputs_roundtrip(name, codec):
    data = BAD_INPUTS[name]
    assert mmz.decompress(mmz.compress(data, codec=codec)) == data


@pytest.mark.parametrize("modality", ["binary", "text", "structured", "gene", "image", "audio"])
def test_wrong_modality_override_still_roundtrips(modality, sample_paths):
    for path in sample_paths[:6]:
        data = path.read_bytes()[:50_000]
        assert mmz.decompress(mmz.compress(data, modality=modality)) == data


def test_small_chunks_and_threads_give_identical_bytes():
    data = random.Random(2).randbytes(50_000) + b"text " * 20_000
    one = mmz.compress(data, chunk_size=8192, threads=1)
    two = mmz.compress(data, chunk_size=8192, threads=2)
    assert one == two
    assert mmz.decompress(one, threads=1) == data
    assert mmz.decompress(one, threads=2) == data


def test_concatenated_frames():
    a, b = b"first frame " * 100, b"second " * 50
    assert mmz.decompress(mmz.compress(a) + mmz.compress(b)) == a + b
    assert mmz.decompress(mmz.compress(b"") + mmz.compress(a)) == a


def test_incremental_objects():
    data = os.urandom(10_000) + b"abc" * 100_000
    c = mmz.MmzCompressor(level=3, chunk_size=65536)
    blob = b"".join(c.compress(data[i:i + 7777]) for i in range(0, len(data), 7777)) + c.flush()
    d = mmz.MmzDecompressor()
    out = b"".join(d.decompress(blob[i:i + 1000]) for i in range(0, len(blob), 1000))
    assert d.eof
    assert out + d.finish() == data


def test_file_object(tmp_path):
    path = tmp_path / "x.mmz"
    data = b"streamed through a file object\n" * 5000
    with mmz.open(path, "wb", level=2) as f:
        for i in range(0, len(data), 1000):
            f.write(data[i:i + 1000])
    with mmz.open(path, "rb") as f:
        assert f.read(10) == data[:10]
        assert f.read() == data[10:]
    with mmz.open(path, "rb") as f:
        assert io.BufferedReader(f).read() == data  # type: ignore[arg-type]


def test_api_errors():
    with pytest.raises(mmz.MmzError):
        mmz.compress(b"x", level=0)
    with pytest.raises(mmz.MmzError):
        mmz.compress(b"x", codec="nope")
    with pytest.raises(mmz.MmzError):
        mmz.compress(b"x", modality="video")
    with pytest.raises(mmz.CorruptDataError):
        mmz.decompress(b"")
    with pytest.raises(mmz.CorruptDataError):
        mmz.decompress(b"not an mmz frame at all")
    with pytest.raises(mmz.CorruptDataError):
        mmz.decompress(mmz.compress(b"x") + b"junk")


def test_unknown_version_refused():
    blob = bytearray(mmz.compress(b"version test"))
    blob[4] = 7
    with pytest.raises(mmz.MmzError, match="version 7"):
        mmz.decompress(bytes(blob))
