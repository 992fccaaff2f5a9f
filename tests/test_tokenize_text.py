"""Text-like and binary tokenizers, the unified vocabulary and the train/validation split."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from conftest import DEV, SAMPLE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmz.errors import CorruptDataError
from mmz.modality import MODALITIES
from mmz.tokenize import StreamingTokenizer, Tokenizer, get_tokenizer
from mmz.tokenize import vocab as V
from mmz.tokenize.binary import BinaryTokenizer
from mmz.tokenize.split import is_validation
from mmz.tokenize.text import MODEL_DIR, TextTokenizer, available_vocabs, manifest

VOCABS = (4096, 8192, 16384)
TEXT_TOKS = {v: TextTokenizer("text", vocab=v) for v in VOCABS}

# Text with the characters SentencePiece would otherwise touch: spaces at the start, runs of
# spaces, tabs, CR, NUL and other controls, U+2581, NBSP, ideographic space, combining marks,
# characters NFKC would change, and the text of special pieces.
_tricky = st.sampled_from([" ", "  ", "\t", "\r", "\r\n", "\n", "\x00", "\x1b", "\x7f", "\u2581", "\u00a0",
                           "\u3000", "e\u0301", "\ufb01", "\u2126", "<unk>", "<s>", "</s>", "<0x41>", "INSERT",
                           "ACGT", "\ufeff", "\U0001f600", "\u200b"])
_texty = st.lists(st.one_of(st.text(max_size=20), _tricky), max_size=30).map("".join)


def _roundtrip(tok: Tokenizer, data: bytes) -> np.ndarray:
    tokens, header = tok.encode(data)
    assert tokens.dtype == np.int32 and tokens.ndim == 1
    start, stop = V.slice_for(tok.modality, getattr(tok, "vocab", V.TEXT_MAX_VOCAB))
    assert tokens.size == 0 or (tokens.min() >= start and tokens.max() < stop)
    assert tok.decode(tokens, header) == data
    return tokens


# -- unified vocabulary ---------------------------------------------------------------------------

def test_vocab_layout_is_disjoint_and_complete() -> None:
    seen = np.zeros(V.VOCAB_SIZE, dtype=int)
    for m in ("binary", "text", "image", "audio"):
        seen += V.mask(m)
    seen[[V.prefix_token(m) for m in MODALITIES]] += 1
    assert seen.max() == 1
    assert (seen[V.N_PREFIX:] == 1).all()
    assert [V.prefix_token(m) for m in MODALITIES] == list(range(6))
    assert V.slice_for("gene") == V.slice_for("structured") == (V.TEXT_BASE, V.TEXT_BASE + V.TEXT_MAX_VOCAB)
    assert V.slice_for("text", 4096) == (V.TEXT_BASE, V.TEXT_BASE + 4096)
    assert V.mask("text", 4096).sum() == 4096
    with pytest.raises(ValueError, match="unknown modality"):
        V.slice_for("video")
    with pytest.raises(ValueError, match="vocabulary size"):
        V.slice_for("text", 20000)


def test_get_tokenizer_protocol() -> None:
    for m in ("binary", "text", "structured", "gene"):
        tok = get_tokenizer(m)
        assert isinstance(tok, StreamingTokenizer) and tok.modality == m
    assert get_tokenizer("text", vocab=4096).vocab == 4096
    with pytest.raises(ValueError, match="unknown modality"):
        get_tokenizer("video")
    with pytest.raises(ValueError, match="vocab"):
        get_tokenizer("text", vocab=1234)


# -- shipped models ---------------------------------------------------------------------------------

def test_manifest_matches_model_files() -> None:
    man = json.loads((MODEL_DIR / "manifest.json").read_text())
    assert available_vocabs() == list(VOCABS)
    total = 0
    for entry in man["models"]:
        blob = (MODEL_DIR / entry["file"]).read_bytes()
        total += len(blob)
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"]
        tok = TEXT_TOKS[entry["vocab"]]
        assert tok.tokenizer_id.hex() == entry["sha256"] and tok.vocab == entry["vocab"]
    assert total < 2_000_000
    assert "train_bpe" in man["training_command"] and len(man["training_data"]["sha256"]) == 64
    assert manifest() == man


def test_domain_symbols_are_single_tokens() -> None:
    tok = TEXT_TOKS[16384]
    for s in (b"A", b"C", b"G", b"T", b"N", b"INSERT", b"VALUES"):
        assert len(_roundtrip(tok, s)) == 1, s


# -- text-like round trips -------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"", b"\n", b" ", b"  leading spaces", b"trailing  \n\n", b"\r\n\r\n", b"\x00\x00", b"a\x00b",
    b"\xff", b"\xc3", b"\xe2\x96", b"\xe2\x96\x81", "\u2581\u2581x".encode(), b"\xed\xa0\x80",  # surrogate
    b"\xf4\x90\x80\x80", b"\xc0\xaf", "caf\u00e9 na\u00efve \U0001f600".encode(), b"<unk><s></s>",
    "e\u0301 \ufb01 \u2126".encode(), b"\t\tx = 1;\n", bytes(range(256)),
])
@pytest.mark.parametrize("vocab", VOCABS)
def test_text_edge_cases(data: bytes, vocab: int) -> None:
    _roundtrip(TEXT_TOKS[vocab], data)


def test_text_compresses_and_escapes() -> None:
    tok = TEXT_TOKS[16384]
    prose = b"The quick brown fox jumps over the lazy dog. " * 20
    assert len(_roundtrip(tok, prose)) < len(prose) / 2.5
    assert len(_roundtrip(tok, b"\xff\xfe")) == 2  # one byte token per invalid byte
    assert len(_roundtrip(tok, "\u2581".encode())) == 3  # escaped as its 3 UTF-8 bytes


def test_sample_files_roundtrip() -> None:
    files = [p for d in ("text", "structured", "gene") for p in sorted((SAMPLE / d).iterdir())]
    assert files
    for p in files:
        data = p.read_bytes()
        for v in VOCABS:
            tokens = _roundtrip(get_tokenizer(p.parent.name, vocab=v), data)
            assert len(data) / len(tokens) > 2.0, (p.name, v)


@given(st.binary(max_size=600))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_text_random_bytes(data: bytes) -> None:
    _roundtrip(TEXT_TOKS[16384], data)


@given(_texty)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_text_random_utf8(s: str) -> None:
    data = s.encode("utf-8", "surrogatepass")
    _roundtrip(TEXT_TOKS[16384], data)
    _roundtrip(TEXT_TOKS[4096], data)


@pytest.mark.slow
@given(st.one_of(st.binary(max_size=2000), _texty.map(lambda s: s.encode("utf-8", "surrogatepass"))),
       st.sampled_from(VOCABS))
@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_text_random_10k(data: bytes, vocab: int) -> None:
    _roundtrip(TEXT_TOKS[vocab], data)


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["text", "structured", "gene"])
def test_dev_corpus_roundtrip(modality: str) -> None:
    files = sorted((DEV / modality).iterdir()) if (DEV / modality).is_dir() else []
    if not files:
        pytest.skip(f"dev corpus not found at {DEV}")
    tok = get_tokenizer(modality)
    for p in files:
        _roundtrip(tok, p.read_bytes())


# -- streaming -------------------------------------------------------------------------------------

def _chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, k = [], 0, 0
    while pos < len(data):
        n = sizes[k % len(sizes)]
        out.append(data[pos:pos + n])
        pos += n
        k += 1
    return out


@given(_texty, st.lists(st.integers(1, 50), min_size=1, max_size=5), st.integers(4, 64))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_text_stream_any_chunking(s: str, sizes: list[int], carry: int) -> None:
    tok = TEXT_TOKS[8192]
    data = s.encode("utf-8", "surrogatepass")
    parts = list(tok.encode_stream(_chunks(data, sizes), max_carry=carry))
    assert b"".join(tok.decode_stream(parts)) == data
    whole, header = tok.encode(data)
    tokens = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    assert tok.decode(tokens, header) == data


def test_text_stream_matches_whole_encode_on_lines() -> None:
    tok = TEXT_TOKS[16384]
    data = (SAMPLE / "structured" / "statsmodels_fair.csv").read_bytes()
    parts = list(tok.encode_stream(_chunks(data, [4096, 777])))
    assert np.array_equal(np.concatenate(parts), tok.encode(data)[0])
    assert max(len(p) for p in parts) < 4096 + 777  # bounded: no part holds more than a chunk + carry


def test_text_stream_long_line_is_bounded() -> None:
    tok = TEXT_TOKS[4096]
    data = ("\u00e9" * 5000).encode()  # one 10 KB line of 2-byte characters
    parts = list(tok.encode_stream(_chunks(data, [999]), max_carry=2000))
    assert len(parts) > 3
    assert b"".join(tok.decode_stream(parts)) == data


# -- binary ----------------------------------------------------------------------------------------

@given(st.binary(max_size=3000), st.lists(st.integers(1, 100), min_size=1, max_size=4))
@settings(max_examples=300, deadline=None)
def test_binary_roundtrip_and_stream(data: bytes, sizes: list[int]) -> None:
    tok = BinaryTokenizer()
    tokens = _roundtrip(tok, data)
    assert tokens.tolist() == [V.BINARY_BASE + b for b in data]
    parts = list(tok.encode_stream(_chunks(data, sizes)))
    assert b"".join(tok.decode_stream(parts)) == data


@pytest.mark.slow
@given(st.binary(max_size=5000))
@settings(max_examples=10_000, deadline=None)
def test_binary_random_10k(data: bytes) -> None:
    _roundtrip(BinaryTokenizer(), data)


# -- corrupt input ----------------------------------------------------------------------------------

def test_decode_rejects_bad_input() -> None:
    tok = TEXT_TOKS[16384]
    tokens, header = tok.encode(b"hello world")
    with pytest.raises(CorruptDataError, match="header"):
        tok.decode(tokens, b"MZTX" + header[4:])
    with pytest.raises(CorruptDataError, match="header"):
        tok.decode(tokens, header[:-1])
    with pytest.raises(CorruptDataError, match="outside"):
        tok.decode(np.array([V.TEXT_BASE + tok.vocab], dtype=np.int32), header)
    with pytest.raises(CorruptDataError, match="outside"):
        tok.decode(np.array([V.TEXT_BASE], dtype=np.int32), header)  # <unk> is never emitted
    with pytest.raises(CorruptDataError, match="vocab"):
        tok.decode(tokens, header[:5] + (4096).to_bytes(4, "little") + header[9:])
    # a header written with another shipped model decodes with that model
    t4, h4 = TEXT_TOKS[4096].encode(b"hello world")
    assert tok.decode(t4, h4) == b"hello world"
    with pytest.raises(CorruptDataError):
        BinaryTokenizer().decode(np.array([0], dtype=np.int32), b"MZTB\x01")
    with pytest.raises(CorruptDataError):
        BinaryTokenizer().decode(np.array([V.BINARY_BASE], dtype=np.int32), b"")


# -- split -----------------------------------------------------------------------------------------

def test_split_is_deterministic_and_about_ten_percent() -> None:
    paths = [f"dev/x/file{i}.txt" for i in range(2000)]
    share = sum(map(is_validation, paths)) / len(paths)
    assert 0.07 < share < 0.13
    assert is_validation("dev/gene/ERR127302_2_subset.fastq")
    assert not is_validation("dev/text/fortunes.txt")
    assert is_validation("./dev/gene/ERR127302_2_subset.fastq") and is_validation("dev\\gene\\ERR127302_2_subset.fastq")
