"""Plain-text result tables (used by ``make run``, the Ray job and ``mmz bench``)."""

from __future__ import annotations

import sys
from typing import IO, Any

COLUMNS = ("file", "modality", "bytes", "compressed", "bits/byte", "KB/s")


def _row(name: str, modality: str, raw: int, comp: int, kbps: float | None) -> str:
    bpb = 8.0 * comp / raw if raw else 0.0
    speed = f"{kbps:>9.0f}" if kbps is not None else f"{'':>9}"
    name = name if len(name) <= 50 else "…" + name[-49:]
    return f"{name:<50} {modality:<10} {raw:>11} {comp:>11} {bpb:>9.3f} {speed}"


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows need ``file``, ``modality``, ``bytes``, ``compressed`` and optionally ``seconds``
    (compress time) or ``compress_kBps``; totals per modality and overall are appended."""
    head = f"{'file':<50} {'modality':<10} {'bytes':>11} {'compressed':>11} {'bits/byte':>9} {'KB/s':>9}"
    lines = [head, "-" * len(head)]

    def secs(r: dict[str, Any]) -> float | None:
        if r.get("seconds") is not None:
            return float(r["seconds"])
        if r.get("compress_kBps"):
            return int(r["bytes"]) / 1e3 / float(r["compress_kBps"])
        return None

    for r in rows:
        s = secs(r)
        lines.append(_row(str(r["file"]), str(r["modality"]), int(r["bytes"]), int(r["compressed"]),
                          int(r["bytes"]) / 1e3 / s if s else None))
    lines.append("-" * len(head))
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(str(r["modality"]), []).append(r)
    for name, rs in [*sorted(groups.items()), ("ALL", rows)]:
        raw = sum(int(r["bytes"]) for r in rs)
        comp = sum(int(r["compressed"]) for r in rs)
        times = [secs(r) for r in rs]
        total = sum(t for t in times if t) if all(times) else None
        lines.append(_row(f"total {name} ({len(rs)} files)", "", raw, comp,
                          raw / 1e3 / total if total else None))
    return "\n".join(lines)


def print_table(rows: list[dict[str, Any]], file: IO[str] | None = None) -> None:
    """Print :func:`format_table` of ``rows``."""
    print(format_table(rows), file=file or sys.stdout)
