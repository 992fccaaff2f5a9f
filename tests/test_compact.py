"""Compact frames (format version 2): when the writer uses them, their sizes, damage detection,
mixing with version-1 frames, listing, and committed golden frames that must keep decoding."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

import mmz
from mmz import _core
from mmz.cli import main as cli_main
from mmz.frame import COMPACT_LIMIT, FrameReader, scan

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "frame"
TEXT = (ROOT / "data" / "sample" / "text" / "debian_handbook_en.txt").read_bytes()


@pytest.fixture(autouse=True)
def _auto_is_cm(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about CM/stored framing: keep ``--codec auto`` off the network, which it
    would use for the small text here (tests/test_neural.py covers that)."""
    from mmz import codec

    for preset in codec.NEURAL_AUTO_LIMIT:
        monkeypatch.setitem(codec.NEURAL_AUTO_LIMIT, preset, {})


def _small_png() -> bytes:
    """A 16 x 12 RGB PNG (made by tests/golden/frame/make_golden.py)."""
    return (GOLDEN / "compact_png.raw").read_bytes()


def test_small_inputs_get_compact_frames() -> None:
    rnd = random.Random(1).randbytes(100)
    assert len(mmz.compress(b"")) == 12
    assert len(mmz.compress(b"x")) == 13
    assert len(mmz.compress(rnd)) == 112  # stored: 12 bytes of header and check
    for data in (b"", rnd, TEXT[:3000]):
        blob = mmz.compress(data)
        info = mmz.frame_info(blob)
        assert info["version"] == 2 and info["model_id"] is None
        assert mmz.decompress(blob) == data
        assert _core.decompress_frames(blob) == data
    assert mmz.frame_info(mmz.compress(TEXT[:3000]))["codec"] == "cm"


def test_version_1_when_compact_does_not_fit() -> None:
    two_chunks = mmz.compress(TEXT[:3000], chunk_size=2000)
    assert mmz.frame_info(two_chunks)["version"] == 1
    assert mmz.decompress(two_chunks) == TEXT[:3000]
    big = (TEXT * 2)[: COMPACT_LIMIT + 1]
    blob = mmz.compress(big, chunk_size=1 << 20)
    assert mmz.frame_info(blob)["version"] == 1 and mmz.decompress(blob) == big
    at_limit = big[:COMPACT_LIMIT]
    assert mmz.frame_info(mmz.compress(at_limit, chunk_size=1 << 20))["version"] == 2


def test_compact_frame_carries_a_transform() -> None:
    png = _small_png()
    blob = mmz.compress(png)
    info = mmz.frame_info(blob)
    assert info["version"] == 2 and info["transform"] != 0
    assert mmz.decompress(blob) == png
    [listed] = list(scan(io.BytesIO(blob)))
    assert listed["content_len"] == len(png) and listed["compressed_len"] == len(blob)


@pytest.mark.parametrize("kind", ["text", "png", "store", "empty"])
def test_every_bit_flip_and_truncation_is_refused(kind: str) -> None:
    data = {"text": TEXT[:400], "png": _small_png(), "store": random.Random(2).randbytes(60), "empty": b""}[kind]
    blob = mmz.compress(data)
    assert mmz.frame_info(blob)["version"] == 2
    for i in range(len(blob) * 8):
        bad = bytearray(blob)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(mmz.MmzError):
            out = mmz.decompress(bytes(bad))
            assert out == data, f"bit {i}: wrong bytes returned"  # never reached if the flip is caught
    for n in range(len(blob)):
        with pytest.raises(mmz.CorruptDataError):
            mmz.decompress(blob[:n])


