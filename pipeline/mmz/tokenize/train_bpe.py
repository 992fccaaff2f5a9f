"""Train the text-like SentencePiece BPE models shipped in ``mmz/models/tokenizer``.

Usage::

    python -m mmz.tokenize.train_bpe --vocab 4096 8192 16384 \\
        --corpus /work/shared/corpus --out pipeline/mmz/models/tokenizer

The training text is a deterministic sample of the TRAIN split
(:func:`mmz.tokenize.split.is_validation` is False) of the ``text``,
``structured`` and ``gene`` files listed in ``MANIFEST.tsv``: each modality gets
the same byte budget, spread evenly over its files, taken as evenly spaced
64 KiB blocks cut to whole lines. Lines are the training sentences (the
tokenizer never gives SentencePiece a newline: it codes ``\\n`` as a byte
token). The sample's sha256 goes into the manifest, so a retrain can be
checked for identical input. Normalization is the identity, whitespace is kept
verbatim, and byte fallback is on; the tokenizer still verifies every
encoding and escapes anything SentencePiece cannot reproduce.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from mmz.tokenize.split import is_validation

#: Default corpus location on the development machines.
DEFAULT_CORPUS = Path("/work/shared/corpus")
#: Where the shipped models live.
MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "tokenizer"
BLOCK = 1 << 16
TEXT_LIKE = ("text", "structured", "gene")

#: SQL keywords as user-defined symbols (always one token). Single words only: SentencePiece
#: sees spaces as U+2581, so multi-word symbols would never match.
SQL_SYMBOLS = (
    "INSERT", "INTO", "VALUES", "CREATE", "TABLE", "BEGIN", "TRANSACTION", "COMMIT", "SELECT", "FROM",
    "WHERE", "INTEGER", "TEXT", "REAL", "NULL", "PRIMARY", "KEY", "NOT",
)
#: Nucleotides must be single pieces whatever the sample holds.
REQUIRED_CHARS = "ACGTN"


def training_files(corpus: Path) -> list[tuple[str, str, int]]:
    """``(modality, relpath, bytes)`` of every train-split text-like file, in manifest order."""
    manifest = corpus / "MANIFEST.tsv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found; pass --corpus pointing at the corpus root")
    out = []
    with manifest.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["modality"] in TEXT_LIKE and not is_validation(row["path"]):
                out.append((row["modality"], row["path"], int(row["bytes"])))
    return out


def sample_lines(corpus: Path, budget_per_modality: int) -> Iterator[bytes]:
    """Deterministic training sample: evenly spaced 64 KiB blocks, cut to whole lines."""
    files = training_files(corpus)
    for modality in TEXT_LIKE:
        mine = [f for f in files if f[0] == modality]
        if not mine:
            continue
        per_file = budget_per_modality // len(mine)
        for _, rel, size in mine:
            n_blocks = max(1, -(-size // BLOCK))
            take = min(n_blocks, max(1, per_file // BLOCK))
            with (corpus / rel).open("rb") as f:
                for k in range(take):
                    f.seek((k * n_blocks // take) * BLOCK)
                    block = f.read(BLOCK)
                    lines = block.split(b"\n")
                    if k * n_blocks // take > 0:
                        lines = lines[1:]  # first line is cut
                    if len(block) == BLOCK:
                        lines = lines[:-1]  # last line is cut
                    yield from (ln for ln in lines if ln)


def _sentences(lines: list[bytes]) -> list[str]:
    # The tokenizer sends SentencePiece only valid UTF-8 without U+2581 (see text.py); train alike.
    out = []
    for ln in lines:
        s = ln.decode("utf-8", "replace").replace("\ufffd", "").replace("\u2581", "")
        if s:
            out.append(s)
    return out


def train(vocab: int, sentences: list[str], threads: int) -> bytes:
    """Serialized SentencePiece BPE model with our exactness-preserving options."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=buf, vocab_size=vocab, model_type="bpe",
        character_coverage=0.9995, normalization_rule_name="identity", add_dummy_prefix=False,
        remove_extra_whitespaces=False, byte_fallback=True, allow_whitespace_only_pieces=True,
        split_digits=False, split_by_whitespace=True, max_sentence_length=1 << 16,
        max_sentencepiece_length=16, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
        user_defined_symbols=list(SQL_SYMBOLS), required_chars=REQUIRED_CHARS,
        input_sentence_size=0, shuffle_input_sentence=False, num_threads=threads, minloglevel=2,
    )
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; writes ``text_bpe_<V>.model`` files and ``manifest.json``."""
    ap = argparse.ArgumentParser(prog="python -m mmz.tokenize.train_bpe", description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", type=int, nargs="+", default=[16384], help="vocabulary sizes to train")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus root (holds MANIFEST.tsv)")
    ap.add_argument("--out", type=Path, default=MODEL_DIR, help="output folder")
    ap.add_argument("--budget-mb", type=float, default=6.0, help="sample bytes per modality (MB)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    lines = list(sample_lines(args.corpus, int(args.budget_mb * 1e6)))
    data_hash = hashlib.sha256(b"\n".join(lines)).hexdigest()
    sentences = _sentences(lines)
    print(f"sample: {len(lines)} lines, {sum(map(len, lines)) / 1e6:.1f} MB, sha256 {data_hash[:16]}",
          file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"models": []}
    models = {m["vocab"]: m for m in manifest.get("models", [])}
    for v in args.vocab:
        t0 = time.perf_counter()
        blob = train(v, sentences, args.threads)
        name = f"text_bpe_{v // 1024}k.model" if v % 1024 == 0 else f"text_bpe_{v}.model"
        (args.out / name).write_bytes(blob)
        models[v] = {"vocab": v, "file": name, "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob),
                     "train_seconds": round(time.perf_counter() - t0, 1)}
        print(f"vocab {v}: {name} {len(blob)} bytes in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    manifest = {
        "format": 1,
        "kind": "sentencepiece-bpe",
        "modalities": list(TEXT_LIKE),
        "tokenizer_id": "sha256 of the model file",
        "training_command": "python -m mmz.tokenize.train_bpe --vocab "
                            + " ".join(str(v) for v in sorted(models)) + f" --budget-mb {args.budget_mb:g}",
        "training_data": {"split": "mmz.tokenize.split.is_validation == False",
                          "modalities": list(TEXT_LIKE), "bytes_per_modality": int(args.budget_mb * 1e6),
                          "lines": len(lines), "sha256": data_hash},
        "models": [models[v] for v in sorted(models)],
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
