"""Regenerate the neural golden vectors (run only when ENGINE_VERSION changes on purpose).

Writes ``tiny.mmznw`` (a tiny random RWKV-MoE with FADE, 2 modalities, MMZNW001 container) and
``golden.txt`` (``key=value`` lines: probe hash, XXH3 of logits bits and of quantized CDFs over a
fixed token matrix, XXH3 of the neural payload of a fixed byte string). Checked by
``rust/core/src/neural/golden.rs`` (also under qemu, bench/qemu_golden.sh) and tests/test_neural.py.

    .venv/bin/python tests/golden/neural/make_golden.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmz import _core
from mmz.neural.weights import pack

HERE = Path(__file__).resolve().parent
CONFIG = {"d_model": 16, "n_layer": 2, "head_size": 8, "ffn_mult": 4, "n_experts": 3, "top_k": 2, "moe_v": 1,
          "moe_ffn": 1, "fade": 1, "fade_kernel": 3, "decay_lora": 4, "aaa_lora": 4, "mv_lora": 4, "gate_lora": 4}
VOCAB = {"modalities": ["text", "image"], "slices": [[0, 256], [256, 256]], "prefix_base": 512, "size": 514}
ROWS, STEPS = 2, 40


def tiny_tensors(seed: int = 7) -> dict[str, np.ndarray]:
    """Random weights with the SPEC §4 names/shapes for CONFIG/VOCAB."""
    rng = np.random.default_rng(seed)
    d, n, e, m, v = 16, 8, 3, 2, 514
    h, f, r = d // n, d * 2, 4

    def t(*shape: int, s: float = 0.3, c: float = 0.0) -> np.ndarray:
        return (c + s * rng.standard_normal(shape)).astype(np.float32)

    w = {"emb.weight": t(v, d, s=1.0), "head": t(v, d, s=0.5), "ln_out.weight": t(d, c=1.0), "ln_out.bias": t(d),
         "blocks.0.ln0.weight": t(d, c=1.0), "blocks.0.ln0.bias": t(d)}
    for layer in range(2):
        p = f"blocks.{layer}."
        a = p + "att."
        for nm in ("ln1", "ln2"):
            w[f"{p}{nm}.weight"], w[f"{p}{nm}.bias"] = t(d, c=1.0), t(d)
        for nm in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "a0", "k_k", "k_a"):
            w[a + nm] = t(d, c=0.5)
        w[a + "w0"] = t(d, c=-2.0)
        w[a + "w1"], w[a + "w2"] = t(d, r), t(r, d)
        w[a + "a1"], w[a + "a2"] = t(d, r), t(r, d)
        w[a + "g1"], w[a + "g2"] = t(d, r), t(r, d)
        if layer > 0:
            w[a + "v0"], w[a + "v1"], w[a + "v2"] = t(d, c=0.5), t(d, r), t(r, d)
        w[a + "r_k"] = t(h, n)
        for nm in ("receptance", "key", "output"):
            w[f"{a}{nm}.weight"] = t(d, d)
        for k in range(e):
            w[f"{a}value.{k}.weight"] = t(d, d)
            w[f"{p}ffn.key.{k}"], w[f"{p}ffn.value.{k}"] = t(f, d), t(d, f)
        w[a + "v_router.weight"], w[a + "v_router.mod_bias"] = t(e, d), t(m, e)
        w[p + "ffn.router.weight"], w[p + "ffn.router.mod_bias"] = t(e, d), t(m, e)
        w[a + "ln_x.weight"], w[a + "ln_x.bias"] = t(d, c=1.0), t(d)
        w[p + "ffn.x_k"] = t(d, c=0.5)
        w[p + "fade.conv"] = t(3, d)
        w[p + "fade.gate.weight"], w[p + "fade.gate.bias"] = t(d, d), t(d)
        w[p + "fade.ref_u.weight"], w[p + "fade.ref_v.weight"] = t(d // 2, d), t(d // 2, d)
        w[p + "fade.ref_o.weight"] = t(d, d // 2)
    return w


def golden_tokens() -> tuple[np.ndarray, list[int]]:
    """Fixed token matrix [ROWS, STEPS] (prefix first) and row modalities."""
    st = 12345
    toks = np.zeros((ROWS, STEPS), dtype=np.uint32)
    for r in range(ROWS):
        toks[r, 0] = 512 + r
        for s in range(1, STEPS):
            st = (st * 1103515245 + 12345) % (1 << 31)
            toks[r, s] = 256 * r + (st >> 16) % 256
    return toks, list(range(ROWS))


GOLDEN_TEXT = b"golden vector: the quick brown fox jumps over the lazy dog 0123456789" * 3


def golden_image(rows: int = 200) -> tuple[bytes, bytes]:
    """A 7-byte header, ``rows`` rows of a 24-pixel-wide RGB image, a 3-byte tail, and its hint
    (as golden.rs builds them)."""
    px = bytes((x * 7 + y * 3 + c * 60 + (x * y) % 11) & 255 for y in range(rows) for x in range(24) for c in range(3))
    data = b"header:" + px + b"end"
    return data, _core.make_hint("image", (3, 1, False, False, 24, 7, 7 + len(px), 0))


def compute(container: bytes) -> dict[str, int]:
    """The golden values of a container, computed by the current engine."""
    eng = _core.NeuralEngine(container, VOCAB["modalities"])
    toks, mods = golden_tokens()
    lg = np.frombuffer(eng.run_logits(toks.astype("<u4").tobytes(), mods, STEPS), "<f4").reshape(ROWS * STEPS, -1)
    cdfs = np.asarray(_core.quantize_logits(np.ascontiguousarray(lg), _core.NEURAL_PRECISION), dtype="<u4").tobytes()
    hint = _core.make_hint("text", None)
    payload = eng.encode_payload(GOLDEN_TEXT, 1, hint, 1, 1)
    mixed = eng.encode_payload(GOLDEN_TEXT, 1, hint, 1, 1, True)
    cm_mixed = eng.encode_payload(GOLDEN_TEXT, 1, hint, 1, 1, False, True)
    cm_group = eng.encode_payload(GOLDEN_TEXT * 40, 1, hint, 1, 1, False, False, True)  # 3 sub-streams, G = 3
    img, img_hint = golden_image()
    sample = bytes(eng.encode_sample_mixed(img, 1, img_hint, 1, 1))  # 4 sub-streams, G = 2
    return {"probe": int(eng.probe_hash), "logits": _core.xxh3(lg.tobytes()), "cdfs": _core.xxh3(cdfs),
            "payload": _core.xxh3(bytes(payload)), "payload_len": len(payload),
            "mixed_payload": _core.xxh3(bytes(mixed)), "mixed_payload_len": len(mixed),
            "cm_mixed_payload_len": len(cm_mixed), "cm_mixed_payload": _core.xxh3(bytes(cm_mixed)),
            "cm_group_payload_len": len(cm_group), "cm_group_payload": _core.xxh3(bytes(cm_group)),
            "sample_payload_len": len(sample), "sample_payload": _core.xxh3(sample)}


def main() -> None:
    """Write tiny.mmznw and golden.txt."""
    container = pack(tiny_tensors(), CONFIG, VOCAB)
    (HERE / "tiny.mmznw").write_bytes(container)
    vals = compute(container)
    (HERE / "golden.txt").write_text("".join(f"{k}={v:x}\n" for k, v in vals.items()))
    print(vals)


if __name__ == "__main__":
    main()
