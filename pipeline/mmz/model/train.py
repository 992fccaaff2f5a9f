"""CPU trainer for the RWKV-MoE predictor (``mmz train --config configs/s.toml [--resume]``).

Three-stage MoE schedule over ``total_steps`` (fractions ``stage_fractions``):

1. FFN routers frozen (their random-but-fixed initial routing acts as modality/hash routing);
2. FFN routers train, context (V) routers frozen;
3. everything trains, LR follows a cosine from ``lr`` to ``lr_min``.

Stages 1-2 use linear warm-up then constant ``lr``. Loss = CE + balance_coef * mean CV^2 balance
loss + zloss_coef * mean router z-loss (over the routers that are trainable in the stage).
Checkpoints (``run_dir/last.pt``) every ``checkpoint_minutes`` and at the end; JSONL progress in
``run_dir/log.jsonl``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmz.errors import MmzError
from mmz.model.config import RunConfig, byte_vocab, config_from_dict
from mmz.model.data import BalancedSampler, load_corpus, val_windows

LN2 = math.log(2.0)


def stage_of(step: int, cfg: RunConfig) -> int:
    """Schedule stage (1, 2 or 3) of a 0-based step."""
    f = cfg.train.stage_fractions
    s1 = int(f[0] * cfg.train.total_steps)
    s2 = s1 + int(f[1] * cfg.train.total_steps)
    return 1 if step < s1 else 2 if step < s2 else 3


def lr_at(step: int, cfg: RunConfig) -> float:
    """Learning rate of a 0-based step (warm-up, constant, cosine in stage 3)."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    f = t.stage_fractions
    s3 = int(f[0] * t.total_steps) + int(f[1] * t.total_steps)
    if step < s3:
        return t.lr
    span = max(t.total_steps - s3, 1)
    pos = min((step - s3) / span, 1.0)
    return t.lr_min + 0.5 * (t.lr - t.lr_min) * (1 + math.cos(math.pi * pos))


def build_model(cfg: RunConfig, seed: int):  # noqa: ANN201 - torch type, imported lazily
    """Model with the recipe's seed; routers start random so frozen routing is not degenerate."""
    import torch

    from mmz.model.model import Router, RwkvMoe

    torch.manual_seed(seed)
    model = RwkvMoe(cfg.model, byte_vocab())
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, Router):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.02)
                m.mod_bias.copy_(torch.randn(m.mod_bias.shape, generator=g))
    return model


def _set_stage(model: Any, stage: int) -> None:
    from mmz.model.model import ChannelMix, TimeMix

    for m in model.modules():
        if isinstance(m, ChannelMix) and m.router is not None:
            m.router.requires_grad_(stage != 1)
        if isinstance(m, TimeMix) and m.v_router is not None:
            m.v_router.requires_grad_(stage != 2)


def compute_loss(model: Any, tokens: Any, mod: Any, cfg: RunConfig, stage: int) -> tuple[Any, Any, dict]:
    """(total loss, per-token CE [B, T] in nats, aux stats) for a batch with the prefix at column 0."""
    import torch
    import torch.nn.functional as F

    from mmz.model.model import router_aux

    logits, aux = model(tokens[:, :-1], mod)
    starts = torch.tensor([s for s, _ in model.vocab.slices], dtype=torch.long)[mod]
    target = tokens[:, 1:] - starts[:, None]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none").view_as(target)
    zs, bs = [], []
    for kind, _layer, lg, mask in aux:
        if (kind == "ffn" and stage == 1) or (kind == "v" and stage == 2):
            continue
        z, b = router_aux(lg, mask)
        zs.append(z)
        bs.append(b)
    loss = ce.mean()
    stats: dict[str, float] = {}
    if zs:
        z = torch.stack(zs).mean()
        b = torch.stack(bs).mean()
        loss = loss + cfg.train.zloss_coef * z + cfg.train.balance_coef * b
        stats = {"zloss": float(z.detach()), "balance": float(b.detach())}
    return loss, ce, stats


