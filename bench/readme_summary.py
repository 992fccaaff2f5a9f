"""Write the README's headline summary (between ``<!-- headline:begin -->`` and ``<!-- headline:end -->``)
from ``out/bench/dev.json``: per group, mmz presets next to xz -9e and the best classical tool.

    .venv/bin/python bench/readme_summary.py [out/bench/dev.json] [README.md]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def summary(doc: dict) -> str:
    """Markdown table: one row per group."""
    rows = doc["results"]
    lines = [
        f"Measured {doc['date'][:10]} with `{doc['command']}` (bits/byte, lower is better; images and audio "
        "per raw pixel/PCM byte; full tables in docs/BENCHMARKS.md):",
        "",
        "| group | mmz-fast | mmz-default | mmz-max | xz -9e | best classical | mmz-default compress KB/s/core |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for g in sorted({r["modality"] for r in rows}):
        by = {r["method"]: r for r in rows if r["modality"] == g}
        classical = [r for r in by.values() if not r["method"].startswith("mmz")]
        best = min(classical, key=lambda r: r["bits_per_byte"]) if classical else None

        def bpb(name: str, by: dict = by) -> str:
            return f"{by[name]['bits_per_byte']:.3f}" if name in by else "–"

        best_txt = f"{best['method']} {best['bits_per_byte']:.3f}" if best else "–"
        speed = f"{by['mmz-default']['compress_kBps']:.0f}" if "mmz-default" in by else "–"
        lines.append(f"| {g} | {bpb('mmz-fast')} | {bpb('mmz-default')} | {bpb('mmz-max')} | {bpb('xz-9e')} | "
                     f"{best_txt} | {speed} |")
    return "\n".join(lines) + "\n\n![speed-ratio frontier](docs/img/bench_frontier.png)\n"


def main(argv: list[str]) -> int:
    src = Path(argv[1] if len(argv) > 1 else "out/bench/dev.json")
    readme = Path(argv[2] if len(argv) > 2 else "README.md")
    text = readme.read_text()
    block = "<!-- headline:begin -->\n" + summary(json.loads(src.read_text())) + "<!-- headline:end -->"
    if "<!-- headline:begin -->" not in text:
        raise SystemExit(f"{readme}: no <!-- headline:begin --> marker")
    readme.write_text(re.sub(r"<!-- headline:begin -->.*<!-- headline:end -->", lambda _: block, text, flags=re.S))
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
