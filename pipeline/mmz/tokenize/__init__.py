"""Reversible tokenizers into the modality-unified vocabulary (:mod:`mmz.tokenize.vocab`).

Every family implements :class:`mmz.tokenize.base.Tokenizer`; :func:`get_tokenizer`
returns the one for a modality:

* ``text``, ``structured``, ``gene``: SentencePiece BPE with byte escapes (:mod:`.text`)
* ``binary``: raw bytes (:mod:`.binary`)
* ``image``: sub-pixel byte values in patches (:mod:`.image`)
* ``audio``: PCM byte values (:mod:`.audio`)
"""

from __future__ import annotations

from typing import Any

from mmz.tokenize.base import StreamingTokenizer, Tokenizer


def get_tokenizer(modality: str, **options: Any) -> Tokenizer:
    """The tokenizer for ``modality``; ``options`` go to the family's constructor.

    Text-like options: ``vocab`` (4096, 8192 or 16384, default 16384). Image: ``layout``,
    ``patch``. Audio: ``layout``.

    Raises:
        ValueError: unknown modality or option value.
    """
    if modality in ("text", "structured", "gene"):
        from mmz.tokenize.text import TextTokenizer

        return TextTokenizer(modality, **options)
    if modality == "binary":
        from mmz.tokenize.binary import BinaryTokenizer

        return BinaryTokenizer(**options)
    if modality == "image":
        from mmz.tokenize.image import ImageTokenizer

        return ImageTokenizer(**options)
    if modality == "audio":
        from mmz.tokenize.audio import AudioTokenizer

        return AudioTokenizer(**options)
    raise ValueError(f"unknown modality {modality!r}; choose binary, text, structured, gene, image or audio")


__all__ = ["StreamingTokenizer", "Tokenizer", "get_tokenizer"]
