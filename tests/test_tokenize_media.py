"""Image and audio tokenizers: exact for the original file, layouts as documented."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import DEV, SAMPLE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmz.errors import CorruptDataError
from mmz.tokenize.audio import AUDIO_BYTE_BASE, AudioTokenizer
from mmz.tokenize.image import IMAGE_BYTE_BASE, ImageTokenizer, patch_order

TOKENIZERS = [ImageTokenizer("patch"), ImageTokenizer("raster"), AudioTokenizer("split"), AudioTokenizer("planes")]


def _rt(tok: ImageTokenizer | AudioTokenizer, data: bytes) -> np.ndarray:
    tokens, header = tok.encode(data)
    assert tokens.dtype == np.int32
    assert tok.decode(tokens, header) == data
    return tokens


def test_patch_order_crops_edges() -> None:
    order = patch_order(3, 5, 2)
    assert sorted(order.tolist()) == list(range(15))
    assert order.tolist()[:4] == [0, 1, 5, 6]  # first 2x2 patch
    assert order.tolist()[4:8] == [2, 3, 7, 8]
    assert order.tolist()[8:10] == [4, 9]  # right edge patch is 1 pixel wide, not padded


def test_image_tokens_layout() -> None:
    a = np.arange(20 * 18 * 3, dtype=np.uint32).reshape(18, 20, 3) % 256
    buf = io.BytesIO()
    Image.fromarray(a.astype(np.uint8), "RGB").save(buf, "PNG")
    data = buf.getvalue()
    patch = _rt(ImageTokenizer("patch"), data) - IMAGE_BYTE_BASE
    raster = _rt(ImageTokenizer("raster"), data) - IMAGE_BYTE_BASE
    assert raster.tolist() == a.ravel().tolist()
    assert patch[:48].tolist() == a[0, :16].ravel().tolist()  # row 0 of patch (0, 0)
    assert patch[48:96].tolist() == a[1, :16].ravel().tolist()
    assert patch[16 * 48:16 * 48 + 12].tolist() == a[0, 16:20].ravel().tolist()  # edge patch: 4 wide


def test_sixteen_bit_is_high_then_low() -> None:
    v = np.array([[0x1234, 0xABCD]], dtype=np.uint16)
    buf = io.BytesIO()
    Image.frombytes("I;16", (2, 1), v.astype("<u2").tobytes()).save(buf, "PNG")
    tokens = _rt(ImageTokenizer(), buf.getvalue()) - IMAGE_BYTE_BASE
    assert tokens.tolist() == [0x12, 0x34, 0xAB, 0xCD]


def _wav(samples: np.ndarray, channels: int) -> bytes:
    pcm = samples.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, 8000, 8000 * 2 * channels, 2 * channels, 16)
    extra = b"LIST\x04\x00\x00\x00INFO"
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm + extra
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_audio_layouts() -> None:
    s = np.array([0x0102, -2, 0x7F00, 5], dtype=np.int16)
    data = _wav(s, 2)
    split = _rt(AudioTokenizer("split"), data) - AUDIO_BYTE_BASE
    planes = _rt(AudioTokenizer("planes"), data) - AUDIO_BYTE_BASE
    assert split.tolist() == [0x01, 0x02, 0xFF, 0xFE, 0x7F, 0x00, 0x00, 0x05]
    assert planes.tolist() == [0x01, 0xFF, 0x7F, 0x00, 0x02, 0xFE, 0x00, 0x05]


@pytest.mark.parametrize("tok", TOKENIZERS, ids=lambda t: f"{t.modality}-{t.layout}")
def test_sample_corpus_and_garbage(tok: ImageTokenizer | AudioTokenizer) -> None:
    files = sorted(p for p in SAMPLE.rglob("*") if p.suffix in (".png", ".wav"))
    assert files
    for p in files:
        tokens = _rt(tok, p.read_bytes())
        assert len(tokens) > 0
    rng = np.random.default_rng(3)
    png = next(SAMPLE.rglob("*.png")).read_bytes()
    for data in (b"", b"\x00", rng.integers(0, 256, 999, dtype=np.uint8).tobytes(), png[:500], png[:-3]):
        _rt(tok, data)


@pytest.mark.parametrize("tok", TOKENIZERS, ids=lambda t: f"{t.modality}-{t.layout}")
def test_decode_rejects_bad_input(tok: ImageTokenizer | AudioTokenizer) -> None:
    data = next(SAMPLE.rglob("*.wav" if tok.modality == "audio" else "*.png")).read_bytes()
    tokens, header = tok.encode(data)
    with pytest.raises(CorruptDataError):
        tok.decode(tokens[:-7], header)
    with pytest.raises(CorruptDataError):
        tok.decode(tokens, header[:3])
    with pytest.raises(CorruptDataError):
        tok.decode(tokens + 100000, header)
    with pytest.raises(CorruptDataError):
        tok.decode(tokens, header[:len(header) // 2])


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(1, 70), st.integers(1, 40), st.sampled_from(["L", "RGB", "RGBA", "I;16"]),
       st.sampled_from(["PNG", "BMP", "PPM"]), st.integers(0, 9))
def test_image_roundtrip_random(w: int, h: int, mode: str, fmt: str, level: int) -> None:
    rng = np.random.default_rng(w * 1000 + h)
    if mode == "I;16":
        im = Image.frombytes("I;16", (w, h), rng.integers(0, 65536, w * h, dtype=np.uint16).astype("<u2").tobytes())
        fmt = "PNG" if fmt == "BMP" else fmt
    else:
        ch = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
        im = Image.fromarray(rng.integers(0, 256, (h, w, ch), dtype=np.uint8).squeeze(-1) if ch == 1 else
                             rng.integers(0, 256, (h, w, ch), dtype=np.uint8), mode)
        if fmt == "PPM" and mode == "RGBA":
            im = im.convert("RGB")
    buf = io.BytesIO()
    im.save(buf, fmt, **({"compress_level": level} if fmt == "PNG" else {}))
    data = buf.getvalue()
    tokens = _rt(ImageTokenizer(), data)
    n_samples = w * h * len(im.getbands()) * (2 if mode == "I;16" else 1)
    # Pillow's level-0 PNGs stay on the identity path; 8-bit BMPs are paletted (not described).
    if not (fmt == "PNG" and level == 0) and not (fmt == "BMP" and mode == "L"):
        assert len(tokens) == n_samples  # all samples are tokens, nothing else is


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["image", "medical", "speech", "music"])
def test_dev_corpus_tokenizers(modality: str) -> None:
    folder: Path = DEV / modality
    if not folder.is_dir():
        pytest.skip("dev corpus not available")
    toks = [ImageTokenizer()] if modality in ("image", "medical") else [AudioTokenizer("split"),
                                                                          AudioTokenizer("planes")]
    for p in sorted(folder.iterdir()):
        data = p.read_bytes()
        for tok in toks:
            _rt(tok, data)


def test_media_tokenizers_follow_the_protocol_and_vocabulary():
    from mmz.tokenize import get_tokenizer, vocab
    from mmz.tokenize.base import Tokenizer

    for modality in ("image", "audio"):
        tok = get_tokenizer(modality)
        assert isinstance(tok, Tokenizer)
        data = next(SAMPLE.rglob("*.wav" if modality == "audio" else "*.png")).read_bytes()
        tokens, header = tok.encode(data)
        lo, hi = vocab.slice_for(modality)
        assert tokens.size and lo <= int(tokens.min()) and int(tokens.max()) < hi
        assert tok.decode(tokens, header) == data
