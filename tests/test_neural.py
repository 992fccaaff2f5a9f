"""Neural codec: golden vectors, torch/onnxruntime conformance, batch/thread invariance, round trips."""

from __future__ import annotations

import importlib.util
import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mmz
import mmz.neural as neural
from mmz import _core

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "neural"
SAMPLE = ROOT / "data" / "sample"


def _golden_module():
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tiny() -> neural.Model:
    g = _golden_module()
    manifest = {"model_id": "00" * 32, "tokenizer": {"vocab": g.VOCAB}, "config": g.CONFIG}
    return neural.from_container((GOLDEN / "tiny.mmznw").read_bytes(), manifest)


def _shipped() -> neural.Model:
    if not neural.available():
        pytest.skip("no neural model shipped")
    return neural.load()


def test_golden_vectors_match() -> None:
    g = _golden_module()
    want = {k: int(v, 16) for k, v in (ln.split("=") for ln in (GOLDEN / "golden.txt").read_text().split())}
    assert g.compute((GOLDEN / "tiny.mmznw").read_bytes()) == want


def test_container_rebuild_is_identical() -> None:
    g = _golden_module()
    from mmz.neural.weights import pack

    assert pack(g.tiny_tensors(), g.CONFIG, g.VOCAB) == (GOLDEN / "tiny.mmznw").read_bytes()


