"""Image tokenizer: 8-bit sub-pixels in 16x16 patches, exact for the original file.

The file goes through :func:`mmz.transform.forward` (PNG -> raw pixels, or
the identity with PNM/BMP/TIFF sample regions); the samples become tokens and
everything else (container headers, PNG side info, trailing bytes) travels
verbatim in the header, so :meth:`ImageTokenizer.decode` rebuilds the file
byte-for-byte.

Token order (``layout="patch"``, OmniZip's layout): patches of
``patch x patch`` pixels in raster order of patches, pixels in raster order
inside a patch, channels interleaved per pixel. Edge patches are simply
smaller (no padding with fake data). ``layout="raster"`` keeps the row-major
file order. A 16-bit sample is two tokens, high byte then low byte. Samples
that do not form a ``width x height`` grid are emitted in raster order.

Token ids are ``IMAGE_BYTE_BASE + byte value``. ``IMAGE_BYTE_BASE`` comes from the unified
vocabulary (:mod:`mmz.tokenize.vocab`).

Header: ``b"MZTI" | u8 layout | u8 patch | carve header`` (see
:mod:`mmz.transform.carve`).
"""

from __future__ import annotations

import numpy as np

from mmz.errors import CorruptDataError
from mmz.tokenize.vocab import IMAGE_BYTE_BASE, IMAGE_VOCAB  # noqa: F401 (re-exported)
from mmz.transform import SampleRegion
from mmz.transform.carve import carve, parse_header, uncarve

_MAGIC = b"MZTI"
_LAYOUTS = {"raster": 0, "patch": 1}


def _grid(regions: list[SampleRegion], total: int) -> tuple[int, int, int] | None:
    """(height, width, bytes per pixel) when all regions share one pixel geometry."""
    if not regions:
        return None
    r0 = regions[0]
    unit = r0.channels * r0.bytes_per_sample
    if r0.width <= 0 or any(
        (r.channels, r.bytes_per_sample, r.width) != (r0.channels, r0.bytes_per_sample, r0.width) for r in regions
    ):
        return None
    row = r0.width * unit
    if total == 0 or total % row:
        return None
    return total // row, r0.width, unit


def patch_order(height: int, width: int, patch: int) -> np.ndarray:
    """Pixel indices (row-major) in patch order; edge patches are cropped, not padded."""
    ph = -(-height // patch) * patch
    pw = -(-width // patch) * patch
    idx = np.full((ph, pw), -1, dtype=np.int64)
    idx[:height, :width] = np.arange(height * width, dtype=np.int64).reshape(height, width)
    order = idx.reshape(ph // patch, patch, pw // patch, patch).transpose(0, 2, 1, 3).ravel()
    return order[order >= 0]


class ImageTokenizer:
    """Reversible tokenizer for image files (PNG, PNM, BMP, TIFF; anything else exactly too).

    Args:
        layout: ``"patch"`` (16x16 patches, channels interleaved) or ``"raster"``.
        patch: patch side in pixels (1..255).
    """

    modality = "image"

    def __init__(self, layout: str = "patch", patch: int = 16) -> None:
        if layout not in _LAYOUTS:
            raise ValueError(f"unknown image layout {layout!r}; choose 'patch' or 'raster'")
        if not 1 <= patch <= 255:
            raise ValueError(f"patch side must be 1..255, got {patch}")
        self.layout = layout
        self.patch = patch

    def encode(self, data: bytes) -> tuple[np.ndarray, bytes]:
        """Tokens (int32) and the header needed to rebuild ``data`` exactly."""
        samples, header, regions = carve(bytes(data), "image")
        buf = np.frombuffer(samples, dtype=np.uint8)
        layout = _LAYOUTS[self.layout]
        grid = _grid(regions, len(samples))
        if layout == 1 and grid is not None:
            h, w, unit = grid
            buf = buf.reshape(h * w, unit)[patch_order(h, w, self.patch)].ravel()
        else:
            layout = 0
        tokens = buf.astype(np.int32) + IMAGE_BYTE_BASE
        return tokens, _MAGIC + bytes([layout, self.patch]) + header

    def decode(self, tokens: np.ndarray, header: bytes) -> bytes:
        """Rebuild the original file.

        Raises:
            CorruptDataError: tokens or header are malformed or do not match.
        """
        if len(header) < 6 or header[:4] != _MAGIC or header[4] not in (0, 1) or header[5] == 0:
            raise CorruptDataError("image token header: bad magic, layout or patch size")
        layout, patch, inner = header[4], header[5], header[6:]
        t = np.asarray(tokens).astype(np.int64, copy=False).ravel() - IMAGE_BYTE_BASE
        if t.size and (t.min() < 0 or t.max() > 255):
            raise CorruptDataError("image tokens: id outside the image slice")
        buf = t.astype(np.uint8)
        if layout == 1:
            _, _, regions, _ = parse_header(inner)
            grid = _grid(regions, buf.size)
            if grid is None:
                raise CorruptDataError("image tokens: patch layout without a pixel grid")
            h, w, unit = grid
            out = np.empty((h * w, unit), dtype=np.uint8)
            out[patch_order(h, w, patch)] = buf.reshape(h * w, unit)
            buf = out.ravel()
        return uncarve(buf.tobytes(), inner)
