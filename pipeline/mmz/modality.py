"""Modality detection: which model family should code a file.

:func:`detect` looks at the content first (magic bytes, then the structure and
statistics of the first bytes) and at the file name only when the content is
ambiguous (empty or too short, or text that could be prose or a table). It
never raises and takes well under a millisecond on a 64 KiB head: every scan
is a C-level ``bytes`` operation or a loop over at most a few hundred lines.

Ids: the position in :data:`MODALITIES` is the modality id stored in frame
headers (= the Rust ``Modality`` enum).
"""

from __future__ import annotations

import re

#: Modality names; the index is the on-disk modality id.
MODALITIES: tuple[str, ...] = ("binary", "text", "structured", "gene", "image", "audio")

# --- magic bytes -----------------------------------------------------------------------------

_PNG = b"\x89PNG\r\n\x1a\n"
# Already entropy-coded or archive formats: the byte-level (binary) model is the honest choice.
_BINARY_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a", b"GIF89a",
    b"\x1f\x8b",  # gzip
    b"PK\x03\x04", b"PK\x05\x06",  # zip
    b"\x28\xb5\x2f\xfd",  # zstd
    b"\xfd7zXZ\x00",  # xz
    b"BZh",  # bzip2
    b"7z\xbc\xaf\x27\x1c",
    b"\x7fELF",
    b"fLaC", b"OggS", b"ID3",
    b"%PDF",
    b"\x00\x00\x00\x0cjP  ",  # JPEG 2000
    b"\xff\x0a",  # JPEG XL codestream
    b"SQLite format 3\x00",
    b"PAR1",  # parquet
    b"ARROW1",
)
_PNM = re.compile(rb"P[1-7][ \t\r\n#]")

_NAME_MODALITY = {
    "txt": "text", "md": "text", "rst": "text", "pod": "text", "tex": "text", "text": "text", "rtf": "text",
    "csv": "structured", "tsv": "structured", "psv": "structured", "sql": "structured", "json": "structured",
    "jsonl": "structured", "ndjson": "structured", "xml": "structured", "html": "structured",
    "htm": "structured", "yaml": "structured", "yml": "structured", "toml": "structured", "ini": "structured",
    "py": "structured", "c": "structured", "h": "structured", "cc": "structured", "cpp": "structured",
    "hpp": "structured", "rs": "structured", "js": "structured", "ts": "structured", "java": "structured",
    "go": "structured", "sh": "structured", "pl": "structured", "rb": "structured", "r": "structured",
    "fa": "gene", "fasta": "gene", "fna": "gene", "ffn": "gene", "faa": "gene", "fas": "gene",
    "fq": "gene", "fastq": "gene", "sam": "gene", "vcf": "gene",
    "png": "image", "ppm": "image", "pgm": "image", "pbm": "image", "pnm": "image", "pam": "image",
    "bmp": "image", "tif": "image", "tiff": "image", "dcm": "image",
    "wav": "audio", "wave": "audio", "aif": "audio", "aiff": "audio", "aifc": "audio",
}

# --- text statistics -------------------------------------------------------------------------

_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13)) + b"\x7f"
_DIGITS = b"0123456789"
_NUMERIC = b"0123456789.-+eE"
_SEQ_BYTES = b"ACGTUNacgtunRYKMSWBDHVrykmswbdhv-*."
_SQL_START = (
    b"BEGIN", b"COMMIT", b"CREATE", b"INSERT", b"SELECT", b"UPDATE", b"DELETE", b"DROP", b"ALTER",
    b"PRAGMA", b"WITH", b"END", b"ROLLBACK", b"--",
)
_QUOTED = re.compile(rb'"[^"]*"')
_WORD = re.compile(rb"[A-Za-z\x80-\xff]{2,}")
_CODE_START = re.compile(
    rb"\s*(?:def |class |import |from \S+ import|#include|#define|fn |pub |let |const |var |function |"
    rb"return\b|if ?\(|for ?\(|while ?\(|}|{|package |using |public |private |static |int |void |"
    rb"#!|@|\)|//|/\*|\*)"
)


def _magic(head: bytes) -> str | None:
    if head.startswith(_PNG):
        return "image"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    if len(head) >= 14 and head[:2] == b"BM":
        # BITMAPFILEHEADER: reserved words are zero and the pixel offset lies past the headers.
        offset = int.from_bytes(head[10:14], "little")
        if head[6:10] == b"\x00\x00\x00\x00" and 26 <= offset < (1 << 26):
            return "image"
    if _PNM.match(head[:3]) and len(head) > 3:
        rest = head[2:64].lstrip(b" \t\r\n")
        if rest[:1].isdigit() or rest[:1] == b"#" or head[1:2] == b"7":
            return "image"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "image"
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "audio"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio"
    for m in _BINARY_MAGIC:
        if head.startswith(m):
            return "binary"
    if len(head) >= 12 and head[:4] == b"RIFF":  # AVI, WebP, ...: not PCM audio
        return "binary"
    return None


def _looks_binary(head: bytes) -> bool:
    """Control bytes or invalid UTF-8 in more than a trace amount."""
    if not head:
        return False
    if b"\x00" in head[:8192] and head.count(b"\x00") * 200 > len(head):
        return True
    n_ctrl = len(head) - len(head.translate(None, _CONTROL))
    if n_ctrl * 100 > len(head):
        return True
    try:
        head.decode("utf-8")
        return False
    except UnicodeDecodeError as e:
        if e.start >= len(head) - 3 and e.reason == "unexpected end of data":
            return False  # a character cut by the head boundary
        bad = len(head) - len(head.decode("utf-8", "ignore").encode("utf-8"))
        return bad * 50 > len(head)  # > 2 % invalid bytes: not text (latin-1 prose stays text)


