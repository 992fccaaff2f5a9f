"""Equal-budget ablation: ``python -m mmz.model.ablate --config configs/s.toml --steps 200 -o OUT.json``.

Trains each variant for the same number of steps (same data order, seed and schedule compressed to
``steps``), then reports validation bits/byte (fixed windows), params, MACs/token and the ONNX
Runtime step throughput (KB/s = tokens/s at 1 byte/token, one thread, batch 1 and batch 16).
Variants: ``base`` (the config), ``fade`` (fade = true), ``audio_le`` (little-endian audio bytes).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmz.model.config import RunConfig, load_config


def _variants(cfg: RunConfig, names: list[str]) -> dict[str, RunConfig]:
    out = {}
    for n in names:
        c = copy.deepcopy(cfg)
        if n == "fade":
            c.model.fade = True
        elif n == "audio_le":
            c.data.audio_layout = "le"
        elif n != "base":
            raise SystemExit(f"unknown variant {n}")
        out[n] = c
    return out


def onnx_speed(onnx_path: Path, manifest_inputs: list[str], shapes: dict[str, list[int]], batch: int,
               steps: int = 300) -> float:
    """Tokens/s of the step graph in ONNX Runtime, one thread."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    names = manifest_inputs[2:]
    st = {k: np.zeros((batch, *shapes[k]), dtype=np.float32) for k in names}
    tok = np.zeros(batch, dtype=np.int64)
    mod = np.zeros(batch, dtype=np.int64)
    t0 = time.perf_counter()
    for i in range(steps):
        out = sess.run(None, {"tokens": tok + (i % 256), "modality": mod, **st})
        st = dict(zip(names, out[1:1 + len(names)], strict=True))
    return steps * batch / (time.perf_counter() - t0)


def train_speed(cfg: RunConfig, threads: int, steps: int = 3) -> float:
    """Training tokens/s (forward + backward + AdamW) on random tokens with the recipe's batch shape."""
    import torch

    from mmz.model.train import build_model, compute_loss

    torch.set_num_threads(threads)
    model = build_model(cfg, cfg.train.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    n_mod = len(cfg.data.modalities)
    b, t = n_mod * cfg.data.seqs_per_modality, cfg.data.seq_len
    mod = torch.arange(b) % n_mod
    tok = torch.randint(0, 256, (b, t + 1)) + mod[:, None] * 256
    tok[:, 0] = model.vocab.prefix_base + mod
    t0 = 0.0
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        loss, _, _ = compute_loss(model, tok, mod, cfg, 3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * b * t / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    """Run the ablation; prints and writes a JSON table."""
    from mmz.model.export import export
    from mmz.model.model import macs_per_token
    from mmz.model.train import train

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="configs/s.toml")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--variants", default="base,fade,audio_le")
    p.add_argument("--work", default="checkpoints/ablate")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--speed", action="store_true", help="only measure training tokens/s with 1 and 2 threads")
    a = p.parse_args(argv)
    if a.speed:
        cfg = load_config(a.config)
        res = {f"threads_{n}": round(train_speed(cfg, n), 1) for n in (1, 2)}
        Path(a.output).write_text(json.dumps(res, indent=1) + "\n")
        print(json.dumps(res))
        return 0
    base = load_config(a.config)
    base.train.total_steps = a.steps
    base.train.warmup_steps = min(base.train.warmup_steps, max(a.steps // 10, 1))
    base.train.eval_every = 10 ** 9
    results: dict[str, Any] = {"steps": a.steps, "config": a.config, "variants": {}}
    for name, cfg in _variants(base, a.variants.split(",")).items():
        rdir = Path(a.work) / name
        cfg.train.run_dir = str(rdir)
        t0 = time.time()
        out = train(cfg, run_dir=str(rdir), log=lambda s: print(s, file=sys.stderr, flush=True))
        wall = time.time() - t0
        man = export(out["checkpoint"], rdir / "export", precision="fp32", check=False)
        onnx_path = Path(man["dir"]) / "model.onnx"
        io_names, shapes = man["onnx"]["inputs"], man["onnx"]["state_shapes"]
        r = {"val_bpb": out["val"], "params": man["params"], "macs_per_token": macs_per_token(cfg.model)["total"],
             "train_wall_s": round(wall, 1), "train_tok_s": round(out["tokens"] / wall, 1),
             "onnx_kbps_b1": round(onnx_speed(onnx_path, io_names, shapes, 1) / 1e3, 2),
             "onnx_kbps_b16": round(onnx_speed(onnx_path, io_names, shapes, 16) / 1e3, 2)}
        results["variants"][name] = r
        print(json.dumps({name: r}), flush=True)
        Path(a.output).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