def test_mixed_versions_concatenate_stream_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parts = [TEXT[:5000], b"", TEXT[5000:5100], random.Random(4).randbytes(300)]
    frames = [mmz.compress(parts[0], chunk_size=2000)] + [mmz.compress(p) for p in parts[1:]]
    assert [mmz.frame_info(f)["version"] for f in frames] == [1, 2, 2, 2]
    blob = b"".join(frames)
    assert mmz.decompress(blob) == b"".join(parts)
    reader = FrameReader()
    out = b"".join(reader.feed(blob[i : i + 1]) for i in range(len(blob))) + reader.finish()
    assert out == b"".join(parts) and reader.frames == 4
    listed = list(scan(io.BytesIO(blob)))
    assert [f["content_len"] for f in listed] == [len(p) for p in parts]
    assert [f["compressed_len"] for f in listed] == [len(f) for f in frames]
    path = tmp_path / "mixed.mmz"
    path.write_bytes(blob)
    assert cli_main(["-l", "-vv", str(path)]) == 0
    shown = capsys.readouterr().out
    assert f"{sum(len(p) for p in parts)}" in shown and "frame 3:" in shown
    with pytest.raises(mmz.CorruptDataError, match="frame 4"):
        mmz.decompress(blob + frames[2][:-1])


def test_streaming_compressor_writes_compact_at_flush() -> None:
    c = mmz.MmzCompressor()
    head = c.compress(TEXT[:1000])
    blob = head + c.flush()
    assert mmz.frame_info(blob)["version"] == 2
    assert mmz.decompress(blob) == TEXT[:1000]


def test_unknown_version_refused_early() -> None:
    blob = bytearray(mmz.compress(b"version test"))
    blob[4] = 9
    with pytest.raises(mmz.MmzError, match="version 9"):
        mmz.decompress(bytes(blob))


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN.glob("*.mmz")))
def test_golden_frames_decode(name: str) -> None:
    """Committed frames written by an earlier build; every released format must keep decoding."""
    blob = (GOLDEN / f"{name}.mmz").read_bytes()
    want = (GOLDEN / f"{name}.raw").read_bytes()
    assert mmz.decompress(blob) == want
    if mmz.frame_info(blob)["transform"] == 0:  # the core alone decodes transform-free frames
        assert _core.decompress_frames(blob) == want


def test_golden_set_is_present() -> None:
    names = {p.stem for p in GOLDEN.glob("*.mmz")}
    assert {"compact_empty", "compact_text", "compact_audio", "compact_png", "v1_text"} <= names


def test_truncated_single_compact_frame_is_named() -> None:
    blob = mmz.compress(TEXT[:1200])
    for n in (5, 9, len(blob) - 1):
        with pytest.raises(mmz.CorruptDataError, match="truncated data: frame 0 is incomplete"):
            mmz.decompress(blob[:n])


def test_neural_writer_keeps_the_smaller_frame() -> None:
    """A neural record needs a version-1 frame (208 bytes of container); a compact CM frame wins
    on tiny inputs, and the frame chosen is never larger than either alternative."""
    neural = pytest.importorskip("mmz.neural")
    if not neural.available():
        pytest.skip("no neural engine or shipped model")
    for data in (TEXT[:300], TEXT[:1500]):
        blob = mmz.compress(data, codec="neural")
        assert mmz.decompress(blob) == data
        assert len(blob) <= len(mmz.compress(data, codec="cm"))
    assert mmz.frame_info(mmz.compress(TEXT[:300], codec="neural"))["version"] == 2


def test_small_binary_tries_older_cm_payloads() -> None:
    """Binary chunks of compact frames are also coded as CM payload version 2 (text context
    lists); whichever record is kept decodes, and the frame is never larger than the default."""
    from mmz import frame

    hint = _core.make_hint("binary")
    data = (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56 + b"GLIBC_2.34\x00libfoo.so.1\x00_ZNSt6vector") * 40
    for version in (1, 2, 3, 4):
        rec = _core.encode_cm_chunk(data, 5, hint, version)
        assert _core.decode_chunk(rec[: _core.CHUNK_HEADER_LEN], rec[_core.CHUNK_HEADER_LEN :]) == data
    with pytest.raises(mmz.MmzError):
        _core.encode_cm_chunk(data, 5, hint, 9)
    blob = mmz.compress(data, modality="binary")
    assert mmz.decompress(blob) == data
    saved = frame.COMPACT_TRY_BINARY
    try:
        frame.COMPACT_TRY_BINARY = ()
        without = mmz.compress(data, modality="binary")
    finally:
        frame.COMPACT_TRY_BINARY = saved
    assert len(blob) <= len(without)
