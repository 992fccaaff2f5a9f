"""jobs/train.py under Ray Train with 2 CPU workers (slow: starts a local Ray cluster)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_ray_torchtrainer_two_workers(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("ray.train.torch")
    from test_model import _tiny_corpus

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _tiny_corpus(corpus)
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        'name = "tiny"\n[model]\nd_model = 16\nn_layer = 1\nhead_size = 8\ndecay_lora = 4\naaa_lora = 4\n'
        'mv_lora = 4\ngate_lora = 4\nchunk_len = 8\n'
        f'[data]\ncorpus = "{corpus}"\nseq_len = 32\nseqs_per_modality = 1\n[train]\ntotal_steps = 10\n'
    )
    spec = importlib.util.spec_from_file_location("jobs_train", REPO / "jobs" / "train.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    metrics = mod.run(str(cfg), workers=2, steps=3, run_dir=str(tmp_path / "run"))
    assert metrics["world"] == 2 and metrics["step"] == 3
    assert (tmp_path / "run" / "last.pt").is_file()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["tokens"] == 3 * 2 * 5 * 32
