"""``mmz eval``: cross-entropy bits/byte of an exported model with ONNX Runtime (no torch).

Each file becomes its model byte stream (see :mod:`mmz.model.data`); the stream is cut into
``batch`` contiguous segments that are coded in lock-step, each from a fresh state that starts with
the modality prefix token (the codec's chunks are independent the same way). bits/byte = total
-log2 p(token) / stream bytes (raw pixel / PCM bytes for images and audio, as in baselines.tsv).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mmz.errors import MmzError
from mmz.model.config import DataConfig
from mmz.model.data import FOLD, file_tokens_bytes

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
FORMAT = "mmz-rwkv-moe/1"


def default_model_dir() -> Path:
    """``$MMZ_MODEL`` if set, else the most recently exported model under ``mmz/models/``."""
    env = os.environ.get("MMZ_MODEL")
    if env:
        return Path(env)
    found = []
    for mf in MODELS_DIR.glob("*/manifest.json"):
        try:
            m = json.loads(mf.read_text())
        except ValueError:
            continue
        if m.get("format") == FORMAT:
            found.append((m.get("exported", ""), mf.parent))
    if not found:
        raise MmzError(f"no exported model in {MODELS_DIR}; pass --model DIR or run mmz export")
    return max(found)[1]


class OnnxPredictor:
    """The exported step graph in ONNX Runtime (single-threaded by default)."""

    def __init__(self, model_dir: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        d = Path(model_dir)
        mf = d / "manifest.json"
        if not mf.is_file():
            raise MmzError(f"{d} has no manifest.json (not an exported mmz model)")
        self.manifest = json.loads(mf.read_text())
        if self.manifest.get("format") != FORMAT:
            raise MmzError(f"{mf}: format {self.manifest.get('format')!r}, expected {FORMAT!r}")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(d / self.manifest["files"]["onnx"]), so,
                                         providers=["CPUExecutionProvider"])
        self.vocab = self.manifest["tokenizer"]["vocab"]
        self.state_names = self.manifest["onnx"]["inputs"][2:]
        self.state_shapes = self.manifest["onnx"]["state_shapes"]

    def modality_id(self, modality: str) -> int:
        """Index of a model modality."""
        try:
            return self.vocab["modalities"].index(modality)
        except ValueError:
            raise MmzError(f"model has no modality {modality!r} (has {self.vocab['modalities']})") from None

    def stream_bits(self, data: np.ndarray, modality: str, batch: int = 64
                    ) -> tuple[float, np.ndarray]:
        """(total bits, selection counts [n_layer, 2, E]) to code byte stream ``data``."""
        n = int(data.size)
        if n == 0:
            return 0.0, np.zeros(0)
        mid = self.modality_id(modality)
        start, size = self.vocab["slices"][mid]
        b = max(1, min(batch, n))
        seg = -(-n // b)
        b = -(-n // seg)
        pad = np.zeros(b * seg, dtype=np.int64)
        pad[:n] = data
        segs = pad.reshape(b, seg)
        valid = (np.arange(b * seg) < n).reshape(b, seg)
        state = {k: np.zeros((b, *self.state_shapes[k]), dtype=np.float32) for k in self.state_names}
        mods = np.full(b, mid, dtype=np.int64)
        tok = np.full(b, self.vocab["prefix_base"] + mid, dtype=np.int64)
        bits = 0.0
        counts = None
        rows = np.arange(b)
        for t in range(seg):
            out = self.sess.run(None, {"tokens": tok, "modality": mods, **state})
            logits = out[0][:, :size].astype(np.float64)
            gates = out[-1]
            mx = logits.max(1, keepdims=True)
            lse = mx[:, 0] + np.log(np.exp(logits - mx).sum(1))
            target = segs[:, t]
            nll = (lse - logits[rows, target]) / np.log(2.0)
            v = valid[:, t]
            bits += float(nll[v].sum())
            sel = (gates[v] > 0).sum(0)
            counts = sel if counts is None else counts + sel
            state = dict(zip(self.state_names, out[1:1 + len(self.state_names)], strict=True))
            tok = target + start
        return bits, counts


def _modality_of(path: Path, head: bytes, forced: str | None) -> str | None:
    if forced:
        return forced
    try:
        from mmz.modality import detect
    except ImportError:
        detect = None
    if detect is not None:
        m = detect(head, path.name)
    else:
        m = {".png": "image", ".wav": "audio", ".csv": "structured", ".sql": "structured",
             ".fa": "gene", ".fastq": "gene"}.get(path.suffix.lower(), "text")
    m = FOLD.get(m, m)
    return m if m in ("text", "structured", "gene", "image", "audio") else None


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise MmzError(f"{p}: no such file or directory")
    return out


def evaluate_paths(paths: list[str], model_dir: str | None = None, max_bytes: int = 0, batch: int = 64,
                   modality: str | None = None) -> dict[str, Any]:
    """bits/byte per file and per modality (JSON shape of ``mmz eval --json``)."""
    pred = OnnxPredictor(model_dir or default_model_dir())
    tok = pred.manifest["tokenizer"]
    dcfg = DataConfig(audio_layout=tok["audio_layout"], image_layout=tok["image_layout"])
    files, agg, routing = [], {}, {}
    for f in _files(paths):
        raw = f.read_bytes()
        mod = _modality_of(f, raw[:65536], modality)
        if mod is None:
            continue
        try:
            stream = np.frombuffer(file_tokens_bytes(raw, mod, dcfg), dtype=np.uint8)
        except (MmzError, OSError, ValueError) as e:
            raise MmzError(f"{f}: cannot turn into a {mod} stream ({e}); use --modality") from e
        if max_bytes:
            stream = stream[:max_bytes]
        bits, counts = pred.stream_bits(stream, mod, batch)
        n = int(stream.size)
        files.append({"path": str(f), "modality": mod, "bytes": n, "bits_per_byte": bits / n if n else 0.0})
        a = agg.setdefault(mod, [0, 0.0])
        a[0] += n
        a[1] += bits
        if counts is not None and counts.size:
            routing[mod] = routing.get(mod, 0) + counts
    mods = [{"modality": m, "bytes": n, "bits_per_byte": b / n if n else 0.0} for m, (n, b) in sorted(agg.items())]
    return {"model": pred.manifest["model_id"], "files": files, "modalities": mods,
            "_routing": {m: c.tolist() for m, c in routing.items()}}


def evaluate_validation(corpus: str, model_dir: str | None = None, max_bytes: int = 16384, per_modality: int = 8,
                        batch: int = 64) -> dict[str, Any]:
    """bits/byte on the held-out validation streams of the training split (``mmz eval --val``).

    Up to ``per_modality`` streams per modality (evenly spaced in path order), first ``max_bytes``
    bytes of each (0 = all). Same JSON shape as :func:`evaluate_paths`.
    """
    from mmz.model.data import load_corpus

    pred = OnnxPredictor(model_dir or default_model_dir())
    tok = pred.manifest["tokenizer"]
    val_fraction = pred.manifest.get("recipe", {}).get("config", {}).get("data", {}).get("val_fraction", 0.1)
    dcfg = DataConfig(corpus=corpus, audio_layout=tok["audio_layout"], image_layout=tok["image_layout"],
                      val_fraction=val_fraction)
    data = load_corpus(dcfg)
    files, agg, routing = [], {}, {}
    for mod in sorted(data.val):
        streams = sorted(data.val[mod], key=lambda s: s.path)
        if per_modality and len(streams) > per_modality:
            idx = np.linspace(0, len(streams) - 1, per_modality).round().astype(int)
            streams = [streams[i] for i in idx]
        for s in streams:
            arr = s.data[:max_bytes] if max_bytes else s.data
            bits, counts = pred.stream_bits(arr, mod, batch)
            n = int(arr.size)
            files.append({"path": s.path, "modality": mod, "bytes": n, "bits_per_byte": bits / n if n else 0.0})
            a = agg.setdefault(mod, [0, 0.0])
            a[0] += n
            a[1] += bits
            if counts is not None and counts.size:
                routing[mod] = routing.get(mod, 0) + counts
    mods = [{"modality": m, "bytes": n, "bits_per_byte": b / n if n else 0.0} for m, (n, b) in sorted(agg.items())]
    return {"model": pred.manifest["model_id"], "files": files, "modalities": mods,
            "_routing": {m: c.tolist() for m, c in routing.items()}}


def format_table(res: dict[str, Any]) -> str:
    """Human-readable summary."""
    lines = [f"model {res['model'][:16]}", f"{'modality':<12}{'bytes':>12}{'bits/byte':>11}"]
    for m in res["modalities"]:
        lines.append(f"{m['modality']:<12}{m['bytes']:>12}{m['bits_per_byte']:>11.4f}")
    return "\n".join(lines)


def plot_routing(res: dict[str, Any], out_png: str | Path) -> None:
    """Expert utilisation per modality and routing module (share of top-k selections), OmniZip Fig. 6 style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    routing = res.get("_routing") or {}
    if not routing:
        raise MmzError("no routing statistics to plot (model without MoE or no files evaluated)")
    mods = sorted(routing)
    arr = {m: np.asarray(routing[m], dtype=np.float64) for m in mods}  # [L, 2, E]
    n_layer, _, n_exp = arr[mods[0]].shape
    fig, axes = plt.subplots(2, n_layer, figsize=(3 * n_layer, 5), squeeze=False, sharey=True)
    for kind in range(2):
        for layer in range(n_layer):
            ax = axes[kind][layer]
            width = 0.8 / len(mods)
            for i, m in enumerate(mods):
                c = arr[m][layer, kind]
                share = c / c.sum() if c.sum() else c
                ax.bar(np.arange(n_exp) + i * width, share, width, label=m)
            ax.set_title(f"L{layer} {'V (context)' if kind == 0 else 'FFN'}", fontsize=9)
            ax.set_xticks(np.arange(n_exp) + 0.4 - width / 2, [f"e{e}" for e in range(n_exp)])
    axes[0][0].set_ylabel("share of selections")
    axes[1][0].set_ylabel("share of selections")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"Expert utilisation per modality, model {res['model'][:16]}")
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
