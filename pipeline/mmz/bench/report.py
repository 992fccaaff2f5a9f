"""Bench output: JSON document, schema check, Markdown tables and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "docs" / "bench_schema.json"

#: The JSON schema of ``mmz bench --json`` (also written to docs/bench_schema.json).
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mmz bench results",
    "type": "object",
    "required": ["machine", "mmz_version", "results"],
    "properties": {
        "machine": {"type": "object"},
        "mmz_version": {"type": "string"},
        "command": {"type": "string"},
        "date": {"type": "string"},
        "tools": {"type": "object"},
        "skipped_tools": {"type": "array", "items": {"type": "string"}},
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["modality", "method", "files", "raw_bytes", "compressed_bytes", "bits_per_byte",
                             "compress_kBps", "decompress_kBps", "peak_rss_mb", "roundtrip_ok"],
                "properties": {
                    "modality": {"type": "string"},
                    "method": {"type": "string"},
                    "files": {"type": "integer", "minimum": 1},
                    "raw_bytes": {"type": "integer", "minimum": 0},
                    "compressed_bytes": {"type": "integer", "minimum": 0},
                    "bits_per_byte": {"type": "number", "minimum": 0},
                    "compress_kBps": {"type": "number", "minimum": 0},
                    "decompress_kBps": {"type": "number", "minimum": 0},
                    "peak_rss_mb": {"type": "number", "minimum": 0},
                    "roundtrip_ok": {"type": "boolean"},
                },
            },
        },
    },
}


def markdown(doc: dict[str, Any]) -> str:
    """A table per group: method, files, raw, compressed, bits/byte, KB/s, RSS, round trip."""
    lines = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in doc["results"]:
        groups.setdefault(r["modality"], []).append(r)
    for g in sorted(groups):
        lines += [f"**{g}**", "", "| method | files | raw bytes | compressed | bits/byte | comp KB/s | "
                  "dec KB/s | comp KB/s (all threads) | peak RSS MB | round trip |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in sorted(groups[g], key=lambda r: r["bits_per_byte"]):
            mt = r.get("compress_kBps_all_threads")
            lines.append(f"| {r['method']} | {r['files']} | {r['raw_bytes']} | {r['compressed_bytes']} | "
                         f"{r['bits_per_byte']:.4f} | {r['compress_kBps']:.0f} | {r['decompress_kBps']:.0f} | "
                         f"{'' if mt is None else f'{mt:.0f}'} | {r['peak_rss_mb']:.0f} | "
                         f"{'ok' if r['roundtrip_ok'] else 'FAILED'} |")
        lines.append("")
    return "\n".join(lines)


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine result documents of several runs into one; later documents win per (group, method).

    ``command``, ``date`` and ``machine`` become lists/the newest so the origin of every row stays
    recorded (each row also gets ``run`` = the index of the document it came from).
    """
    if not docs:
        raise ValueError("nothing to merge")
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    tools: dict[str, str] = {}
    skipped: set[str] = set()
    for i, d in enumerate(docs):
        for r in d.get("results", []):
            rows[(r["modality"], r["method"])] = {**r, "run": i}
        tools.update(d.get("tools", {}))
        skipped.update(d.get("skipped_tools", []))
    newest = max(docs, key=lambda d: d.get("date", ""))
    return {
        "machine": newest["machine"],
        "mmz_version": newest["mmz_version"],
        "command": " + ".join(d.get("command", "?") for d in docs),
        "commands": [d.get("command", "?") for d in docs],
        "dates": [d.get("date", "") for d in docs],
        "date": newest.get("date", ""),
        "tools": tools,
        "skipped_tools": sorted(skipped - set(tools)),
        "results": sorted(rows.values(), key=lambda r: (r["modality"], r["bits_per_byte"])),
    }


