"""mmz: a learned, multi-modal, lossless compressor.

The API follows ``lzma`` / ``compression.zstd``::

    import mmz
    blob = mmz.compress(data, level=5)        # one .mmz frame
    assert mmz.decompress(blob) == data
    with mmz.open("file.mmz", "wb") as f:      # streaming file object
        f.write(data)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mmz")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+local"

from mmz.api import (  # noqa: E402
    MmzCompressor,
    MmzDecompressor,
    MmzFile,
    compress,
    compress_stream,
    decompress,
    decompress_stream,
    frame_info,
    open,
)
from mmz.errors import CorruptDataError, MmzError, UnknownModelError  # noqa: E402

__all__ = [
    "__version__",
    "compress",
    "decompress",
    "compress_stream",
    "decompress_stream",
    "frame_info",
    "open",
    "MmzFile",
    "MmzCompressor",
    "MmzDecompressor",
    "MmzError",
    "CorruptDataError",
    "UnknownModelError",
]
