"""Binary tokenizer: one token per byte (the 256-id binary slice of the unified vocabulary)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from mmz.errors import CorruptDataError
from mmz.tokenize.vocab import BINARY_BASE, BINARY_VOCAB

#: Header of a binary token stream: magic + version. Carries no data.
HEADER = b"MZTB\x01"


class BinaryTokenizer:
    """Raw bytes as tokens ``BINARY_BASE + byte``; exact for every input, streams in O(chunk) memory."""

    modality = "binary"

    def __init__(self, modality: str = "binary") -> None:
        # Any modality may fall back to byte tokens in the binary slice.
        self.modality = modality

    def encode(self, data: bytes) -> tuple[np.ndarray, bytes]:
        """Tokens (int32) and the constant header for ``data``."""
        return self._tokens(data), HEADER

    def decode(self, tokens: np.ndarray, header: bytes) -> bytes:
        """Bytes of ``tokens``; :class:`CorruptDataError` on a foreign header or out-of-slice id."""
        if header != HEADER:
            raise CorruptDataError(f"binary token header {header[:8]!r} is not {HEADER!r}; wrong tokenizer?")
        return self._bytes(tokens)

    def encode_stream(self, chunks: Iterable[bytes]) -> Iterator[np.ndarray]:
        """One token array per input chunk."""
        for chunk in chunks:
            yield self._tokens(chunk)

    def decode_stream(self, tokens: Iterable[np.ndarray]) -> Iterator[bytes]:
        """One bytes object per token array."""
        for t in tokens:
            yield self._bytes(t)

    @staticmethod
    def _tokens(data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=np.uint8).astype(np.int32) + BINARY_BASE

    @staticmethod
    def _bytes(tokens: np.ndarray) -> bytes:
        t = np.asarray(tokens)
        if t.size and (t.min() < BINARY_BASE or t.max() >= BINARY_BASE + BINARY_VOCAB):
            raise CorruptDataError(
                f"binary token ids must lie in [{BINARY_BASE}, {BINARY_BASE + BINARY_VOCAB}); "
                f"got {int(t.min())}..{int(t.max())}")
        return (t - BINARY_BASE).astype(np.uint8).tobytes()


__all__ = ["HEADER", "BinaryTokenizer"]
