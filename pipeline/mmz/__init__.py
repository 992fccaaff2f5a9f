"""mmz: a learned, multi-modal, lossless compressor."""

from __future__ import annotations

from mmz.errors import CorruptDataError, MmzError

__all__ = ["MmzError", "CorruptDataError"]