@pytest.mark.parametrize("fade", [False, True])
def test_engine_matches_torch_step(fade: bool) -> None:
    torch = pytest.importorskip("torch")
    from mmz.model.config import ModelConfig
    from mmz.model.model import RwkvMoe
    from mmz.neural.weights import pack_torch_model

    torch.manual_seed(3)
    cfg = ModelConfig(d_model=32, n_layer=2, head_size=16, n_experts=3, top_k=2, reparam=False, fade=fade,
                      decay_lora=4, aaa_lora=4, mv_lora=4, gate_lora=8)
    m = RwkvMoe(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    eng = _core.NeuralEngine(pack_torch_model(m), list(m.vocab.modalities))
    b, t = 3, 60
    mod = torch.tensor([0, 3, 4])
    tok = torch.randint(0, 256, (b, t)) + mod[:, None] * 256
    tok[:, 0] = m.vocab.prefix_base + mod
    st, ref = m.init_state(b), []
    with torch.no_grad():
        for i in range(t):
            lg, st = m.step(tok[:, i], mod, st)
            ref.append(lg)
    ref_np = torch.stack(ref, 1).numpy()
    out = np.frombuffer(eng.run_logits(tok.numpy().astype("<u4").tobytes(), mod.tolist(), t), "<f4")
    assert np.abs(out.reshape(ref_np.shape) - ref_np).max() <= 1e-4


def test_roundtrip_and_fallback_tiny() -> None:
    m = _tiny()
    hint = _core.make_hint("text", None)
    for data in [b"", b"a", bytes(range(256)) * 9, b"hello neural world " * 500]:
        rec = neural.encode_chunk(m, data, 1, hint)
        assert neural.decode_chunk(m, rec[:64], rec[64:]) == data
    # A damaged neural payload is an error, never wrong bytes.
    p = neural.encode_payload(m, b"abcdefgh" * 300, 1, hint)
    bad = bytearray(p)
    bad[-3] ^= 0x40
    try:
        out = neural.decode_payload(m, bytes(bad), 2400, hint)
    except _core.MmzCoreError:
        out = None
    assert out != b"abcdefgh" * 300 or out is None


_CHILD = """
import sys, mmz.neural as n, importlib.util
from mmz import _core
spec = importlib.util.spec_from_file_location("g", sys.argv[1]); g = importlib.util.module_from_spec(spec)
spec.loader.exec_module(g)
mf = {"model_id": "00" * 32, "tokenizer": {"vocab": g.VOCAB}, "config": g.CONFIG}
m = n.from_container(open(sys.argv[2], "rb").read(), mf)
m.batch = 1
payload = open(sys.argv[3], "rb").read()
sys.stdout.buffer.write(n.decode_payload(m, payload, int(sys.argv[4]), _core.make_hint("text", None)))
"""


def _assert_fresh_process_decodes(tmp_path: Path, payload: bytes, data: bytes) -> None:
    """The payload (encoded at any batch size) decodes to `data` at B = 1 in a fresh process, 1 and 2 threads."""
    (tmp_path / "p.bin").write_bytes(payload)
    for threads in ("1", "2"):
        env = {**os.environ, "RAYON_NUM_THREADS": threads}
        res = subprocess.run([sys.executable, "-c", _CHILD, str(GOLDEN / "make_golden.py"), str(GOLDEN / "tiny.mmznw"),
                              str(tmp_path / "p.bin"), str(len(data))], env=env, capture_output=True, check=True)
        assert res.stdout == data


def test_mixed_form_roundtrip_invariance_and_damage(tmp_path: Path) -> None:
    m = _tiny()
    hint = _core.make_hint("text", None)
    rng = np.random.default_rng(9)
    data = bytes(rng.choice(list(b"0123456789,;\n"), size=30_000).astype(np.uint8))
    for sample in [b"", b"a", bytes(range(256)) * 9, data]:
        m.batch, m.threads = 64, 2
        mixed = neural.encode_payload(m, sample, 1, hint, mixed=True)
        assert mixed[3] == _core.NEURAL_FLAGS_MIX
        m.batch, m.threads = 1, 1
        assert neural.encode_payload(m, sample, 1, hint, mixed=True) == mixed
        plain, both = neural.encode_forms(m, sample, 1, hint)
        assert both == mixed and plain == neural.encode_payload(m, sample, 1, hint)
        assert neural.decode_payload(m, mixed, len(sample), hint) == sample
    # Mixing learns the 13-symbol alphabet the tiny network does not know.
    plain, mixed = neural.encode_forms(m, data, 1, hint)
    assert mixed is not None and len(mixed) < 0.8 * len(plain)
    bad = bytearray(mixed)
    bad[3] = 7  # unknown form
    with pytest.raises(_core.MmzCoreError):
        neural.decode_payload(m, bytes(bad), len(data), hint)
    # B = 64 payload decodes at B = 1 with 1 and 2 threads in a fresh process.
    _assert_fresh_process_decodes(tmp_path, mixed, data)


def test_cm_mixed_form_roundtrip_invariance_and_damage(tmp_path: Path) -> None:
    m = _tiny()
    hint = _core.make_hint("text", None)
    rng = np.random.default_rng(21)
    data = bytes(rng.choice(list(b"acgt ACGT,;\n"), size=20_000).astype(np.uint8))
    for sample in [b"", b"a", bytes(range(256)) * 9, data]:
        m.batch, m.threads = 64, 2
        cmx = neural.encode_payload(m, sample, 1, hint, cm_mixed=True)
        assert cmx[3] == _core.NEURAL_FLAGS_CM_MIX == 2
        m.batch, m.threads = 1, 1
        assert neural.encode_payload(m, sample, 1, hint, cm_mixed=True) == cmx
        plain, mixed, both, _ = neural.encode_all_forms(m, sample, 1, hint)
        assert both == cmx and mixed == neural.encode_payload(m, sample, 1, hint, mixed=True)
        assert plain == neural.encode_payload(m, sample, 1, hint)
        assert neural.decode_payload(m, cmx, len(sample), hint) == sample
    plain, mixed, cmx, grp = neural.encode_all_forms(m, data, 1, hint)
    # Flags 3 (5 sub-streams, one CM group): same bytes as the single-form call, round-trips.
    assert grp is not None and grp[3] == _core.NEURAL_FLAGS_CM_GROUP == 3
    assert grp == neural.encode_payload(m, data, 1, hint, cm_group=True)
    assert neural.decode_payload(m, grp, len(data), hint) == data
    # i.i.d. symbols: both partners learn the 13-symbol alphabet the tiny network does not know.
    assert cmx is not None and mixed is not None and len(cmx) < 0.8 * len(plain) and len(mixed) < 0.8 * len(plain)
    bad = bytearray(cmx)
    bad[len(bad) // 2] ^= 0x20
    try:
        assert neural.decode_payload(m, bytes(bad), len(data), hint) != data
    except _core.MmzCoreError:
        pass
    # B = 64 payload (5 streams) decodes at B = 1 with 1 and 2 threads in a fresh process.
    m.batch, m.threads = 64, 2
    _assert_fresh_process_decodes(tmp_path, neural.encode_payload(m, data, 1, hint, cm_mixed=True), data)


def test_b64_encode_decodes_at_b1_in_fresh_process(tmp_path: Path) -> None:
    m = _tiny()
    m.batch = 64
    rng = np.random.default_rng(5)
    data = bytes(rng.choice(list(b"0123456789,;\n"), size=90_000).astype(np.uint8))
    hint = _core.make_hint("text", None)
    payload = neural.encode_payload(m, data, 1, hint)  # 4 KiB segments -> 22 streams in one group
    m.batch = 1
    assert neural.encode_payload(m, data, 1, hint) == payload
    _assert_fresh_process_decodes(tmp_path, payload, data)


def test_shipped_probe_and_id() -> None:
    m = _shipped()
    assert len(m.id) == 32
    ref = neural.reference_probes().get(m.manifest["model_id"])
    if ref is None:
        pytest.skip("shipped model has no recorded probe hash yet")
    assert m.probe_hash == ref


def test_wrong_model_is_refused() -> None:
    m = _shipped()
    tiny = _tiny()
    hint = _core.make_hint("text", None)
    p = neural.encode_payload(tiny, b"some text " * 50, 1, hint)
    with pytest.raises(_core.MmzCoreError, match="probe"):
        neural.decode_payload(m, p, 500, hint)


def _sample_chunk(path: Path, limit: int) -> tuple[bytes, bytes]:
    """(bytes, hint) of the first ``limit`` bytes of a sample file in token-ready form."""
    kind = path.parent.name
    raw = path.read_bytes()
    if path.suffix == ".png":
        from PIL import Image

        with Image.open(io.BytesIO(raw)) as im:
            arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB", "I;16") else im)
        data = arr.astype(">u2").tobytes() if arr.dtype == np.uint16 else arr.astype(np.uint8).tobytes()
        bps = 2 if arr.dtype == np.uint16 else 1
        ch = 1 if arr.ndim == 2 else arr.shape[2]
        data = data[:limit - limit % (bps * ch)]
        return data, _core.make_hint("image", (ch, bps, True, False, arr.shape[1], 0, len(data), 0))
    if path.suffix == ".wav":
        pos = raw.find(b"data") + 8
        data = raw[:limit]
        width = struct.unpack("<H", raw[34:36])[0] // 8
        ch = struct.unpack("<H", raw[22:24])[0]
        end = pos + (len(data) - pos) // (width * ch) * width * ch
        return data, _core.make_hint("audio", (ch, width, False, width > 1, 0, pos, end, 0))
    return raw[:limit], _core.make_hint({"gene": "gene", "structured": "structured"}.get(kind, "text"), None)


def test_sample_files_roundtrip_shipped_model() -> None:
    m = _shipped()
    seen = set()
    for path in sorted(SAMPLE.glob("*/*")):
        if path.parent.name in seen or path.name == "MANIFEST.tsv":
            continue
        seen.add(path.parent.name)
        data, hint = _sample_chunk(path, 3000)
        payload = neural.encode_payload(m, data, 1, hint)
        assert neural.decode_payload(m, payload, len(data), hint) == data, path
        mixed = neural.encode_payload(m, data, 1, hint, mixed=True)
        assert neural.decode_payload(m, mixed, len(data), hint) == data, path
        rec = neural.encode_chunk(m, data, 1, hint)
        assert neural.decode_chunk(m, rec[:64], rec[64:]) == data
        assert len(rec) - 64 <= min(len(payload), len(mixed), len(data))


def test_sample_form_roundtrips_and_stays_near_cm_on_bundled_media() -> None:
    """Flags 4 (CM sample model mixed with the network) on 16 KiB of each bundled image/audio sample:
    it decodes, is within 1% of the CM codec alone (the mixer starts on the sample model, so the network
    cannot drag it far), and the chunk record is never larger than either."""
    m = _shipped()
    seen = 0
    for kind in ("image", "medical", "speech", "music"):
        for path in sorted((SAMPLE / kind).glob("*"))[:1]:
            data, hint = _sample_chunk(path, 16384)
            sample = neural.encode_sample_mixed(m, data, 5, hint)
            assert sample is not None and sample[3] == _core.NEURAL_FLAGS_SAMPLE_MIX, path
            assert neural.decode_payload(m, sample, len(data), hint) == data, path
            cm = len(_core.encode_chunk(data, "cm", 5, hint)) - _core.CHUNK_HEADER_LEN
            assert len(sample) < 1.01 * cm, (path, len(sample), cm)
            rec = neural.encode_chunk(m, data, 5, hint)
            assert len(rec) - 64 <= min(len(sample), cm)
            assert neural.decode_chunk(m, rec[:64], rec[64:]) == data
            seen += 1
    assert seen == 4
    # Text has no sample region: no sample form.
    assert neural.encode_sample_mixed(m, b"plain text " * 50, 5, _core.make_hint("text", None)) is None


def test_onnx_conformance_1000_steps() -> None:
    m = _shipped()
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(m.directory / "model.onnx"), providers=["CPUExecutionProvider"])
    mf = m.manifest
    steps, mods = 1000, [0, 4]
    rng = np.random.default_rng(0)
    toks = np.zeros((2, steps), dtype=np.int64)
    for r, md in enumerate(mods):
        toks[r] = 256 * md + rng.integers(0, 256, steps)
        toks[r, 0] = mf["tokenizer"]["vocab"]["prefix_base"] + md
    ours = np.frombuffer(m.engine.run_logits(toks.astype("<u4").tobytes(), mods, steps), "<f4").reshape(2, steps, -1)
    names = mf["onnx"]["inputs"][2:]
    state = {n: np.zeros([2, *mf["onnx"]["state_shapes"][n]], np.float32) for n in names}
    worst = 0.0
    for t in range(steps):
        res = sess.run(None, {"tokens": toks[:, t], "modality": np.array(mods, np.int64), **state})
        state = dict(zip(names, res[1:1 + len(names)], strict=True))
        fin = np.isfinite(res[0])
        worst = max(worst, float(np.abs(res[0][fin] - ours[:, t][fin]).max()))
    assert worst <= 1e-4, worst


@pytest.mark.slow
def test_coded_size_near_cross_entropy_1mb() -> None:
    m = _shipped()
    data = (SAMPLE / "text" / "debian_handbook_en.txt").read_bytes()[:1_100_000]
    hint = _core.make_hint("text", None)
    payload = neural.encode_payload(m, data, 9, hint)
    ce_bytes = neural.cross_entropy_bits(m, data, 9, hint) / 8
    assert len(payload) <= ce_bytes * 1.005
    assert neural.decode_payload(m, payload, len(data), hint) == data


def test_api_and_cli_use_the_neural_codec(tmp_path: Path) -> None:
    """``--codec neural`` end to end: the frame names the model, small text is coded by the
    network (its prior beats a cold CM), and the CLI round trip is byte-exact."""
    import mmz
    from mmz.cli import main as cli_main

    _shipped()
    text = (SAMPLE / "text" / "debian_handbook_en.txt").read_bytes()[:1500]
    frame = mmz.compress(text, codec="neural", chunk_size=1000)
    info = mmz.frame_info(frame)
    assert info["codec"] == "neural" and info["model_id"] == neural.cached().id
    assert mmz.decompress(frame) == text
    assert len(frame) < len(mmz.compress(text, codec="cm", chunk_size=1000))
    src = tmp_path / "t.txt"
    src.write_bytes(text + bytes(range(256)))
    assert cli_main(["-z", "-q", "--codec", "neural", "-T2", str(src)]) == 0
    src.unlink()
    assert cli_main(["-d", "-q", str(tmp_path / "t.txt.mmz")]) == 0
    assert src.read_bytes() == text + bytes(range(256))


def test_neural_chunk_without_model_id_is_refused() -> None:
    """A frame whose header names no model cannot smuggle a neural chunk past the reader."""
    import mmz
    from mmz.errors import CorruptDataError

    _shipped()
    text = (SAMPLE / "text" / "debian_handbook_en.txt").read_bytes()[:800]
    good = mmz.compress(text, codec="neural", chunk_size=400)  # two chunks: a version-1 frame
    assert mmz.frame_info(good)["version"] == 1 and mmz.frame_info(good)["model_id"]
    header = _core.frame_header("text", 5, 0, "neural", 8 << 20, None, None)
    forged = header + good[84:]
    with pytest.raises(CorruptDataError, match="names no model"):
        mmz.decompress(forged)


def test_estimate_reports_cross_entropy_next_to_real_bits() -> None:
    """``mmz bench --estimate``'s numbers: the real neural bits sit just above the model's
    cross-entropy (coder flush, 2^-20 CDF floor, stream table), never below it by more than rounding."""
    _shipped()
    text = (SAMPLE / "text" / "debian_handbook_en.txt").read_bytes()[:6000]
    e = neural.estimate(text, level=1, name="t.txt")
    assert e["raw_bytes"] == e["stream_bytes"] == 6000
    assert 0.99 * e["estimate_bits"] <= e["coded_bits"] <= 1.05 * e["estimate_bits"] + 8 * 64
    assert 8 * len(neural.encode_payload(neural.cached(), text, 1, _core.make_hint("text", None))) == e["coded_bits"]


def test_frames_of_every_shipped_model_decode_by_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new default model must not strand archives written with an older shipped one."""
    dirs = neural._shipped_dirs()
    if len(dirs) < 2:
        pytest.skip("only one model shipped")
    data = sorted((ROOT / "data" / "sample" / "structured").iterdir())[0].read_bytes()[:3000]
    blobs = {}
    for d in dirs:
        monkeypatch.setenv("MMZ_MODEL", str(d))
        blobs[d.name] = mmz.compress(data, 1, codec="neural", chunk_size=1500)  # version 1: names the model
        monkeypatch.delenv("MMZ_MODEL")
        assert neural.load(d).id in blobs[d.name]  # the frame names the model that coded it
    assert len(set(blobs.values())) == len(blobs)  # each model coded it differently
    for blob in blobs.values():
        assert mmz.decompress(blob) == data  # found by its id among the shipped models


def _chunk_codecs(frame: bytes) -> list[str]:
    """Codec names of a frame's chunks, in order of first use."""
    from mmz.frame import scan

    [info] = list(scan(io.BytesIO(frame)))
    return list(info["codecs"])


def test_auto_runs_the_network_on_small_text_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--codec auto``: the neural codec on small text at the default/max presets (denser than CM,
    byte-exact), CM at the fast preset, above the size limit and on media; a stream of unknown
    length is decided chunk by chunk inside one neural frame."""
    from mmz import codec as C

    _shipped()
    text = (SAMPLE / "text" / "debian_handbook_en.txt").read_bytes()[:6000]
    auto = mmz.compress(text)
    info = mmz.frame_info(auto)
    assert info["codec"] == "neural" and info["model_id"] == neural.cached().id
    assert mmz.decompress(auto) == text
    assert len(auto) < len(mmz.compress(text, codec="cm"))
    assert mmz.frame_info(mmz.compress(text, 1))["codec"] == "cm"
    wav = next((SAMPLE / "speech").glob("*.wav")).read_bytes()
    assert mmz.frame_info(mmz.compress(wav))["codec"] == "cm"
    fasta, fastq = ((SAMPLE / "gene" / n).read_bytes() for n in ("yeast_someORF.fa", "solexa_s_1_sequence.fastq"))
    assert C.auto_neural_limit(5, "gene", fasta[:100]) == 0 < C.auto_neural_limit(5, "gene", fastq[:100])
    assert mmz.frame_info(mmz.compress(fasta))["codec"] == "cm"
    monkeypatch.setitem(C.NEURAL_AUTO_LIMIT, "default", {"text": 2000})
    assert C.auto_neural_limit(5, "text") == 2000 and C.auto_neural_limit(5, "image") == 0
    assert mmz.frame_info(mmz.compress(text))["codec"] == "cm"  # known length above the limit
    c = mmz.MmzCompressor(chunk_size=2500)  # unknown length, 2500 + 2500 + 1000 bytes: not one small chunk
    stream = c.compress(text[:3000]) + c.compress(text[3000:]) + c.flush()
    assert mmz.frame_info(stream)["codec"] == "neural" and _chunk_codecs(stream) == ["cm"]
    assert mmz.decompress(stream) == text
    c = mmz.MmzCompressor(chunk_size=2500)  # unknown length that turns out to be one chunk under the limit
    stream = c.compress(text[:1000]) + c.compress(text[1000:1800]) + c.flush()
    assert _chunk_codecs(stream) == ["neural"] and mmz.decompress(stream) == text[:1800]


def test_auto_uses_only_a_shipped_model_and_never_fails_on_a_bad_one(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``$MMZ_MODEL`` (``--model``) naming a private copy or a damaged model directory: ``auto``
    codes with CM (its output must decode with the models mmz ships) and raises nothing."""
    import shutil

    from mmz import codec as C

    shipped = _shipped()
    text = (SAMPLE / "text" / "debian_handbook_en.txt").read_bytes()[:4000]
    private = tmp_path / "private"
    shutil.copytree(shipped.directory, private)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    for env in (private, broken):
        monkeypatch.setenv("MMZ_MODEL", str(env))
        C._neural_usable.cache_clear()
        try:
            frame = mmz.compress(text)
        finally:
            C._neural_usable.cache_clear()
        assert mmz.frame_info(frame)["codec"] == "cm" and mmz.decompress(frame) == text
    monkeypatch.setenv("MMZ_MODEL", str(shipped.directory))
    C._neural_usable.cache_clear()
    try:
        assert mmz.frame_info(mmz.compress(text))["codec"] == "neural"
    finally:
        C._neural_usable.cache_clear()


def test_archive_auto_decides_on_the_whole_member() -> None:
    """An archive member cut into chunks is as large as the whole file: CM under ``auto`` when the
    member is above the auto limit, even though each chunk is small."""
    from mmz.archive.writer import ChunkSpec, Options, _chunk_codec

    _shipped()
    text = (SAMPLE / "text" / "debian_handbook_en.txt").read_bytes()[:65536]
    opts = Options(level=5, chunk_size=65536)

    def spec(member_size: int) -> ChunkSpec:
        return ChunkSpec("x", "doc.txt", 0, 0, len(text), member_size, 0, False)

    assert _chunk_codec(spec(len(text)), opts, text) == "auto"  # whole member: mmz.compress decides
    assert _chunk_codec(spec(200 << 10), opts, text) == "auto"  # 200 KiB member <= the 256 KiB text limit
    assert _chunk_codec(spec(10 << 20), opts, text) == "cm"
    assert _chunk_codec(spec(10 << 20), Options(level=5, codec="neural"), text) == "neural"


def test_auto_falls_back_to_cm_without_a_usable_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that fails its probe (or is absent) makes ``auto`` use CM, never an error."""
    from mmz import codec as C

    def broken(_: object = None) -> neural.Model:
        raise mmz.MmzError("neural engine self-check failed (test)")

    C._neural_usable.cache_clear()
    monkeypatch.setattr(neural, "cached", broken)
    try:
        text = (SAMPLE / "text" / "debian_handbook_en.txt").read_bytes()[:4000]
        assert C.auto_neural_limit(5, "text") == 0
        frame = mmz.compress(text)
        assert mmz.frame_info(frame)["codec"] == "cm" and mmz.decompress(frame) == text
    finally:
        C._neural_usable.cache_clear()
