"""Range coder, CDF quantization and lockstep batches through the `mmz._core` binding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmz import _core


def _rows(rng: np.random.Generator, n: int, v: int, skew: float = 3.0) -> np.ndarray:
    p = rng.random((n, v), dtype=np.float32) ** skew
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("v", [2, 256, 4096, 65536])
@pytest.mark.parametrize("precision", [16, 24])
def test_roundtrip_rows(v: int, precision: int) -> None:
    rng = np.random.default_rng(v + precision)
    n = 200 if v <= 4096 else 20
    probs = _rows(rng, n, v)
    syms = rng.integers(0, v, n).astype(np.uint32)
    enc = _core.RangeEncoder(precision=precision)
    enc.encode(syms, probs)
    data = enc.get_compressed()
    out = _core.RangeDecoder(data, precision=precision).decode(probs)
    assert out.dtype == np.uint32
    np.testing.assert_array_equal(out, syms)


def test_logits_freqs_cdf_and_static() -> None:
    rng = np.random.default_rng(1)
    v, n = 100, 500
    logits = rng.normal(0, 3, (n, v)).astype(np.float32)
    syms = rng.integers(0, v, n)
    enc = _core.RangeEncoder()
    enc.encode_logits(syms, logits)
    static = _rows(rng, 1, v)[0]
    enc.encode(syms, static)
    freqs = _core.quantize_probs(static, 20)
    enc.encode_freqs(syms, freqs)
    cdf = np.concatenate([[0], np.cumsum(freqs)]).astype(np.uint32)
    enc.encode_cdf(syms, cdf)
    dec = _core.RangeDecoder(enc.get_compressed())
    np.testing.assert_array_equal(dec.decode_logits(logits), syms)
    np.testing.assert_array_equal(dec.decode(static, n=n), syms)
    np.testing.assert_array_equal(dec.decode_freqs(freqs, n=n), syms)
    np.testing.assert_array_equal(dec.decode_cdf(cdf, n=n), syms)


def test_quantize_invariants_and_determinism() -> None:
    rng = np.random.default_rng(2)
    p = _rows(rng, 8, 1000)
    p[0, :10] = [np.nan, np.inf, -1.0, 0.0, -0.0, 1e-40, 1e30, 0.5, 0.5, 0.0]
    for precision in (12, 16, 24):
        q = _core.quantize_probs(p, precision)
        assert q.shape == p.shape and q.dtype == np.uint32
        assert (q >= 1).all()
        assert (q.sum(axis=1, dtype=np.uint64) == 2**precision).all()
        # Row-by-row equals whole-matrix (independent of batch size).
        for i in range(len(p)):
            np.testing.assert_array_equal(_core.quantize_probs(p[i], precision), q[i])
    # The remainder goes to the first maximum: two equal maxima, ties by lowest index.
    q = _core.quantize_probs(np.array([0.1, 0.3, 0.3], dtype=np.float32), 12)
    assert q[1] > q[2] > q[0]


def test_quantize_logits_matches_softmax() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 4, (4, 500)).astype(np.float32)
    q = _core.quantize_logits(logits, 24).astype(np.float64) / 2**24
    z = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    soft = z / z.sum(axis=1, keepdims=True)
    assert np.abs(q - soft).max() < 1e-4


@pytest.mark.parametrize("v", [16, 300])
def test_batch_1_vs_64(v: int) -> None:
    rng = np.random.default_rng(v)
    b, n = 64, 60
    probs = _rows(rng, n * b, v).reshape(n, b, v)
    syms = rng.integers(0, v, (n, b)).astype(np.uint32)
    big = _core.BatchEncoder(b, precision=24)
    for t in range(n):
        big.encode_step(probs[t], syms[t])
    streams = big.finish()
    assert len(streams) == b
    for i in (0, 17, 63):
        one = _core.BatchEncoder(1, precision=24)
        for t in range(n):
            one.encode_step(probs[t, i : i + 1], syms[t, i : i + 1])
        assert one.finish()[0] == streams[i]
    dec = _core.BatchDecoder(streams, precision=24)
    for t in range(n):
        np.testing.assert_array_equal(dec.decode_step(probs[t]), syms[t])


def test_batch_logits() -> None:
    rng = np.random.default_rng(5)
    b, v, n = 8, 50, 40
    logits = rng.normal(0, 2, (n, b, v)).astype(np.float32)
    syms = rng.integers(0, v, (n, b))
    enc = _core.BatchEncoder(b, 20)
    for t in range(n):
        enc.encode_step_logits(logits[t], syms[t])
    dec = _core.BatchDecoder(enc.finish(), 20)
    for t in range(n):
        np.testing.assert_array_equal(dec.decode_step_logits(logits[t]), syms[t])


def test_size_near_cross_entropy_1m_symbols() -> None:
    rng = np.random.default_rng(7)
    v, n = 256, 1_000_000
    probs = _rows(rng, 1, v, skew=4.0)[0]
    freqs = _core.quantize_probs(probs, 24).astype(np.float64)
    syms = rng.choice(v, size=n, p=probs / probs.sum()).astype(np.uint32)
    enc = _core.RangeEncoder(24)
    enc.encode(syms, probs)
    data = enc.get_compressed()
    ideal_bytes = -np.log2(freqs[syms] / 2**24).sum() / 8
    assert len(data) <= ideal_bytes * 1.005 + 16, (len(data), ideal_bytes)
    np.testing.assert_array_equal(_core.RangeDecoder(data, 24).decode(probs, n=n), syms)


def test_adaptive_roundtrip_and_compresses() -> None:
    rng = np.random.default_rng(8)
    syms = rng.zipf(1.5, 100_000).clip(max=999).astype(np.uint32) - 1
    data = _core.encode_adaptive(syms, 1000)
    assert len(data) < len(syms) * np.log2(1000) / 8 * 0.6
    np.testing.assert_array_equal(_core.decode_adaptive(data, len(syms), 1000), syms)


def test_errors_are_actionable() -> None:
    with pytest.raises(_core.MmzCoreError, match="precision"):
        _core.RangeEncoder(precision=30)
    with pytest.raises(_core.MmzCoreError, match="out of range"):
        _core.RangeEncoder().encode(np.array([5]), np.ones((1, 5), np.float32))
    with pytest.raises(ValueError, match="shape"):
        _core.BatchEncoder(4).encode_step(np.ones((3, 5), np.float32), np.zeros(3))
    with pytest.raises(ValueError, match="n="):
        _core.RangeDecoder(b"").decode(np.ones(5, np.float32))
    with pytest.raises(_core.MmzCoreError, match="exceeds"):
        _core.quantize_probs(np.ones(5000, np.float32), 12)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.integers(2, 70000))
def test_garbage_never_crashes(data: bytes, v: int) -> None:
    v = min(v, 65536)
    probs = np.linspace(1, 0.001, v, dtype=np.float32)
    dec = _core.RangeDecoder(data, 24)
    try:
        out = dec.decode(probs, n=100)
        assert (out < v).all()
    except _core.CorruptDataError:
        pass
    try:
        _core.decode_adaptive(data, 50, v)
    except _core.CorruptDataError:
        pass
