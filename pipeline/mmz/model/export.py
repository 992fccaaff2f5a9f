"""Checkpoint -> shipped model directory (``mmz export CHECKPOINT -o DIR``).

Writes ``DIR/<model-id-prefix>/``:

* ``model.onnx`` — the recurrent step graph (opset 17), see SPEC.md §5 for inputs/outputs;
* ``weights.safetensors`` — merged weights (reparameterisation folded), names/shapes per SPEC.md §4,
  in the safetensors container (8-byte little-endian header length, JSON header, raw little-endian data);
* ``manifest.json`` — model id (sha256 of model.onnx), vocabulary, config, recipe, data hash, validation
  bits/byte, tokens trained, CPU hours and the schedule position for resuming.

With ``precision="fp16"`` the weights are rounded to float16 (the ONNX file stores float16 initializers
followed by Cast-to-float32 nodes, so arithmetic stays float32); ``"auto"`` picks fp16 when the
validation bits/byte changes by at most 1 %.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmz.errors import MmzError

FORMAT = "mmz-rwkv-moe/1"
OPSET = 17


def write_safetensors(tensors: dict[str, np.ndarray], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file (F32/F16/I64 arrays, little-endian, tensors in name order)."""
    dtypes = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<i8"): "I64"}
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs, off = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        if a.dtype not in dtypes:
            raise MmzError(f"write_safetensors: unsupported dtype {a.dtype} for {name}")
        b = a.tobytes()
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Read a file written by :func:`write_safetensors`."""
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    kinds = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=kinds[info["dtype"]]).reshape(info["shape"])
    return out


def load_checkpoint(path: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model with merged reparameterisation, RunConfig, raw checkpoint dict)."""
    import torch

    from mmz.model.config import config_from_dict
    from mmz.model.train import build_model

    p = Path(path)
    if not p.is_file():
        raise MmzError(f"checkpoint {p} not found (train with: mmz train --config configs/s.toml)")
    ck = torch.load(p, map_location="cpu", weights_only=False)
    cfg = config_from_dict(ck["config"])
    model = build_model(cfg, cfg.train.seed)
    model.load_state_dict(ck["model"])
    model.eval()
    model.merge_reparam_()
    return model, cfg, ck


class StepGraph:
    """Builds the torch module traced into ONNX (inputs/outputs named per SPEC.md §5)."""

    @staticmethod
    def names(model: Any) -> tuple[list[str], list[str]]:
        """(state input names, state output names) in graph order."""
        kinds = ["att_x", "wkv", "ffn_x"] + (["fade_hist"] if model.cfg.fade else [])
        ins = [f"state_{i}_{k}" for i in range(len(model.blocks)) for k in kinds]
        return ins, ["new_" + s for s in ins]

    @staticmethod
    def module(model: Any) -> Any:
        import torch

        class _Step(torch.nn.Module):
            def __init__(self, m: Any) -> None:
                super().__init__()
                self.m = m

            def forward(self, tokens: Any, modality: Any, *state: Any) -> Any:
                logits, new, gates = self.m.step(tokens, modality, list(state), return_gates=True)
                return (logits, *new, gates)

        return _Step(model)


