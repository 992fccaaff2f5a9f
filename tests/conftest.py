"""Shared fixtures: the bundled sample corpus and a fixed sample of the dev corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
DEV = Path(os.environ.get("MMZ_DEV_CORPUS", ROOT.parent / "shared" / "corpus" / "dev"))


def sample_files() -> list[Path]:
    """Every file of the bundled sample corpus (a few MB across all modalities)."""
    return sorted(p for p in SAMPLE.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv")


def dev_sample_files(per_folder: int = 2, max_bytes: int = 400_000) -> list[Path]:
    """A fixed, small sample of the dev corpus: the smallest files of each folder under a size cap."""
    if not DEV.is_dir():
        return []
    out: list[Path] = []
    for folder in sorted(p for p in DEV.iterdir() if p.is_dir()):
        files = sorted((f for f in folder.iterdir() if f.is_file() and f.stat().st_size <= max_bytes),
                       key=lambda f: (f.stat().st_size, f.name))
        # one tiny and one mid-sized file per folder
        if files:
            picks = {files[0], files[len(files) // 2]}
            out.extend(sorted(picks)[:per_folder])
    return out


@pytest.fixture(scope="session")
def sample_paths() -> list[Path]:
    files = sample_files()
    assert files, "bundled sample corpus missing"
    return files
