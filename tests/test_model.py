"""RWKV-MoE predictor: step vs chunked equivalence, reparameterisation merge, ONNX export, eval, data.

All models here are tiny and random; the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmz.errors import MmzError
from mmz.model.config import ModelConfig, RunConfig, byte_vocab, config_from_dict
from mmz.model.data import split_rows, wav_pcm

REPO = Path(__file__).resolve().parent.parent


def _tiny(**kw: object) -> ModelConfig:
    base = dict(d_model=32, n_layer=2, head_size=16, decay_lora=8, aaa_lora=8, mv_lora=8, gate_lora=8, chunk_len=8)
    base.update(kw)
    return ModelConfig(**base)  # type: ignore[arg-type]


def _random_model(cfg: ModelConfig, seed: int = 0, double: bool = False):  # noqa: ANN202
    torch = pytest.importorskip("torch")
    from mmz.model.model import RwkvMoe

    torch.manual_seed(seed)
    m = RwkvMoe(cfg)
    if double:
        m = m.double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


def _batch(b: int, t: int, seed: int = 1):  # noqa: ANN202
    torch = pytest.importorskip("torch")
    v = byte_vocab()
    g = torch.Generator().manual_seed(seed)
    mod = torch.arange(b) % len(v.modalities)
    tok = torch.randint(0, 256, (b, t), generator=g) + torch.tensor([s for s, _ in v.slices])[mod][:, None]
    tok[:, 0] = v.prefix_base + mod
    return tok, mod


@pytest.mark.parametrize("fade", [False, True])
def test_chunked_equals_recurrent_step(fade: bool) -> None:
    torch = pytest.importorskip("torch")
    m = _random_model(_tiny(fade=fade), double=True)
    tok, mod = _batch(3, 29)
    with torch.no_grad():
        par, _ = m(tok, mod)
        st = [s.double() for s in m.init_state(3)]
        seq = []
        for t in range(tok.shape[1]):
            o, st = m.step(tok[:, t], mod, st)
            seq.append(o)
    fin = torch.isfinite(par)
    assert torch.equal(fin, torch.isfinite(torch.stack(seq, 1)))
    assert (par[fin] - torch.stack(seq, 1)[fin]).abs().max().item() < 1e-9


def test_wkv_chunk_lengths_agree() -> None:
    torch = pytest.importorskip("torch")
    from mmz.model.model import wkv_chunked

    g = torch.Generator().manual_seed(3)
    b, t, d, h = 2, 70, 32, 2
    r, k, v = (torch.randn(b, t, d, generator=g, dtype=torch.float64) for _ in range(3))
    lw = -torch.rand(b, t, d, generator=g, dtype=torch.float64) * 0.6
    kk = torch.nn.functional.normalize(torch.randn(b, t, h, 16, generator=g, dtype=torch.float64), dim=-1).flatten(-2)
    a = torch.rand(b, t, d, generator=g, dtype=torch.float64)
    ref, s_ref = wkv_chunked(r, lw, k, v, -kk, kk * a, h, 1)
    for c in (8, 16, 32):
        y, s = wkv_chunked(r, lw, k, v, -kk, kk * a, h, c)
        assert (y - ref).abs().max().item() < 1e-9
        assert (s - s_ref).abs().max().item() < 1e-9


def test_reparam_merge_keeps_logits() -> None:
    torch = pytest.importorskip("torch")
    m = _random_model(_tiny(reparam=True))
    tok, mod = _batch(4, 40)
    with torch.no_grad():
        before, _ = m(tok, mod)
        n_before = sum(p.numel() for p in m.parameters())
        m.merge_reparam_()
        after, _ = m(tok, mod)
    assert sum(p.numel() for p in m.parameters()) < n_before
    fin = torch.isfinite(before)
    assert (before[fin] - after[fin]).abs().max().item() < 1e-5


def test_vocab_mask_restricts_to_modality_slice() -> None:
    torch = pytest.importorskip("torch")
    m = _random_model(_tiny())
    tok, mod = _batch(5, 10)
    with torch.no_grad():
        lg, _ = m(tok, mod)
    v = byte_vocab()
    assert lg.shape == (5, 10, v.max_slice)
    assert torch.isfinite(lg).all()  # byte layout: every slice is full width
    w = m.head[m.slice_index[mod]]
    h, _ = m.hidden(tok, mod)
    assert torch.allclose(lg[1, 3], h[1, 3] @ w[1].t(), atol=1e-5)
    assert int(m.slice_index[mod[1], 0]) == v.slices[int(mod[1])][0]


def test_router_topk_and_aux_losses() -> None:
    torch = pytest.importorskip("torch")
    from mmz.model.model import Router, router_aux

    r = Router(8, 4, 3, 2)
    with torch.no_grad():
        r.weight.normal_()
    x = torch.randn(50, 8)
    gates, logits, mask = r(x, torch.zeros(50, dtype=torch.long))
    assert torch.equal((gates > 0).sum(-1), torch.full((50,), 2))
    assert torch.allclose(gates.sum(-1), torch.ones(50))
    z, bal = router_aux(logits, mask)
    assert z.item() > 0 and bal.item() >= 0
    uniform = torch.zeros(40, 4)
    umask = torch.zeros(40, 4)
    umask[torch.arange(40), torch.arange(40) % 4] = 1
    assert router_aux(uniform, umask)[1].item() < 1e-9


def test_onnx_matches_torch_over_1000_steps(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from mmz.model.export import check_onnx, export_onnx

    m = _random_model(_tiny(d_model=16, head_size=8, n_layer=2, fade=True))
    m.merge_reparam_()
    path = tmp_path / "m.onnx"
    export_onnx(m, path, fp16=False)
    assert check_onnx(m, path, steps=1000, batch=2) < 1e-5


def _write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path)


def _write_wav(path: Path, samples: np.ndarray) -> None:
    pcm = samples.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def _tiny_corpus(root: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    (root / "dev").mkdir()
    for mod, name, data in [
        ("text", "a.txt", b"the quick brown fox jumps over the lazy dog. " * 60),
        ("structured", "b.csv", b"1,2,3\n4,5,6\n" * 200),
        ("gene", "c.fa", b">x\n" + b"\n".join(rng.choice(list(b"ACGT"), 60).astype(np.uint8).tobytes()
                                               for _ in range(50)) + b"\n"),
    ]:
        (root / "dev" / name).write_bytes(data)
        rows.append((mod, name))
    _write_png(root / "dev" / "d.png", rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    rows.append(("image", "d.png"))
    _write_wav(root / "dev" / "e.wav", (np.sin(np.arange(3000) / 5) * 3000).astype(np.int16))
    rows.append(("speech", "e.wav"))
    lines = ["set\tmodality\tpath\tbytes\traw_bytes\tsha256"]
    lines += [f"dev\t{m}\tdev/{n}\t0\t0\t{n}" for m, n in rows]
    (root / "MANIFEST.tsv").write_text("\n".join(lines) + "\n")


def test_train_export_eval_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from mmz.model.eval import evaluate_paths, evaluate_validation
    from mmz.model.export import export as do_export
    from mmz.model.export import read_safetensors
    from mmz.model.train import train

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _tiny_corpus(corpus)
    cfg = config_from_dict({
        "name": "tiny",
        "model": {"d_model": 16, "n_layer": 1, "head_size": 8, "decay_lora": 4, "aaa_lora": 4, "mv_lora": 4,
                  "gate_lora": 4, "chunk_len": 8},
        "data": {"corpus": str(corpus), "seq_len": 32, "seqs_per_modality": 1, "val_windows": 2},
        "train": {"total_steps": 6, "warmup_steps": 2, "eval_every": 3, "log_every": 2,
                  "run_dir": str(tmp_path / "run")},
    })
    out = train(cfg, max_steps=4, log=lambda s: None)
    assert out["step"] == 4
    out = train(cfg, resume=True, log=lambda s: None)
    assert out["step"] == 6 and out["tokens"] == 6 * 5 * 32
    logs = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any("val_bpb" in r for r in logs) and any("tok_s" in r for r in logs)
    man = do_export(out["checkpoint"], tmp_path / "models", precision="fp32")
    assert man["onnx_check_max_abs_diff"] < 1e-5
    mdir = Path(man["dir"])
    assert mdir.name == man["model_id"][:16]
    w = read_safetensors(mdir / "weights.safetensors")
    assert "blocks.0.att.receptance.weight" in w and not any("rep_" in k for k in w)
    assert man["schedule"]["step"] == 6 and man["tokens_trained"] == 960
    back = train(cfg, init_from=str(mdir), run_dir=str(tmp_path / "run2"), log=lambda s: None)
    assert back["step"] == 6 and back["tokens"] == 960
    for k, v in man["validation_bits_per_byte"].items():
        assert back["val"][k] == pytest.approx(v, abs=1e-4)
    res = evaluate_paths([str(corpus / "dev")], model_dir=str(mdir), batch=8)
    mods = {m["modality"] for m in res["modalities"]}
    assert mods == {"text", "structured", "gene", "image", "audio"}
    for f in res["files"]:
        assert 0.0 < f["bits_per_byte"] < 12.0
    assert res["model"] == man["model_id"]
    val = evaluate_validation(str(corpus), model_dir=str(mdir), max_bytes=64, per_modality=1, batch=4)
    assert {m["modality"] for m in val["modalities"]} == mods
    assert all(f["path"].endswith("#tail") and f["bytes"] == 64 for f in val["files"])


def test_cli_and_eval_import_without_torch() -> None:
    code = ("import sys; import mmz.model.cli, mmz.model.eval, mmz.model.data, mmz.model.config; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": str(REPO / "pipeline"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(MmzError, match="unknown key"):
        config_from_dict({"model": {"d_modl": 3}})
    with pytest.raises(MmzError, match="multiple of head_size"):
        config_from_dict({"model": {"d_model": 30, "head_size": 16}})
    cfg = config_from_dict({})
    assert cfg.digest() == RunConfig().digest()


def test_schedule_stages_and_lr() -> None:
    from mmz.model.train import lr_at, stage_of

    cfg = config_from_dict({"train": {"total_steps": 100, "warmup_steps": 10, "stage_fractions": [0.2, 0.3, 0.5],
                                      "lr": 1.0, "lr_min": 0.0}})
    assert [stage_of(s, cfg) for s in (0, 19, 20, 49, 50, 99)] == [1, 1, 2, 2, 3, 3]
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(30, cfg) == 1.0
    assert lr_at(99, cfg) < 0.01


def test_wav_split_is_msb_first_and_split_is_deterministic() -> None:
    import io

    buf = io.BytesIO()
    p = Path("/nonexistent")
    del p
    samples = np.array([0x1234, -2], dtype=np.int16)
    pcm = samples.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    buf.write(b"RIFF" + struct.pack("<I", len(body)) + body)
    assert wav_pcm(buf.getvalue(), "split") == bytes([0x12, 0x34, 0xFF, 0xFE])
    assert wav_pcm(buf.getvalue(), "le") == pcm
    with pytest.raises(MmzError):
        wav_pcm(b"not a wav file at all", "split")
    rows = [{"modality": "image", "path": f"dev/image/{i}.png"} for i in range(20)]
    plan = split_rows(rows, 0.1)
    assert sum(v == ("file", "val") for v in plan.values()) == 2
    assert plan == split_rows(list(reversed(rows)), 0.1)
    assert split_rows([{"modality": "text", "path": "a"}], 0.1)["a"] == ("tail", "")
