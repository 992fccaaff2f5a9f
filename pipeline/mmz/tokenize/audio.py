"""Audio tokenizer: PCM sample bytes as tokens, exact for the original file.

The WAV header, extra chunks and any trailing bytes travel verbatim in the
header (via :mod:`mmz.transform.carve`); the PCM samples of the ``data``
chunk become tokens, always most significant byte first:

* ``layout="split"``: per sample, high byte then low byte (24-bit: high, mid,
  low), frames and channels in file order.
* ``layout="planes"``: per region, all high bytes, then all low bytes (then,
  for 24-bit, all lowest bytes).

Token ids are ``AUDIO_BYTE_BASE + byte value``; ``AUDIO_BYTE_BASE`` comes from the unified
vocabulary (:mod:`mmz.tokenize.vocab`). Files without recognizable PCM produce no tokens (everything is
in the header).

Header: ``b"MZTA" | u8 layout | carve header``.
"""

from __future__ import annotations

import numpy as np

from mmz.errors import CorruptDataError
from mmz.tokenize.vocab import AUDIO_BYTE_BASE, AUDIO_VOCAB  # noqa: F401 (re-exported)
from mmz.transform import SampleRegion
from mmz.transform.carve import carve, parse_header, uncarve

_MAGIC = b"MZTA"
_LAYOUTS = {"split": 0, "planes": 1}


def _planes(buf: np.ndarray, regions: list[SampleRegion], forward: bool) -> np.ndarray:
    out = np.empty_like(buf)
    pos = 0
    for r in regions:
        b = r.bytes_per_sample
        seg = buf[pos:pos + r.length]
        if forward:
            out[pos:pos + r.length] = seg.reshape(-1, b).T.ravel()
        else:
            out[pos:pos + r.length] = seg.reshape(b, -1).T.ravel()
        pos += r.length
    return out


class AudioTokenizer:
    """Reversible tokenizer for PCM audio files (WAV; anything else exactly too).

    Args:
        layout: ``"planes"`` (default: high-byte plane, then low-byte plane) or ``"split"``
            (high byte then low byte per sample). An order-2 model codes planes
            better: dev speech 5.49 vs 6.49 bits/byte, music 4.21 vs 4.75.
    """

    modality = "audio"

    def __init__(self, layout: str = "planes") -> None:
        if layout not in _LAYOUTS:
            raise ValueError(f"unknown audio layout {layout!r}; choose 'split' or 'planes'")
        self.layout = layout

    def encode(self, data: bytes) -> tuple[np.ndarray, bytes]:
        """Tokens (int32) and the header needed to rebuild ``data`` exactly."""
        samples, header, regions = carve(bytes(data), "audio")
        buf = np.frombuffer(samples, dtype=np.uint8)
        layout = _LAYOUTS[self.layout]
        if layout == 1:
            buf = _planes(buf, regions, True)
        return buf.astype(np.int32) + AUDIO_BYTE_BASE, _MAGIC + bytes([layout]) + header

    def decode(self, tokens: np.ndarray, header: bytes) -> bytes:
        """Rebuild the original file.

        Raises:
            CorruptDataError: tokens or header are malformed or do not match.
        """
        if len(header) < 5 or header[:4] != _MAGIC or header[4] not in (0, 1):
            raise CorruptDataError("audio token header: bad magic or layout")
        layout, inner = header[4], header[5:]
        t = np.asarray(tokens).astype(np.int64, copy=False).ravel() - AUDIO_BYTE_BASE
        if t.size and (t.min() < 0 or t.max() > 255):
            raise CorruptDataError("audio tokens: id outside the audio slice")
        buf = t.astype(np.uint8)
        if layout == 1:
            _, _, regions, _ = parse_header(inner)
            if buf.size != sum(r.length for r in regions):
                raise CorruptDataError("audio tokens: sample count does not match the header")
            buf = _planes(buf, regions, False)
        return uncarve(buf.tobytes(), inner)
