"""The modality-unified token vocabulary shared by every tokenizer and the model.

Layout (ids are fixed by the format; never renumber them)::

    [0, 8)              prefix tokens: 0..5 = one per modality (``mmz.modality.MODALITIES`` order),
                        6, 7 reserved
    [8, 264)            binary: raw bytes 0..255
    [264, 16648)        text-like BPE (text, structured, gene share one SentencePiece model);
                        a model with V < 16384 pieces uses [264, 264 + V) and leaves the rest unused
    [16648, 16904)      image sub-pixel byte values 0..255 (a 16-bit sample is two tokens, high first)
    [16904, 17160)      audio PCM byte values 0..255

``VOCAB_SIZE`` (17160) is the model's output width; :func:`mask` says which of
those logits may be coded for a modality, so probability mass never lands on a
token the modality cannot produce.
"""

from __future__ import annotations

import numpy as np

from mmz.modality import MODALITIES

#: First prefix token; prefix of modality ``m`` is ``PREFIX_BASE + MODALITIES.index(m)``.
PREFIX_BASE = 0
#: Number of ids reserved for prefix / special tokens.
N_PREFIX = 8
#: Binary slice: 256 raw byte values.
BINARY_BASE = N_PREFIX
BINARY_VOCAB = 256
#: Text-like slice: SentencePiece ids (byte-fallback pieces included) offset by ``TEXT_BASE``.
TEXT_BASE = BINARY_BASE + BINARY_VOCAB
#: Largest text BPE model the slice can hold (the shipped 4K/8K/16K models fit).
TEXT_MAX_VOCAB = 16384
#: Image slice: 8-bit sub-pixel values (16-bit samples as two byte tokens).
IMAGE_BYTE_BASE = TEXT_BASE + TEXT_MAX_VOCAB
IMAGE_VOCAB = 256
#: Audio slice: PCM byte values.
AUDIO_BYTE_BASE = IMAGE_BYTE_BASE + IMAGE_VOCAB
AUDIO_VOCAB = 256
#: Total number of token ids (the model's logit width).
VOCAB_SIZE = AUDIO_BYTE_BASE + AUDIO_VOCAB

TEXT_LIKE: tuple[str, ...] = ("text", "structured", "gene")


def _check(modality: str) -> None:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")


def prefix_token(modality: str) -> int:
    """The token that starts every sequence of ``modality`` (tells the model what follows)."""
    _check(modality)
    return PREFIX_BASE + MODALITIES.index(modality)


def slice_for(modality: str, text_vocab: int = TEXT_MAX_VOCAB) -> tuple[int, int]:
    """``(start, stop)`` of the ids a tokenizer of ``modality`` emits.

    Args:
        modality: one of :data:`mmz.modality.MODALITIES`.
        text_vocab: size of the text BPE model in use (text-like modalities only).
    """
    _check(modality)
    if modality in TEXT_LIKE:
        if not 256 < text_vocab <= TEXT_MAX_VOCAB:
            raise ValueError(f"text vocabulary size {text_vocab} outside (256, {TEXT_MAX_VOCAB}]")
        return TEXT_BASE, TEXT_BASE + text_vocab
    if modality == "image":
        return IMAGE_BYTE_BASE, IMAGE_BYTE_BASE + IMAGE_VOCAB
    if modality == "audio":
        return AUDIO_BYTE_BASE, AUDIO_BYTE_BASE + AUDIO_VOCAB
    return BINARY_BASE, BINARY_BASE + BINARY_VOCAB


def mask(modality: str, text_vocab: int = TEXT_MAX_VOCAB) -> np.ndarray:
    """Boolean array of length :data:`VOCAB_SIZE`: True where ``modality`` may emit a token."""
    start, stop = slice_for(modality, text_vocab)
    m = np.zeros(VOCAB_SIZE, dtype=bool)
    m[start:stop] = True
    return m


__all__ = [
    "AUDIO_BYTE_BASE", "AUDIO_VOCAB", "BINARY_BASE", "BINARY_VOCAB", "IMAGE_BYTE_BASE", "IMAGE_VOCAB",
    "N_PREFIX", "PREFIX_BASE", "TEXT_BASE", "TEXT_LIKE", "TEXT_MAX_VOCAB", "VOCAB_SIZE",
    "mask", "prefix_token", "slice_for",
]
