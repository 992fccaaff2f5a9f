"""Text-like tokenizer (``text``, ``structured``, ``gene``): SentencePiece BPE, exact for every byte string.

Encoding:

1. The input is decoded as UTF-8 with ``surrogateescape``: every byte that is not part
   of a valid UTF-8 character becomes a lone surrogate U+DC80..U+DCFF.
2. It is cut at ``\\n``, at those escapes and at U+2581 (SentencePiece's own
   whitespace marker, which it would turn into a space). Each cut character becomes
   byte tokens (the model's ``<0xNN>`` byte-fallback pieces); the runs between go
   through SentencePiece (identity normalization, no dummy prefix, whitespace kept).
3. The tokens are decoded again and compared with the input. Any run whose pieces do
   not reproduce it byte-for-byte is re-coded as byte tokens. Exactness does not
   depend on SentencePiece's behaviour.

Decoding never calls SentencePiece: every id maps to a fixed byte string (piece text
with U+2581 -> space, UTF-8; byte pieces -> their byte), and the output is their
concatenation. That also makes any split of a token stream decodable on its own.

Token ids are ``TEXT_BASE + SentencePiece id``. Header: ``b"MZTT" | u8 version=1 |
u32le vocab size | first 8 bytes of the tokenizer id`` (sha256 of the model file).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

from mmz.errors import CorruptDataError, UnknownModelError
from mmz.tokenize.vocab import TEXT_BASE, TEXT_LIKE, TEXT_MAX_VOCAB

#: Folder of the shipped tokenizer models and their manifest.
MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "tokenizer"
#: Default vocabulary size (the issue's default).
DEFAULT_VOCAB = 16384
_MAGIC = b"MZTT"
_VERSION = 1
_HEADER = struct.Struct("<4sBI8s")
_CUT = re.compile("[\n\u2581\udc80-\udcff]")
#: Longest run without a newline that encode_stream holds before cutting it.
MAX_CARRY = 1 << 20


@lru_cache(maxsize=1)
def manifest() -> dict:
    """The shipped tokenizer manifest (vocab sizes, files, sha256 ids, training command)."""
    path = MODEL_DIR / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UnknownModelError(f"tokenizer manifest {path} unreadable ({e}); reinstall mmz or run "
                                "python -m mmz.tokenize.train_bpe") from e


def available_vocabs() -> list[int]:
    """Vocabulary sizes of the shipped text BPE models."""
    return sorted(m["vocab"] for m in manifest()["models"])


class _Model:
    """A loaded SentencePiece model plus its id -> bytes table."""

    def __init__(self, entry: dict) -> None:
        import hashlib

        import sentencepiece as spm

        path = MODEL_DIR / entry["file"]
        blob = path.read_bytes()
        digest = hashlib.sha256(blob).digest()
        if digest.hex() != entry["sha256"]:
            raise UnknownModelError(f"tokenizer model {path} does not match its manifest sha256; reinstall mmz")
        self.id = digest
        self.sp = spm.SentencePieceProcessor(model_proto=blob)
        self.vocab = self.sp.get_piece_size()
        if not 256 < self.vocab <= TEXT_MAX_VOCAB:
            raise UnknownModelError(f"tokenizer model {path} has {self.vocab} pieces; need 257..{TEXT_MAX_VOCAB}")
        pieces: list[bytes] = []
        valid = np.ones(self.vocab, dtype=bool)
        self.byte_id = np.full(256, -1, dtype=np.int32)
        for i in range(self.vocab):
            if self.sp.is_byte(i):
                b = int(self.sp.id_to_piece(i)[3:5], 16)
                self.byte_id[b] = i
                pieces.append(bytes([b]))
            elif self.sp.is_unknown(i) or self.sp.is_control(i) or self.sp.is_unused(i):
                valid[i] = False
                pieces.append(b"")
            else:
                pieces.append(self.sp.id_to_piece(i).replace("\u2581", " ").encode("utf-8"))
        if (self.byte_id < 0).any():
            raise UnknownModelError(f"tokenizer model {path} lacks byte-fallback pieces; retrain with train_bpe")
        self.valid = valid
        self.lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.blob = np.frombuffer(b"".join(pieces), dtype=np.uint8)

    def bytes_of(self, ids: np.ndarray) -> bytes:
        """Concatenated bytes of SentencePiece ids (assumed in range and valid)."""
        if ids.size == 0:
            return b""
        lens = self.lengths[ids]
        total = int(lens.sum())
        ends = np.cumsum(lens)
        # position k of the output reads blob[starts[id] + (k - out_start[id])]
        shift = np.repeat(self.starts[ids] - (ends - lens), lens)
        return self.blob[np.arange(total, dtype=np.int64) + shift].tobytes()

    def escape(self, raw: bytes) -> list[int]:
        return self.byte_id[np.frombuffer(raw, dtype=np.uint8)].tolist()


@lru_cache(maxsize=8)
def _load(vocab: int | None = None, tokenizer_id: bytes | None = None) -> _Model:
    for entry in manifest()["models"]:
        if (vocab is not None and entry["vocab"] == vocab) or (
                tokenizer_id is not None and bytes.fromhex(entry["sha256"]).startswith(tokenizer_id)):
            return _Model(entry)
    if vocab is not None:
        raise ValueError(f"no shipped text tokenizer with vocab {vocab}; choose one of {available_vocabs()}")
    raise UnknownModelError(f"text tokenizer {tokenizer_id.hex() if tokenizer_id else '?'} is not installed; "
                            "the data was tokenized by a different mmz version")


class TextTokenizer:
    """Reversible SentencePiece BPE tokenizer for text, structured data and gene sequences.

    Args:
        modality: ``"text"``, ``"structured"`` or ``"gene"`` (they share one model).
        vocab: size of the shipped BPE model to use (see :func:`available_vocabs`).
    """

    def __init__(self, modality: str = "text", vocab: int = DEFAULT_VOCAB) -> None:
        if modality not in TEXT_LIKE:
            raise ValueError(f"TextTokenizer handles {', '.join(TEXT_LIKE)}, not {modality!r}")
        self.modality = modality
        self._m = _load(vocab=vocab)
        self.vocab = self._m.vocab

    @property
    def tokenizer_id(self) -> bytes:
        """sha256 of the model file (32 bytes), as stored in frame headers."""
        return self._m.id

    @property
    def header(self) -> bytes:
        """The header every encoding with this model carries."""
        return _HEADER.pack(_MAGIC, _VERSION, self.vocab, self._m.id[:8])

    def encode(self, data: bytes) -> tuple[np.ndarray, bytes]:
        """Tokens (int32, ``TEXT_BASE + piece id``) and header for ``data`` (any bytes)."""
        return self._encode(bytes(data)), self.header

    def decode(self, tokens: np.ndarray, header: bytes) -> bytes:
        """The original bytes. Raises :class:`CorruptDataError` on a bad header or token id,
        :class:`UnknownModelError` if the header names a model this installation lacks."""
        if len(header) != _HEADER.size:
            raise CorruptDataError(f"text token header is {len(header)} bytes, expected {_HEADER.size}")
        magic, version, vocab, tid = _HEADER.unpack(header)
        if magic != _MAGIC or version != _VERSION:
            raise CorruptDataError(f"text token header starts {header[:5]!r}, expected {_MAGIC!r} version 1")
        model = self._m if self._m.id.startswith(tid) else _load(tokenizer_id=tid)
        if model.vocab != vocab:
            raise CorruptDataError(f"text token header says vocab {vocab}, model has {model.vocab}")
        return self._decode(model, tokens)

    def encode_stream(self, chunks: Iterable[bytes], max_carry: int = MAX_CARRY) -> Iterator[np.ndarray]:
        """Token arrays for an input given as chunks, in memory bounded by chunk + ``max_carry``.

        The input is cut after the last newline of what has arrived (tokens then equal
        :meth:`encode`'s); a line longer than ``max_carry`` is cut at a UTF-8 character
        boundary (still exact, tokens may differ from :meth:`encode` there).
        """
        carry = b""
        for chunk in chunks:
            buf = carry + bytes(chunk)
            cut = buf.rfind(b"\n") + 1
            if cut == 0 and len(buf) > max_carry:
                cut = len(buf)
                for k in range(len(buf) - 1, max(len(buf) - 4, 0) - 1, -1):
                    if buf[k] & 0xC0 != 0x80:  # start of the (possibly incomplete) last character
                        cut = k if k > 0 else len(buf)
                        break
            if cut:
                yield self._encode(buf[:cut])
            carry = buf[cut:]
        if carry:
            yield self._encode(carry)

    def decode_stream(self, tokens: Iterable[np.ndarray]) -> Iterator[bytes]:
        """Bytes for consecutive token arrays (any split of the token stream)."""
        for t in tokens:
            yield self._decode(self._m, t)

    # -- internals ------------------------------------------------------------------------------

    def _encode(self, data: bytes) -> np.ndarray:
        m = self._m
        text = data.decode("utf-8", "surrogateescape")
        runs = _CUT.split(text)
        cuts = _CUT.findall(text)
        encoded = m.sp.encode(runs, out_type=int, num_threads=1)
        cut_ids = [m.escape(c.encode("utf-8", "surrogateescape")) for c in cuts]
        flat: list[int] = []
        for k, ids in enumerate(encoded):
            flat.extend(ids)
            if k < len(cut_ids):
                flat.extend(cut_ids[k])
        ids = np.array(flat, dtype=np.int32)
        if not (m.valid[ids].all() and m.bytes_of(ids) == data):
            ids = self._repair(runs, encoded, cut_ids)
        return ids + TEXT_BASE

    def _repair(self, runs: list[str], encoded: list[list[int]], cut_ids: list[list[int]]) -> np.ndarray:
        """Re-code every run SentencePiece did not reproduce exactly as byte tokens."""
        m = self._m
        flat: list[int] = []
        for k, (run, ids) in enumerate(zip(runs, encoded, strict=True)):
            raw = run.encode("utf-8", "surrogateescape")
            arr = np.array(ids, dtype=np.int32)
            if m.valid[arr].all() and m.bytes_of(arr) == raw:
                flat.extend(ids)
            else:
                flat.extend(m.escape(raw))
            if k < len(cut_ids):
                flat.extend(cut_ids[k])
        return np.array(flat, dtype=np.int32)

    @staticmethod
    def _decode(model: _Model, tokens: np.ndarray) -> bytes:
        t = np.asarray(tokens)
        if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
            raise CorruptDataError(f"text tokens must be a 1-D integer array, got {t.dtype} {t.shape}")
        ids = t.astype(np.int64) - TEXT_BASE
        if ids.size and (ids.min() < 0 or ids.max() >= model.vocab or not model.valid[ids].all()):
            raise CorruptDataError(f"text token ids outside the {model.vocab}-piece slice starting at {TEXT_BASE}")
        return model.bytes_of(ids)


__all__ = ["DEFAULT_VOCAB", "MODEL_DIR", "TextTokenizer", "available_vocabs", "manifest"]
