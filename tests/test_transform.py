"""mmz.transform: exact PNG pixel transform, sample-layout description, fallbacks."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import DEV, SAMPLE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmz import transform
from mmz.errors import CorruptDataError, MmzError
from mmz.transform import png as png_t

MEDIA = ("image", "medical", "speech", "music")
FAST = 60
# `pytest -m slow`: >= 10,000 cases per tokenizer family (issue acceptance): images (PNG + PNM + BMP)
# and WAV headers. Random bytes / UTF-8 run 10,000 each in tests/test_tokenize_text.py.
IMAGE_PNG_SLOW, IMAGE_PNM_SLOW, IMAGE_BMP_SLOW = 4000, 3000, 3000
WAV_SLOW = 10_000


def _roundtrip(data: bytes, modality: str = "image") -> transform.Transformed:
    t = transform.forward(data, modality)
    assert transform.inverse(t.transform, t.stream) == data
    for r in t.regions:
        assert 0 <= r.offset and r.offset + r.length <= len(t.stream)
        assert r.length % (r.channels * r.bytes_per_sample) == 0
    return t


# ---------------------------------------------------------------- generators

def _image(draw: st.DrawFn) -> Image.Image:
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "LA", "P", "I;16"]))
    w = draw(st.integers(1, 300))
    h = draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    smooth = draw(st.booleans())
    ch = {"L": 1, "RGB": 3, "RGBA": 4, "LA": 2, "P": 1, "I;16": 1}[mode]
    hi = 65535 if mode == "I;16" else 255
    if smooth:  # compressible gradients exercise matches, noise exercises literals
        base = np.add.outer(np.arange(h), np.arange(w))[..., None] * rng.integers(1, 9, size=ch)
        a = (base + rng.integers(0, 3, size=(h, w, ch))) % (hi + 1)
    else:
        a = rng.integers(0, hi + 1, size=(h, w, ch))
    if mode == "I;16":
        return Image.frombytes("I;16", (w, h), a[..., 0].astype("<u2").tobytes())
    if mode == "P":
        im = Image.fromarray(a[..., 0].astype(np.uint8), "L").convert("P")
        im.putpalette(list(rng.integers(0, 256, size=768, dtype=np.uint8)))
        return im
    arr = a.astype(np.uint8)
    return Image.fromarray(arr[..., 0] if ch == 1 else arr, mode)


@st.composite
def pillow_png(draw: st.DrawFn) -> tuple[bytes, int]:
    im = _image(draw)
    level = draw(st.integers(0, 9))
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=level, optimize=draw(st.booleans()) and level > 0)
    return buf.getvalue(), level


@st.composite
def pnm_file(draw: st.DrawFn) -> tuple[bytes, int, int, int, int]:
    w, h = draw(st.integers(1, 300)), draw(st.integers(1, 7))
    color = draw(st.booleans())
    maxval = draw(st.sampled_from([1, 15, 255, 256, 1023, 65535]))
    ch, bps = (3 if color else 1), (1 if maxval < 256 else 2)
    comment = b"# made by a test\n" if draw(st.booleans()) else b""
    head = b"P6" if color else b"P5"
    head += b"\n" + comment + f"{w} {h}\n{maxval}\n".encode()
    body = draw(st.binary(min_size=w * h * ch * bps, max_size=w * h * ch * bps))
    return head + body, len(head), w, ch, bps


@st.composite
def wav_file(draw: st.DrawFn) -> tuple[bytes, int, int, int, int]:
    """A WAV with random format, extra chunks, and possibly a lying data size."""
    ch = draw(st.integers(1, 8))
    bits = draw(st.sampled_from([8, 16, 24]))
    bps = bits // 8
    frames = draw(st.integers(0, 400))
    ext = draw(st.booleans())
    rate = draw(st.sampled_from([8000, 44100, 48000]))
    fmt = struct.pack("<HHIIHH", 0xFFFE if ext else 1, ch, rate, rate * ch * bps, ch * bps, bits)
    if ext:
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", 1) + bytes(14)
    extra = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\x00" if draw(st.booleans()) else b""
    payload = draw(st.binary(min_size=frames * ch * bps, max_size=frames * ch * bps))
    declared = draw(st.sampled_from(["honest", "long", "huge", "short"]))
    size = {"honest": len(payload), "long": len(payload) + 1000, "huge": 0xFFFFFFFF,
            "short": max(0, len(payload) - 7)}[declared]
    tail = extra if draw(st.booleans()) else b""
    pad = b"\x00" if len(payload) % 2 and declared == "honest" else b""
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
    data_off = 8 + len(body) + 8  # RIFF header + body so far + data chunk header
    body += b"data" + struct.pack("<I", size) + payload + pad + tail
    riff = b"RIFF" + struct.pack("<I", len(body)) + body
    cut = draw(st.integers(0, len(riff))) if draw(st.integers(0, 9)) == 0 else len(riff)
    return riff[:cut], data_off, ch, bps, len(payload) if declared == "honest" and cut == len(riff) else -1


# ---------------------------------------------------------------- checks

def _check_png(case: tuple[bytes, int]) -> None:
    data, level = case
    t = _roundtrip(data)
    if level > 0:  # Pillow's deflate at levels 1-9 must be re-created exactly
        assert t.transform == transform.PNG_PIXELS
        im = Image.open(io.BytesIO(data))
        (r,) = t.regions
        pixels = t.stream[r.offset:r.offset + r.length]
        if im.mode == "I;16":
            assert pixels == im.tobytes("raw", "I;16B")
        elif im.mode != "P":
            assert pixels == im.tobytes()
        assert r.width == im.size[0]


def _check_pnm(case: tuple[bytes, int, int, int, int]) -> None:
    data, off, w, ch, bps = case
    t = _roundtrip(data)
    assert t.regions == (transform.SampleRegion(off, len(data) - off, ch, bps, bps == 2, False, w),)


def _check_bmp(im: Image.Image) -> None:
    buf = io.BytesIO()
    im.save(buf, "BMP")
    data = buf.getvalue()
    t = _roundtrip(data)
    w, h = im.size
    px = np.asarray(im)
    row_len = w * px.shape[2]
    if len(t.regions) == 1:  # unpadded rows: one region
        (r,) = t.regions
        rows = [t.stream[r.offset + y * row_len:r.offset + (y + 1) * row_len] for y in range(h)]
        assert r.length == h * row_len
    else:  # padded rows: one region per row
        rows = [t.stream[r.offset:r.offset + r.length] for r in t.regions]
    assert len(rows) == h
    order = [2, 1, 0, 3][:px.shape[2]]
    for y, row in enumerate(rows):  # bottom-up, BGR(A)
        assert row == px[h - 1 - y][:, order].tobytes()


def _check_wav(case: tuple[bytes, int, int, int, int]) -> None:
    data, off, ch, bps, honest_len = case
    t = _roundtrip(data, "audio")
    assert t.transform == 0
    for r in t.regions:
        assert (r.offset, r.channels, r.bytes_per_sample, r.signed, r.big_endian) == (off, ch, bps, bps > 1, False)
    if honest_len > 0:
        assert [r.length for r in t.regions] == [honest_len]


@settings(max_examples=FAST, deadline=None, suppress_health_check=list(HealthCheck))
@given(pillow_png())
def test_pillow_png_roundtrip(case: tuple[bytes, int]) -> None:
    _check_png(case)


@settings(max_examples=FAST, deadline=None, suppress_health_check=list(HealthCheck))
@given(pnm_file())
def test_pnm_layout(case: tuple[bytes, int, int, int, int]) -> None:
    _check_pnm(case)


@settings(max_examples=FAST // 2, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(1, 300), st.integers(1, 7), st.sampled_from(["RGB", "RGBA"]), st.integers(0, 2**32 - 1))
def test_bmp_layout(w: int, h: int, mode: str, seed: int) -> None:
    a = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    _check_bmp(Image.fromarray(a, "RGB").convert(mode) if mode == "RGBA" else Image.fromarray(a, "RGB"))


@settings(max_examples=FAST, deadline=None, suppress_health_check=list(HealthCheck))
@given(wav_file())
def test_wav_layout(case: tuple[bytes, int, int, int, int]) -> None:
    _check_wav(case)


@pytest.mark.slow
@settings(max_examples=IMAGE_PNG_SLOW, deadline=None, suppress_health_check=list(HealthCheck))
@given(pillow_png())
def test_pillow_png_roundtrip_full(case: tuple[bytes, int]) -> None:
    _check_png(case)


@pytest.mark.slow
@settings(max_examples=IMAGE_PNM_SLOW, deadline=None, suppress_health_check=list(HealthCheck))
@given(pnm_file())
def test_pnm_layout_full(case: tuple[bytes, int, int, int, int]) -> None:
    _check_pnm(case)


@pytest.mark.slow
@settings(max_examples=IMAGE_BMP_SLOW, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(1, 300), st.integers(1, 7), st.integers(0, 2**32 - 1))
def test_bmp_layout_full(w: int, h: int, seed: int) -> None:
    a = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    _check_bmp(Image.fromarray(a, "RGB"))


@pytest.mark.slow
@settings(max_examples=WAV_SLOW, deadline=None, suppress_health_check=list(HealthCheck))
@given(wav_file())
def test_wav_layout_full(case: tuple[bytes, int, int, int, int]) -> None:
    _check_wav(case)


# ---------------------------------------------------------------- real files

def _media(root: Path) -> list[Path]:
    return sorted(p for m in MEDIA if (root / m).is_dir() for p in (root / m).iterdir() if p.is_file())


def test_sample_corpus_media_roundtrip() -> None:
    files = _media(SAMPLE)
    assert files
    for p in files:
        data = p.read_bytes()
        t = _roundtrip(data, "audio" if p.suffix == ".wav" else "image")
        if p.suffix == ".png":
            assert t.transform == transform.PNG_PIXELS, p.name
        else:
            (r,) = t.regions
            assert r.length >= len(data) - 200 and r.bytes_per_sample == 2 and r.signed


@pytest.mark.slow
def test_dev_corpus_media_roundtrip() -> None:
    files = _media(DEV)
    if not files:
        pytest.skip("dev corpus not available")
    on_pixels = 0
    pngs = 0
    for p in files:
        t = _roundtrip(p.read_bytes(), "audio" if p.suffix == ".wav" else "image")
        if p.suffix == ".png":
            pngs += 1
            on_pixels += t.transform == transform.PNG_PIXELS
    assert on_pixels == pngs  # every Pillow-written dev PNG takes the pixel path


# ---------------------------------------------------------------- malformed input

def _png(w: int = 40, h: int = 5) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(w * h * 3, dtype=np.uint8).reshape(h, w, 3) % 251, "RGB").save(buf, "PNG")
    return buf.getvalue()


def test_malformed_inputs_fall_back() -> None:
    good = _png()
    idat = good.index(b"IDAT")
    (n,) = struct.unpack(">I", good[idat - 4:idat])
    crc_at = idat + 4 + n
    bad_crc = good[:crc_at] + bytes([good[crc_at] ^ 1]) + good[crc_at + 1:]
    bad_adler = good[:crc_at - 1] + bytes([good[crc_at - 1] ^ 1]) + good[crc_at:]
    wav = (SAMPLE / "speech").glob("*.wav").__next__().read_bytes()
    liar = wav[:40] + struct.pack("<I", 0x7FFFFFF0) + wav[44:]
    rng = np.random.default_rng(1)
    cases = [good[:len(good) // 2], good[:30], good[:8], bad_crc, bad_adler, liar, wav[:30], b"",
             png_t.SIGNATURE, rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
             b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00", b"P6\n99999 99999\n255\n", b"BM" + bytes(60)]
    for data in cases:
        for modality in ("image", "audio", "binary"):
            t = _roundtrip(data, modality)
            assert t.transform == 0
    assert _roundtrip(good, "audio").transform == transform.PNG_PIXELS  # a PNG named .wav
    assert _roundtrip(liar, "audio").regions[0].length % 2 == 0


def test_inverse_rejects_garbage() -> None:
    stream = transform.forward(_png(), "image").stream
    with pytest.raises(MmzError):
        transform.inverse(99, stream)
    rng = np.random.default_rng(2)
    for _ in range(300):
        s = bytearray(stream)
        for _ in range(int(rng.integers(1, 4))):
            s[int(rng.integers(0, len(s)))] = int(rng.integers(0, 256))
        cut = int(rng.integers(0, len(s) + 1)) if rng.integers(0, 3) == 0 else len(s)
        try:
            transform.inverse(1, bytes(s[:cut]))
        except MmzError:
            pass
    lying = struct.pack("<I", 40) + png_t._FIXED.pack(b"MZPG", 1, 1, 6, 9, 1, 15, 2**31, 2**31, 4, 2) + bytes(18)
    for s in (b"", b"\x00", b"\xff\xff\xff\xff", lying, lying + bytes(100)):
        with pytest.raises(CorruptDataError):
            transform.inverse(1, s)


def test_pinned_engine_matches_zlib_level6() -> None:
    raw = _png(300, 7)
    data = zlib.decompress(raw[raw.index(b"IDAT") + 4:])  # any bytes will do
    for level, mem, strategy in ((6, 8, 0), (9, 9, 1), (1, 8, 0)):
        c = zlib.compressobj(level, zlib.DEFLATED, 15, mem, strategy)
        ref = c.compress(data) + c.flush()
        from mmz import _core
        assert _core.zlib_deflate(data, level, mem, strategy, 15) == ref


# ---------------------------------------------------------------- PNGs from other encoders

def _chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _handmade_png(a: np.ndarray, level: int, strategy: int, idat_size: int, filters: str) -> bytes:
    """A PNG written the way libpng-based encoders do, not by Pillow: per-row filter choice
    (all five types), any zlib level/strategy, IDAT split in pieces, an ancillary text chunk."""
    h, w, ch = a.shape
    bpp = ch
    rows = []
    prev = np.zeros(w * ch, dtype=np.int32)
    for y in range(h):
        cur = a[y].reshape(-1).astype(np.int32)
        ftype = {"cycle": y % 5, "sub": 1, "paeth": 4}[filters]
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        if ftype == 0:
            out = cur
        elif ftype == 1:
            out = cur - left
        elif ftype == 2:
            out = cur - prev
        elif ftype == 3:
            out = cur - (left + prev) // 2
        else:
            out = cur - np.array([_paeth(int(x), int(y_), int(z)) for x, y_, z in zip(left, prev, upleft, strict=True)])
        rows.append(bytes([ftype]) + (out % 256).astype(np.uint8).tobytes())
        prev = cur
    comp = zlib.compressobj(level, zlib.DEFLATED, 15, 8, strategy)
    z = comp.compress(b"".join(rows)) + comp.flush()
    color = {1: 0, 3: 2, 4: 6}[ch]
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)),
           _chunk(b"tEXt", b"Software\x00handmade test encoder")]
    out += [_chunk(b"IDAT", z[i:i + idat_size]) for i in range(0, len(z), idat_size)]
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def test_pngs_from_other_encoders_roundtrip() -> None:
    """PNGs not written by Pillow (libpng-style filters and IDAT splitting, optipng, ImageMagick)
    come back byte-exactly through the whole codec, on the pixel path or by fallback."""
    import shutil
    import subprocess
    import tempfile

    import mmz

    rng = np.random.default_rng(7)
    cases: list[tuple[str, bytes]] = []
    for i, (w, h, ch) in enumerate([(37, 11, 3), (64, 9, 4), (1, 5, 1), (120, 3, 3)]):
        base = np.add.outer(np.arange(h), np.arange(w))[..., None] * (i + 1) + rng.integers(0, 4, (h, w, ch))
        a = (base % 256).astype(np.uint8)
        for level, strategy, idat, filters in [(9, zlib.Z_DEFAULT_STRATEGY, 8192, "cycle"),
                                               (6, zlib.Z_FILTERED, 100, "paeth"),
                                               (1, zlib.Z_DEFAULT_STRATEGY, 37, "sub")]:
            name = f"handmade-{w}x{h}x{ch}-l{level}-{filters}"
            cases.append((name, _handmade_png(a, level, strategy, idat, filters)))
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "src.png"
        src.write_bytes(_png(53, 17))
        if shutil.which("optipng"):
            subprocess.run(["optipng", "-quiet", "-o2", "-out", f"{d}/opt.png", str(src)], check=True)
            cases.append(("optipng-o2", (Path(d) / "opt.png").read_bytes()))
        im = Path(d) / "im.png"
        if shutil.which("convert"):  # a real ImageMagick (some machines have a stand-in that cannot write PNGs)
            cmd = ["convert", str(src), "-define", "png:compression-level=9", str(im)]
            r = subprocess.run(cmd, capture_output=True)
            if r.returncode == 0 and im.is_file() and im.read_bytes()[:8] == png_t.SIGNATURE:
                cases.append(("imagemagick", im.read_bytes()))
    paths = {}
    for name, data in cases:
        t = _roundtrip(data, "image")
        paths[name] = "pixels" if t.transform == transform.PNG_PIXELS else "fallback"
        assert mmz.decompress(mmz.compress(data, level=1, name=f"{name}.png")) == data, name
    print("\nPNG encoder -> path:", paths)
    assert len(paths) >= 12
