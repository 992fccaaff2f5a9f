"""Exceptions raised by mmz. One base class, as in ``compression.zstd``."""

from __future__ import annotations

from mmz._core import CorruptDataError as _CoreCorrupt
from mmz._core import MmzCoreError as _CoreError

#: Base class of every error mmz raises on purpose.
MmzError = _CoreError

#: The compressed data is damaged or truncated; the message names the part.
CorruptDataError = _CoreCorrupt


class UnknownModelError(MmzError):
    """The data needs a model this installation does not have."""


__all__ = ["MmzError", "CorruptDataError", "UnknownModelError"]
