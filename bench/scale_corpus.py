"""Build the mixed input of the Ray scaling benchmark from the dev corpus (deterministic).

    python bench/scale_corpus.py --src ../shared/corpus/dev --out /tmp/scale_corpus [--mb-per-folder 2.6]

From every modality folder it takes the smallest files first (ties by name) while the folder's total
stays within ``--mb-per-folder`` (MB = 10^6 bytes), and copies them to ``OUT/<folder>/``. Small files
keep a 1-worker run short while every modality (and the archive's grouping of small members) is
exercised; the same arguments always select the same files. Prints the selection per folder as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def select(folder: Path, budget: int) -> list[Path]:
    """The smallest regular files of ``folder`` (recursively) whose sizes sum to at most ``budget``."""
    files = sorted((p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()),
                   key=lambda p: (p.stat().st_size, p.relative_to(folder).as_posix()))
    out, total = [], 0
    for p in files:
        size = p.stat().st_size
        if total + size > budget:
            break
        out.append(p)
        total += size
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, type=Path, help="the dev corpus (folders text/, gene/, ...)")
    ap.add_argument("--out", required=True, type=Path, help="destination directory (must not exist)")
    ap.add_argument("--mb-per-folder", type=float, default=2.6, help="budget per folder in MB (default 2.6)")
    args = ap.parse_args(argv)
    if not args.src.is_dir():
        ap.error(f"--src {args.src}: not a directory")
    if args.out.exists():
        ap.error(f"--out {args.out}: already exists (remove it or pick another path)")
    budget = int(args.mb_per_folder * 1e6)
    report = {}
    for folder in sorted(p for p in args.src.iterdir() if p.is_dir()):
        chosen = select(folder, budget)
        for p in chosen:
            dest = args.out / folder.name / p.relative_to(folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest)
        report[folder.name] = {"files": len(chosen), "bytes": sum(p.stat().st_size for p in chosen)}
    json.dump({"out": str(args.out), "mb_per_folder": args.mb_per_folder, "folders": report}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
