"""The mmz trainer under Ray Train (TorchTrainer, CPU workers, DDP over gloo).

    python jobs/train.py --config configs/s.toml --workers 2 --steps 5 [--run-dir checkpoints/ray]

Each worker builds the same model (same seed), samples its own balanced batches (seed + rank) and
DDP averages the gradients; the schedule, losses and MoE stages are those of ``mmz.model.train``.
Rank 0 writes ``RUN_DIR/last.pt`` in the ``mmz train`` checkpoint format (exportable with
``mmz export``) and reports metrics to Ray every step.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train worker body: DDP training for ``config['steps']`` steps."""
    import ray.train
    import ray.train.torch
    import torch

    from mmz.model.config import byte_vocab, config_from_dict
    from mmz.model.data import BalancedSampler, load_corpus
    from mmz.model.train import _set_stage, build_model, compute_loss, lr_at, stage_of

    cfg = config_from_dict(config["recipe"])
    torch.set_num_threads(1)
    rank = ray.train.get_context().get_world_rank()
    world = ray.train.get_context().get_world_size()
    corpus = load_corpus(cfg.data)
    sampler = BalancedSampler(corpus.train, byte_vocab(), cfg.data, cfg.train.seed + rank)
    model = build_model(cfg, cfg.train.seed)
    model = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})
    core = model.module if hasattr(model, "module") else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    tokens = 0
    t0 = time.time()
    for step in range(config["steps"]):
        stage = stage_of(step, cfg)
        _set_stage(core, stage)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        toks, mids = sampler.batch()
        tt, md = torch.from_numpy(toks), torch.from_numpy(mids)
        # Forward through the DDP wrapper so gradients are all-reduced.
        loss, ce, _ = compute_loss(_DdpCall(model), tt, md, cfg, stage)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        tokens += toks.shape[0] * (toks.shape[1] - 1) * world
        metrics = {"step": step + 1, "loss": float(loss.detach()), "bpb": float(ce.mean()) / 0.6931471805599453,
                   "tokens": tokens, "tok_s": tokens / (time.time() - t0), "world": world}
        ckpt = None
        if rank == 0 and step + 1 == config["steps"]:
            rdir = Path(config["run_dir"])
            rdir.mkdir(parents=True, exist_ok=True)
            torch.save({"model": core.state_dict(), "opt": opt.state_dict(), "sampler": sampler.get_state(),
                        "torch_rng": torch.get_rng_state(), "config": cfg.to_dict(),
                        "state": {"step": step + 1, "tokens": tokens, "cpu_seconds": 0.0,
                                  "wall_seconds": time.time() - t0, "val": {}},
                        "data_hash": corpus.data_hash, "vocab": byte_vocab().to_dict()}, rdir / "last.pt")
            (rdir / "metrics.json").write_text(json.dumps(metrics))
            ckpt = ray.train.Checkpoint.from_directory(str(rdir))
        ray.train.report(metrics, checkpoint=ckpt)


class _DdpCall:
    """Adapter giving compute_loss the core model's attributes while calling through DDP."""

    def __init__(self, ddp: Any) -> None:
        self._ddp = ddp
        core = ddp.module if hasattr(ddp, "module") else ddp
        self.vocab = core.vocab

    def __call__(self, tokens: Any, mod: Any) -> Any:
        return self._ddp(tokens, mod)


def run(config_path: str, workers: int, steps: int, run_dir: str) -> dict[str, Any]:
    """Launch TorchTrainer on a local Ray cluster; returns the last reported metrics."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from mmz.model.config import load_config

    cfg = load_config(config_path)
    repo = Path(__file__).resolve().parent.parent
    if not ray.is_initialized():
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(repo / "pipeline")}})
    storage = tempfile.mkdtemp(prefix="mmz-ray-")
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"recipe": cfg.to_dict(), "steps": steps, "run_dir": str(Path(run_dir).resolve())},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}),
        torch_config=None,
        run_config=RunConfig(name="mmz-train", storage_path=storage),
    )
    result = trainer.fit()
    if result.metrics:
        return dict(result.metrics)
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/s.toml")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--run-dir", default="checkpoints/ray")
    a = p.parse_args(argv)
    print(json.dumps(run(a.config, a.workers, a.steps, a.run_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