def _lines(head: bytes, limit: int = 200, window: int = 8192) -> list[bytes]:
    lines = head[:window].split(b"\n", limit)
    if len(lines) > 1 and len(head) > window or len(lines) > limit:
        lines = lines[:-1]  # last line may be cut
    return [ln.rstrip(b"\r") for ln in lines]


def _is_fastq(lines: list[bytes]) -> bool:
    recs = 0
    i = 0
    while i + 3 < len(lines):
        h, s, p, q = lines[i:i + 4]
        if not (h.startswith(b"@") and p.startswith(b"+") and len(s) == len(q) and s):
            return False
        if len(s.translate(None, _SEQ_BYTES)) > 0.1 * len(s):
            return False
        recs += 1
        i += 4
    return recs >= 1 or (len(lines) >= 2 and lines[0].startswith(b"@") and len(lines[1]) > 0
                         and not lines[1].translate(None, _SEQ_BYTES))


def _is_fasta(lines: list[bytes]) -> bool:
    body = b"".join(ln for ln in lines if ln and not ln.startswith((b">", b";")))
    if not body:
        return False
    if len(body.translate(None, _SEQ_BYTES)) <= 0.1 * len(body):
        return True
    return body.isalpha()  # protein FASTA: letters only


def _delimited(lines: list[bytes]) -> bool:
    """CSV/TSV-like: consecutive lines carry the same non-zero number of one delimiter.

    Comparing neighbours (not a global mode) keeps files that concatenate tables with
    different column counts structured.
    """
    body = [_QUOTED.sub(b"", ln) for ln in lines if ln.strip()]
    if len(body) < 3:
        return False
    for d in (b",", b"\t", b";", b"|"):
        counts = [ln.count(d) for ln in body]
        same = sum(1 for a, b in zip(counts, counts[1:], strict=False) if a == b and a > 0)
        if same >= 0.7 * (len(body) - 1):
            return True
    return False


def _numeric_table(head: bytes) -> bool:
    """Mostly numbers separated by whitespace (space-delimited tables)."""
    compact = head.translate(None, b" \t\r\n")
    if len(compact) < 16:
        return False
    numeric = len(compact) - len(compact.translate(None, _NUMERIC))
    return numeric >= 0.85 * len(compact)


def _text_kind(head: bytes, name_hint: str | None) -> str:
    """``text``, ``structured`` or ``gene`` for a head that decodes as text."""
    lines = _lines(head)
    nonempty = [ln for ln in lines if ln.strip()]
    if not nonempty:
        return name_hint if name_hint in ("text", "structured", "gene") else "text"
    first = nonempty[0].lstrip()
    if first.startswith(b"@") and _is_fastq(lines[lines.index(nonempty[0]):]):
        return "gene"
    if first.startswith(b">") and _is_fasta(nonempty):
        return "gene"
    if first[:1] in (b"{", b"[") and (b'":' in head[:4096] or b'": ' in head[:4096] or first[:1] == b"["):
        if first[:1] == b"{" or first.rstrip().endswith((b"[", b"{", b",", b"]")):
            return "structured"
    if first.startswith((b"<?xml", b"<!DOCTYPE", b"<html", b"<HTML", b"<svg")):
        return "structured"
    upper = [ln.lstrip() for ln in nonempty]
    sql = sum(ln.upper().startswith(_SQL_START) for ln in upper)
    if sql >= 0.5 * len(nonempty):
        return "structured"
    if _delimited(nonempty):
        return "structured"
    if _numeric_table(head[:8192]):
        return "structured"
    code = sum(bool(_CODE_START.match(ln)) for ln in nonempty)
    ends = sum(ln.rstrip().endswith((b";", b"{", b"}", b"):", b")")) for ln in nonempty)
    if code + ends >= 0.6 * len(nonempty) and len(nonempty) >= 5:
        return "structured"
    # Prose has words: trust a structured/gene file name only when words are sparse.
    sample = head[:8192]
    words = len(_WORD.findall(sample))
    if name_hint in ("structured", "gene") and words * 12 < len(sample):
        return name_hint
    return "text"


def _name_hint(name: str | None) -> str | None:
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    for suffix in (".gz", ".bz2", ".xz", ".zst"):
        if base.endswith(suffix):
            return None  # compressed: the content decides (and says binary)
    if "." not in base:
        return None
    return _NAME_MODALITY.get(base.rsplit(".", 1)[1])


def detect(head: bytes, name: str | None = None) -> str:
    """Modality of a file from its first bytes (callers pass up to 64 KiB) and, second, its name.

    Content decides first: magic bytes (PNG, PNM, BMP, TIFF, DICOM -> ``image``; WAV, AIFF ->
    ``audio``; compressed/archive formats -> ``binary``), then whether the bytes are text, then
    the text's structure (FASTA/FASTQ -> ``gene``; SQL, CSV/TSV, JSON, XML, source code ->
    ``structured``; otherwise ``text``). The name only breaks ties (empty input, text that
    is neither clearly prose nor clearly structured). Never raises; unknown -> ``binary``.

    Args:
        head: the first bytes of the file (any length; 64 KiB is plenty).
        name: the file name or path, if known.
    """
    try:
        head = bytes(head[:65536])
        hint = _name_hint(name) if isinstance(name, str) else None
        if not head:
            return hint or "binary"
        found = _magic(head)
        if found is not None:
            return found
        if _looks_binary(head):
            return "binary"
        return _text_kind(head, hint)
    except Exception:  # noqa: BLE001 - detection is advisory and must never fail a compression
        return "binary"


__all__ = ["MODALITIES", "detect"]
