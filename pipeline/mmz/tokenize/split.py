"""The deterministic train/validation split of the corpus, shared by tokenizer and model training.

A file is in the validation split when the sha256 of its path relative to the corpus
root (as written in ``MANIFEST.tsv``, e.g. ``dev/text/fortunes.txt``, forward slashes)
falls in the first tenth of the hash space. No randomness, no state: every tool that
calls :func:`is_validation` with the same path gets the same answer.
"""

from __future__ import annotations

import hashlib

#: Share of files held out for validation (in tenths of the hash space).
VALIDATION_TENTHS = 1


def is_validation(relpath: str) -> bool:
    """True when the corpus file ``relpath`` (relative to the corpus root) is held out for validation."""
    path = relpath.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    key = path.encode("utf-8")
    h = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    return h % 10 < VALIDATION_TENTHS


def is_train(relpath: str) -> bool:
    """The complement of :func:`is_validation`."""
    return not is_validation(relpath)


__all__ = ["VALIDATION_TENTHS", "is_train", "is_validation"]