def _fp16_onnx(src: Path, dst: Path) -> None:
    """Store every float32 initializer as float16 + a Cast node back to float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    casts, keep = [], []
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT and np.prod(init.dims) > 1:
            arr = numpy_helper.to_array(init).astype(np.float16)
            new = numpy_helper.from_array(arr, init.name + "__fp16")
            keep.append(new)
            casts.append(helper.make_node("Cast", [new.name], [init.name], to=TensorProto.FLOAT))
        else:
            keep.append(init)
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))


def _round_fp16_(model: Any) -> None:
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.float16).to(torch.float32))


def export_onnx(model: Any, path: Path, fp16: bool) -> None:
    """Trace ``model.step`` to ``path`` (opset 17, dynamic batch)."""
    import torch

    ins, outs = StepGraph.names(model)
    b = 2
    state = model.init_state(b)
    tokens = torch.zeros(b, dtype=torch.long)
    mod = torch.zeros(b, dtype=torch.long)
    dyn = {n: {0: "batch"} for n in ["tokens", "modality", "logits", *ins, *outs, "router_gates"]}
    tmp = path.with_suffix(".fp32.onnx")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(StepGraph.module(model), (tokens, mod, *state), str(tmp), dynamo=False,
                          opset_version=OPSET, input_names=["tokens", "modality", *ins],
                          output_names=["logits", *outs, "router_gates"], dynamic_axes=dyn, do_constant_folding=True)
    if fp16:
        _fp16_onnx(tmp, path)
        tmp.unlink()
    else:
        tmp.replace(path)


def check_onnx(model: Any, path: Path, steps: int = 1000, batch: int = 3, seed: int = 0) -> float:
    """Max |ONNX Runtime - PyTorch| logit difference over ``steps`` recurrent ONNX steps of random tokens.

    The PyTorch reference is the parallel (chunked) form over the same sequence, itself equal to the
    recurrent step form (tests/test_model.py), which keeps this check fast.
    """
    import onnxruntime as ort
    import torch

    ins, _ = StepGraph.names(model)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    n_mod = len(model.vocab.modalities)
    mod = torch.arange(batch) % n_mod
    starts = torch.tensor([s for s, _ in model.vocab.slices])[mod]
    tok = starts[:, None] + torch.randint(0, 256, (batch, steps), generator=g)
    tok[:, 0] = model.vocab.prefix_base + mod
    with torch.no_grad():
        ref, _ = model(tok, mod)
    ref_np = ref.numpy()
    st_o = [s.numpy() for s in model.init_state(batch)]
    worst = 0.0
    for t in range(steps):
        feed = {"tokens": tok[:, t].numpy(), "modality": mod.numpy(), **dict(zip(ins, st_o, strict=True))}
        res = sess.run(None, feed)
        st_o = res[1:1 + len(ins)]
        fin = np.isfinite(ref_np[:, t])
        worst = max(worst, float(np.abs(res[0][fin] - ref_np[:, t][fin]).max()))
    return worst


def recipe(cfg: Any, state: dict[str, Any]) -> dict[str, Any]:
    """The manifest's recipe: config, its digest, and the command chain that rebuilds the weights.

    A run continued from an exported model (``mmz train --init-from``) names that model and the
    recipe that built it, so the chain back to random initialisation stays reproducible.
    """
    train = f"mmz train --config configs/{cfg.name}.toml"
    parent = state.get("init_from")
    if parent:
        train += f" --init-from pipeline/mmz/models/{parent['dir']}"
    out: dict[str, Any] = {"config": cfg.to_dict(), "config_sha256": cfg.digest(),
                           "command": f"{train} && mmz export {cfg.train.run_dir}/last.pt -o pipeline/mmz/models"}
    if parent:
        out["init_from"] = parent
    return out


def export(checkpoint: str | Path, out_dir: str | Path, precision: str = "auto", check: bool = True,
           replace_older: bool = True) -> dict[str, Any]:
    """Export a checkpoint; returns the manifest. See module docstring."""
    import onnx
    import torch

    from mmz.model.data import load_corpus, val_windows
    from mmz.model.model import count_params, macs_per_token
    from mmz.model.train import evaluate, lr_at, stage_of

    model, cfg, ck = load_checkpoint(checkpoint)
    vocab = model.vocab
    corpus = load_corpus(cfg.data)
    windows = val_windows(corpus.val, vocab, cfg.data)
    torch.set_num_threads(cfg.train.threads)
    val32 = evaluate(model, windows)
    fp16_model = load_checkpoint(checkpoint)[0]
    _round_fp16_(fp16_model)
    val16 = evaluate(fp16_model, windows)
    rel = max(abs(val16[m] - val32[m]) / val32[m] for m in val32)
    if precision == "auto":
        precision = "fp16" if rel <= 0.01 else "fp32"
    if precision == "fp16":
        model = fp16_model
    val = val16 if precision == "fp16" else val32
    base = Path(out_dir)
    base.mkdir(parents=True, exist_ok=True)
    stage_dir = base / f".export-{int(time.time() * 1000)}"
    stage_dir.mkdir()
    try:
        onnx_path = stage_dir / "model.onnx"
        export_onnx(model, onnx_path, precision == "fp16")
        onnx.checker.check_model(str(onnx_path))
        max_diff = check_onnx(model, onnx_path, steps=200) if check else None
        model_id = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
        np_dtype = np.float16 if precision == "fp16" else np.float32
        weights = {k: v.detach().numpy().astype(np_dtype) for k, v in model.state_dict().items()}
        write_safetensors(weights, stage_dir / "weights.safetensors", {"format": FORMAT, "model_id": model_id})
        st = ck["state"]
        step = int(st["step"])
        ins, outs = StepGraph.names(model)
        manifest = {
            "format": FORMAT,
            "model_id": model_id,
            "name": cfg.name,
            "files": {"onnx": "model.onnx", "weights": "weights.safetensors",
                      "onnx_sha256": model_id,
                      "weights_sha256": hashlib.sha256((stage_dir / "weights.safetensors").read_bytes()).hexdigest()},
            "precision": precision,
            "tokenizer": {"kind": "byte", "audio_layout": cfg.data.audio_layout, "image_layout": cfg.data.image_layout,
                          "vocab_id": "byte-v1", "vocab": vocab.to_dict()},
            "onnx": {"opset": OPSET, "inputs": ["tokens", "modality", *ins],
                     "outputs": ["logits", *outs, "router_gates"],
                     "state_shapes": {n: list(s.shape[1:]) for n, s in zip(ins, model.init_state(1), strict=True)},
                     "logits": "slice logits [B, max_slice]; entries past the slice size are -inf"},
            "config": cfg.to_dict()["model"],
            "recipe": recipe(cfg, ck["state"]),
            "data_hash": ck.get("data_hash", corpus.data_hash),
            "seed": cfg.train.seed,
            "validation_bits_per_byte": {k: round(v, 5) for k, v in val.items()},
            "validation_bits_per_byte_fp32": {k: round(v, 5) for k, v in val32.items()},
            "validation_note": f"{cfg.data.val_windows} windows x {cfg.data.seq_len} tokens per modality, "
                               "zero initial state (pessimistic vs whole streams); see mmz eval",
            "params": count_params(model),
            "macs_per_token": macs_per_token(cfg.model, vocab),
            "tokens_trained": int(st["tokens"]),
            "cpu_hours": round(st["cpu_seconds"] / 3600, 4),
            "wall_hours": round(st["wall_seconds"] / 3600, 4),
            "schedule": {"step": step, "total_steps": cfg.train.total_steps,
                         "stage": stage_of(min(step, cfg.train.total_steps - 1), cfg),
                         "lr": lr_at(min(step, cfg.train.total_steps - 1), cfg),
                         "resume": f"mmz train --config configs/{cfg.name}.toml --resume "
                                   "(needs the checkpoint; from shipped weights see SPEC.md §7)"},
            "onnx_check_max_abs_diff": max_diff,
            "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "python": platform.python_version()},
        }
        (stage_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        final = base / model_id[:16]
        if final.exists():
            shutil.rmtree(final)
        stage_dir.rename(final)
    finally:
        if stage_dir.exists():
            shutil.rmtree(stage_dir)
    if replace_older:
        for other in base.iterdir():
            mf = other / "manifest.json"
            if other != final and mf.is_file():
                try:
                    om = json.loads(mf.read_text())
                except ValueError:
                    continue
                if om.get("format") == FORMAT and om.get("name") == cfg.name:
                    shutil.rmtree(other)
    manifest["dir"] = str(final)
    return manifest