def evaluate(model: Any, windows: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Validation bits/byte per modality on fixed windows (byte vocabulary: 1 token = 1 byte)."""
    import torch

    out = {}
    model.eval()
    with torch.no_grad():
        for m, (toks, mids) in windows.items():
            t, md = torch.from_numpy(toks), torch.from_numpy(mids)
            _, ce, _ = compute_loss(model, t, md, RunConfig(), 3)
            out[m] = float(ce.mean()) / LN2
    model.train()
    out["mean"] = float(np.mean([v for k, v in out.items()]))
    return out


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def init_from_export(model: Any, model_dir: str | Path) -> dict[str, Any]:
    """Load the merged weights of an exported model into a (reparameterised) training model.

    The high-rank branches keep ``B = 0`` so the function is exactly the exported one; returns the
    training counters (step, tokens, cpu/wall seconds) recorded in the manifest's schedule.
    """
    import torch

    from mmz.model.export import read_safetensors

    d = Path(model_dir)
    man = json.loads((d / "manifest.json").read_text())
    weights = read_safetensors(d / man["files"]["weights"])
    sd = model.state_dict()
    missing = [k for k in sd if k not in weights and ".rep_" not in k]
    if missing:
        raise MmzError(f"{d}: weights lack {missing[:5]} (different architecture?)")
    with torch.no_grad():
        for k, v in weights.items():
            if k not in sd or tuple(sd[k].shape) != v.shape:
                raise MmzError(f"{d}: weight {k} shape {v.shape} does not fit the config")
            sd[k].copy_(torch.from_numpy(v.astype(np.float32)))
        for name, p in model.named_parameters():
            if name.endswith("rep_b"):
                p.zero_()
    return {"step": int(man["schedule"]["step"]), "tokens": int(man["tokens_trained"]),
            "cpu_seconds": float(man["cpu_hours"]) * 3600, "wall_seconds": float(man["wall_hours"]) * 3600,
            "val": {}, "init_from": {"model_id": man["model_id"], "dir": d.name,
                                     "recipe_command": man.get("recipe", {}).get("command", "")}}


def train(cfg: RunConfig, resume: bool = False, max_steps: int | None = None, max_minutes: float | None = None,
          log: Callable[[str], None] | None = None, run_dir: str | None = None,
          init_from: str | None = None) -> dict[str, Any]:
    """Train (or resume) per ``cfg``; returns the final checkpoint summary.

    Args:
        cfg: the recipe.
        resume: continue from ``run_dir/last.pt`` (model, optimizer, sampler RNG, step, counters).
        max_steps: stop after this many steps in this call (the schedule still spans total_steps).
        max_minutes: stop after this wall time in this call.
        log: progress printer (default: stderr).
        run_dir: override ``cfg.train.run_dir``.
        init_from: start from an exported model directory (weights + schedule position; fresh
            optimizer state) instead of a checkpoint — how a new session continues the shipped model.
    """
    import torch

    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    torch.set_num_threads(cfg.train.threads)
    rdir = Path(run_dir or cfg.train.run_dir)
    rdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = rdir / "last.pt"
    t_load = time.time()
    corpus = load_corpus(cfg.data)
    vocab = byte_vocab()
    sampler = BalancedSampler(corpus.train, vocab, cfg.data, cfg.train.seed)
    windows = val_windows(corpus.val, vocab, cfg.data)
    log(f"data loaded in {time.time() - t_load:.1f}s: {json.dumps(corpus.summary())} hash={corpus.data_hash[:16]}")
    model = build_model(cfg, cfg.train.seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "mod_bias" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "mod_bias" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.train.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.train.lr, betas=(0.9, 0.99))
    state: dict[str, Any] = {"step": 0, "tokens": 0, "cpu_seconds": 0.0, "wall_seconds": 0.0, "val": {}}
    if resume:
        if not ckpt_path.is_file():
            raise MmzError(f"--resume: {ckpt_path} does not exist (start without --resume)")
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        old = config_from_dict(ck["config"])
        if old.model != cfg.model:
            raise MmzError(f"--resume: [model] in the config differs from the checkpoint {ckpt_path}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sampler.set_state(ck["sampler"])
        torch.set_rng_state(ck["torch_rng"])
        state = ck["state"]
        log(f"resumed from {ckpt_path} at step {state['step']} ({state['tokens']} tokens)")
    elif init_from:
        state = init_from_export(model, init_from)
        log(f"initialised from {init_from} at step {state['step']} ({state['tokens']} tokens)")
    logf = (rdir / "log.jsonl").open("a")
    t0, c0 = time.time(), time.process_time()
    base_wall, base_cpu = state["wall_seconds"], state["cpu_seconds"]
    last_ckpt = time.time()
    step0 = state["step"]
    win_t, win_tok = time.time(), 0
    toks_per_step = len(sampler.mods) * cfg.data.seqs_per_modality * cfg.data.seq_len

    def save() -> None:
        state["wall_seconds"] = base_wall + time.time() - t0
        state["cpu_seconds"] = base_cpu + time.process_time() - c0
        _atomic_save({"model": model.state_dict(), "opt": opt.state_dict(), "sampler": sampler.get_state(),
                      "torch_rng": torch.get_rng_state(), "config": cfg.to_dict(), "state": state,
                      "data_hash": corpus.data_hash, "vocab": vocab.to_dict()}, ckpt_path)

    while state["step"] < cfg.train.total_steps:
        step = state["step"]
        if max_steps is not None and step - step0 >= max_steps:
            break
        if max_minutes is not None and time.time() - t0 > 60 * max_minutes:
            break
        stage = stage_of(step, cfg)
        _set_stage(model, stage)
        lr = lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        toks, mids = sampler.batch()
        tt, md = torch.from_numpy(toks), torch.from_numpy(mids)
        loss, ce, stats = compute_loss(model, tt, md, cfg, stage)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip))
        opt.step()
        state["step"] += 1
        state["tokens"] += toks_per_step
        win_tok += toks_per_step
        if state["step"] % cfg.train.log_every == 0 or state["step"] == 1:
            dt = time.time() - win_t
            per_mod = {m: float(ce.detach()[mids == vocab.modality_id(m)].mean()) / LN2 for m in sampler.mods}
            rec = {"step": state["step"], "stage": stage, "lr": lr, "loss": float(loss.detach()),
                   "bpb": float(ce.detach().mean()) / LN2, "bpb_mod": per_mod, "grad_norm": gnorm,
                   "tok_s": win_tok / max(dt, 1e-9), "tokens": state["tokens"],
                   "wall_s": base_wall + time.time() - t0, **stats}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            log(f"step {rec['step']} st{stage} lr {lr:.2e} loss {rec['loss']:.4f} bpb {rec['bpb']:.3f} "
                f"tok/s {rec['tok_s']:.0f} " + " ".join(f"{m[:4]}={v:.2f}" for m, v in per_mod.items()))
            win_t, win_tok = time.time(), 0
        if state["step"] % cfg.train.eval_every == 0:
            state["val"] = evaluate(model, windows)
            logf.write(json.dumps({"step": state["step"], "val_bpb": state["val"]}) + "\n")
            logf.flush()
            log(f"val step {state['step']}: " + " ".join(f"{k}={v:.3f}" for k, v in state["val"].items()))
        if time.time() - last_ckpt > 60 * cfg.train.checkpoint_minutes:
            save()
            last_ckpt = time.time()
            log(f"checkpoint {ckpt_path} step {state['step']}")
    state["val"] = evaluate(model, windows)
    save()
    logf.write(json.dumps({"step": state["step"], "val_bpb": state["val"], "final": True}) + "\n")
    logf.close()
    log(f"saved {ckpt_path} step {state['step']} val " + json.dumps(state["val"]))
    return {"checkpoint": str(ckpt_path), **state}