def plot(doc: dict[str, Any], out_dir: str) -> list[str]:
    """bits/byte bars per group and method, and the speed-ratio frontier; returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = doc["results"]
    groups = sorted({r["modality"] for r in rows})
    methods = sorted({r["method"] for r in rows}, key=lambda m: (not m.startswith("mmz"), m))
    fig, ax = plt.subplots(figsize=(max(8, 1.4 * len(groups)), 5))
    width = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        xs, ys = [], []
        for j, g in enumerate(groups):
            r = next((r for r in rows if r["modality"] == g and r["method"] == m), None)
            if r:
                xs.append(j + i * width)
                ys.append(r["bits_per_byte"])
        ax.bar(xs, ys, width, label=m)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))], groups)
    ax.set_ylabel("bits per raw byte (lower is better)")
    ax.legend(fontsize=7, ncol=3)
    ax.set_title("mmz vs classical tools")
    fig.tight_layout()
    bars = out / "bench_bits_per_byte.png"
    fig.savefig(bars, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 5))
    totals: dict[str, list[float]] = {}
    for r in rows:
        t = totals.setdefault(r["method"], [0.0, 0.0, 0.0])
        t[0] += r["raw_bytes"]
        t[1] += r["compressed_bytes"]
        t[2] += r["raw_bytes"] / 1e3 / max(1e-9, r["compress_kBps"])
    for m, (raw, comp, secs) in totals.items():
        ax.scatter(raw / 1e3 / max(1e-9, secs), 8 * comp / max(1, raw), label=m,
                   marker="o" if m.startswith("mmz") else "s")
    presets = [m for m in ("mmz-fast", "mmz-default", "mmz-max") if m in totals]
    if len(presets) > 1:
        ax.plot([totals[m][0] / 1e3 / max(1e-9, totals[m][2]) for m in presets],
                [8 * totals[m][1] / max(1, totals[m][0]) for m in presets], "k-", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("compress KB/s (log)")
    ax.set_ylabel("bits per raw byte")
    ax.set_title("speed-ratio frontier (all groups pooled)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    frontier = out / "bench_frontier.png"
    fig.savefig(frontier, dpi=110)
    plt.close(fig)
    paths = [str(bars), str(frontier)]
    paths += _plot_sweeps(out)
    return paths


def _plot_sweeps(out: Path, src_dir: Path = Path("out/bench")) -> list[str]:
    """Throughput vs Ray workers (``scaling.json`` of jobs/benchmark_corpus.py) and vs lockstep batch
    size (``neural.json`` of bench/neural_bench.py), when those JSON files exist."""
    import matplotlib.pyplot as plt

    made = []
    out.mkdir(parents=True, exist_ok=True)
    src = src_dir / "scaling.json"
    if src.exists():
        data = json.loads(src.read_text())
        rows = [r for r in data.get("workers", []) if r.get("roundtrip_ok") and r.get("compress_MBps")]
        if rows:
            xs = [r["workers"] for r in rows]
            fig, ax = plt.subplots(figsize=(6, 4))
            ax.plot(xs, [r["compress_MBps"] for r in rows], "o-", label="compress")
            ax.plot(xs, [r.get("decompress_MBps", 0) for r in rows], "s-", label="decompress + verify")
            base = rows[0]["compress_MBps"] / max(1, rows[0]["workers"])
            ax.plot(xs, [base * w for w in xs], "k--", lw=1, label="linear from 1 worker")
            opts = data.get("options", {})
            ax.set_title(f"corpus job scaling (level {opts.get('level', '?')}, chunk {opts.get('chunk_size', '?')})")
            ax.set_xlabel("Ray workers (1 CPU each)")
            ax.set_ylabel("MB/s of raw input")
            ax.set_xticks(xs)
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=8)
            fig.tight_layout()
            p = out / "bench_scaling_workers.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            made.append(str(p))
    src = src_dir / "neural.json"
    if src.exists():
        runs = [r for r in json.loads(src.read_text()).get("runs", []) if r.get("data") == "text"]
        if runs:
            fig, ax = plt.subplots(figsize=(6, 4))
            for t in sorted({r["threads"] for r in runs}):
                rs = sorted((r for r in runs if r["threads"] == t), key=lambda r: r["batch"])
                ax.plot([r["batch"] for r in rs], [r["compress_kb_s"] for r in rs], "o-", label=f"{t} thread(s)")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("lockstep streams per group (batch)")
            ax.set_ylabel("neural compress KB/s (text)")
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=8)
            fig.tight_layout()
            p = out / "bench_neural_batch.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            made.append(str(p))
    return made
