"""Damage detection: every single-bit flip and every truncation of a small frame is caught."""

from __future__ import annotations

import io

import pytest

import mmz

DATA = b"The quick brown fox jumps over the lazy dog. 0123456789\n" * 12


@pytest.fixture(scope="module")
def blob() -> bytes:
    # several chunks so flips land in chunk headers, payloads and the trailer; CM (``auto`` would
    # give this small text to the network: its frames are covered by test_neural_frame_bit_flips)
    return mmz.compress(DATA, chunk_size=200, threads=1, codec="cm")


def _assert_flips_detected(blob: bytes, step: int = 1) -> None:
    """Every ``step``-th single-bit flip of ``blob`` makes decoding raise."""
    for i in range(0, len(blob) * 8, step):
        bad = bytearray(blob)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(mmz.MmzError):
            out = mmz.decompress(bytes(bad), threads=1)
            # a flip that still decodes must not yield wrong bytes (it never should decode at all)
            assert out == DATA
            raise AssertionError(f"bit flip {i} went undetected")


def test_neural_frame_bit_flips_detected():
    """The default codec on this text is the network (model id in the header, every chunk
    neural): every 29th bit flip (all bit positions, header to trailer; each decode runs the
    network) is caught."""
    from mmz import codec
    from mmz.frame import scan

    if not codec.auto_neural_limit(5, "text"):
        pytest.skip("no usable neural model in this build or on this CPU")
    blob = mmz.compress(DATA, chunk_size=200, threads=1)
    [info] = list(scan(io.BytesIO(blob)))
    assert mmz.frame_info(blob)["codec"] == "neural" and info["codecs"] == ["neural"] and info["chunks"] == 4
    _assert_flips_detected(blob, 29)


def test_every_bit_flip_detected(blob):
    _assert_flips_detected(blob)


def test_every_truncation_detected(blob):
    for n in range(len(blob)):
        with pytest.raises(mmz.CorruptDataError):
            mmz.decompress(blob[:n], threads=1)


def test_error_names_the_chunk(blob):
    bad = bytearray(blob)
    bad[84 + 64 + 5] ^= 0x10  # inside chunk 0's payload
    with pytest.raises(mmz.CorruptDataError, match=r"frame 0, chunk 0"):
        mmz.decompress(bytes(bad))
