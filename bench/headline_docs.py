"""Write a `mmz bench` result into the headline section of docs/BENCHMARKS.md.

Usage: ``python bench/headline_docs.py out/bench/dev.json out/bench/dev.md`` (bench/run_all.sh runs
it after the benchmark; it also works on a ``mmz bench --merge`` of partial runs).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def header(doc: dict) -> str:
    """One paragraph: when, where and with which commands and tool versions the tables were made."""
    cmds = doc.get("commands") or [doc["command"]]
    dates = doc.get("dates") or [doc["date"]]
    runs = "; ".join(f"`{c}` ({d})" for c, d in zip(cmds, dates, strict=False))
    m = doc["machine"]
    tools = ", ".join(f"{k} ({v})" for k, v in doc["tools"].items())
    return (f"Measured {doc['date']} on {m['cpu']} ({m['cores']} cores, load {m['loadavg_start'][0]:.1f} at the "
            f"start of the last run) with {runs}; mmz {doc['mmz_version']}. Tools: {tools}.\n\n")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    doc = json.loads(Path(argv[0]).read_text())
    md = Path(argv[1]).read_text()
    text = DOC.read_text()
    new = "<!-- headline:begin -->\n" + header(doc) + md + "\n<!-- headline:end -->"
    text, n = re.subn(r"<!-- headline:begin -->.*<!-- headline:end -->", lambda _: new, text, flags=re.S)
    if n != 1:
        print(f"{DOC}: headline markers not found", file=sys.stderr)
        return 1
    DOC.write_text(text)
    print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
