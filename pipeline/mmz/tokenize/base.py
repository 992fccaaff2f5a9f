"""The tokenizer protocol every modality family implements.

A tokenizer turns a file into ``(tokens, header)``: ``tokens`` is an int32
array of ids in the unified vocabulary (:mod:`mmz.tokenize.vocab`), all inside
the modality's slice; ``header`` holds whatever bytes the tokens do not carry
(container headers, version tags). ``decode(tokens, header)`` must return the
input byte-for-byte for EVERY input, including inputs that are not of the
tokenizer's modality at all.

Streaming tokenizers (text-like and binary) additionally implement
:class:`StreamingTokenizer`: inputs larger than memory are tokenized chunk by
chunk in bounded memory, and decoding is a plain concatenation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Tokenizer(Protocol):
    """Reversible file <-> token-sequence mapping for one modality."""

    #: One of :data:`mmz.modality.MODALITIES`.
    modality: str

    def encode(self, data: bytes) -> tuple[np.ndarray, bytes]:
        """Tokens (int32, unified-vocabulary ids) and header bytes for ``data``."""
        ...

    def decode(self, tokens: np.ndarray, header: bytes) -> bytes:
        """The original bytes; raises :class:`mmz.errors.CorruptDataError` on invalid input."""
        ...


@runtime_checkable
class StreamingTokenizer(Tokenizer, Protocol):
    """A tokenizer whose token stream can be produced and consumed chunk by chunk."""

    def encode_stream(self, chunks: Iterable[bytes]) -> Iterator[np.ndarray]:
        """Token arrays for consecutive pieces of the input; their concatenation equals
        ``encode(b"".join(chunks))[0]``'s decoding semantics (decode_stream of it is the input).
        Memory stays bounded by the chunk size plus a small carry."""
        ...

    def decode_stream(self, tokens: Iterable[np.ndarray]) -> Iterator[bytes]:
        """Bytes for consecutive token arrays (any split of the token stream)."""
        ...


__all__ = ["StreamingTokenizer", "Tokenizer"]
