"""The ``mmz`` command line, following zstd/xz conventions.

``mmz [-z|-d|-t|-l] [-o OUT] [-c] [-k] [--rm] [-f] [-#] [-T N] [-v|-q] [FILES... | -]``
plus the subcommands ``compress``/``decompress`` (long forms) and ``archive``,
``bench``, ``eval``, ``train``, ``export`` (dispatched to their modules).
Exit status: 0 success, 1 error, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, BinaryIO

from mmz import __version__
from mmz import api as _api
from mmz import codec as _codec
from mmz.errors import MmzError
from mmz.frame import scan

SUFFIX = ".mmz"

#: Subcommands implemented in other modules: name -> (module, argv prefix).
SUBCOMMANDS: dict[str, tuple[str, list[str]]] = {
    "archive": ("mmz.archive.cli", []),
    "bench": ("mmz.bench.cli", []),
    "eval": ("mmz.model.cli", ["eval"]),
    "train": ("mmz.model.cli", ["train"]),
    "export": ("mmz.model.cli", ["export"]),
}


class UsageError(Exception):
    """Bad command line (exit status 2)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mmz",
        description="mmz: learned multi-modal lossless compressor. Compresses FILES (or stdin) to FILE.mmz.",
        epilog="Subcommands: mmz archive|bench|eval|train|export --help. Exit status: 0 ok, 1 error, 2 usage.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("-z", "--compress", dest="mode", action="store_const", const="compress",
                      help="compress (default)")
    mode.add_argument("-d", "--decompress", "--uncompress", dest="mode", action="store_const",
                      const="decompress", help="decompress")
    mode.add_argument("-t", "--test", dest="mode", action="store_const", const="test",
                      help="decompress and verify, write nothing")
    mode.add_argument("-l", "--list", dest="mode", action="store_const", const="list",
                      help="list frame information")
    for n in range(1, 10):
        p.add_argument(f"-{n}", dest="level", action="store_const", const=n,
                       help=argparse.SUPPRESS if n not in (1, 5, 9) else
                       {1: "fastest (preset fast, levels 1-3)", 5: "default (preset default, 4-6)",
                        9: "best (preset max, 7-9)"}[n])
    p.add_argument("--preset", choices=("fast", "default", "max"), help="preset instead of a level")
    p.add_argument("--codec", default="auto", choices=_codec.CODECS,
                   help="engine (default: auto = the network on text up to 256 KiB and structured/FASTQ "
                        "up to 1 MiB at -4..-6, 2/4 MiB at -7..-9; CM otherwise)")
    p.add_argument("--modality", choices=_codec.MODALITIES, help="override modality detection")
    p.add_argument("--model", metavar="PATH", help="model directory for --codec neural (auto uses shipped models only)")
    p.add_argument("--chunk-size", type=_size, metavar="BYTES", help="raw bytes per chunk (e.g. 8M)")
    p.add_argument("-o", "--output", metavar="OUT", help="output file (single input only)")
    p.add_argument("-c", "--stdout", action="store_true", help="write to standard output")
    p.add_argument("-k", "--keep", action="store_true", default=True, help="keep input files (default)")
    p.add_argument("--rm", action="store_true", help="remove input files after success")
    p.add_argument("-f", "--force", action="store_true",
                   help="overwrite outputs; allow binary output to a terminal")
    p.add_argument("-T", "--threads", type=int, default=0, metavar="N", help="threads (0 = all cores)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more output")
    p.add_argument("-q", "--quiet", action="count", default=0, help="less output")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.add_argument("-V", "--version", action="version", version=f"mmz {__version__}")
    p.add_argument("files", nargs="*", metavar="FILE", help="input files; '-' or none reads stdin")
    return p


def _size(text: str) -> int:
    """Parse ``1048576``, ``512k``, ``8M``, ``8MiB`` or ``1G`` into bytes."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(t[-1:], 1)
    try:
        value = int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if not 1 <= value <= 1 << 30:
        raise argparse.ArgumentTypeError("chunk size must be between 1 byte and 1 GiB")
    return value


class _Progress:
    """A one-line progress display on stderr (only when stderr is a terminal).

    Nothing is drawn during the first second (small inputs stay silent).
    Called with the input bytes done after each chunk; between calls a
    heartbeat thread redraws the line once a second with the elapsed time, so
    a long chunk (a neural chunk of 1 MiB takes 30-60 s) still shows that work
    goes on.
    """

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.start = time.monotonic()
        self.last = 0.0
        self.done = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        if enabled:
            self._beat = threading.Thread(target=self._heartbeat, name="mmz-progress", daemon=True)
            self._beat.start()

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            self.done = done
            if now - self.start >= 1.0 and now - self.last >= 0.2:
                self._draw(now)

    def _heartbeat(self) -> None:
        while not self._stop.wait(0.5):
            now = time.monotonic()
            with self._lock:
                if now - self.start >= 1.0 and now - self.last >= 1.0 and not self._stop.is_set():
                    self._draw(now)

    def _draw(self, now: float) -> None:
        self.last = now
        elapsed = now - self.start
        rate = self.done / max(1e-9, elapsed) / 1e6
        pct = f"{100 * self.done / self.total:5.1f}% " if self.total else ""
        sys.stderr.write(f"\r{self.label}: {pct}{self.done / 1e6:9.1f} MB  {rate:6.2f} MB/s  {elapsed:5.0f} s ")
        sys.stderr.flush()

    def close(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if self.enabled and self.last:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _atomic_output(path: str, force: bool) -> tuple[IO[bytes], Callable[[bool], None]]:
    """Open a temporary file beside ``path``; the returned closer renames it into place or removes it."""
    if os.path.exists(path) and not force:
        raise MmzError(f"{path} already exists; use -f to overwrite")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".mmz-", suffix=".tmp", dir=directory)
    fp = os.fdopen(fd, "wb")

    def close(ok: bool) -> None:
        fp.close()
        if ok:
            os.replace(tmp, path)
        else:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    return fp, close


def _output_name(src: str, mode: str) -> str:
    if mode == "compress":
        return src + SUFFIX
    if src.endswith(SUFFIX) and len(src) > len(SUFFIX):
        return src[: -len(SUFFIX)]
    raise MmzError(f"{src}: unknown suffix (expected {SUFFIX}); use -o or -c")


def _process_one(src: str, args: argparse.Namespace, level: int, verbosity: int) -> None:
    mode = args.mode
    from_stdin = src == "-"
    in_fp: BinaryIO = sys.stdin.buffer if from_stdin else open(src, "rb")  # noqa: SIM115
    try:
        size = None if from_stdin else os.fstat(in_fp.fileno()).st_size
        if mode == "list":
            _list(src, in_fp, verbosity)
            return
        to_stdout = args.stdout or (from_stdin and not args.output) or mode == "test"
        if mode == "compress" and to_stdout and not args.force and mode != "test" and sys.stdout.isatty():
            raise MmzError("refusing to write compressed data to a terminal; use -o FILE, redirect, or -f")
        # Drawn only once the work has lasted a second (see _Progress).
        show = not args.no_progress and verbosity >= 1 and sys.stderr.isatty()
        progress = _Progress(os.path.basename(src) if not from_stdin else "stdin", size, show)
        dest_path = None
        if mode == "test":
            out_fp: IO[bytes] = open(os.devnull, "wb")  # noqa: SIM115
            finish: Callable[[bool], None] = lambda ok: out_fp.close()  # noqa: E731
        elif to_stdout:
            out_fp = sys.stdout.buffer
            finish = lambda ok: out_fp.flush()  # noqa: E731
        else:
            dest_path = args.output or _output_name(src, mode)
            if not from_stdin and os.path.abspath(dest_path) == os.path.abspath(src):
                raise MmzError(f"{src}: output would overwrite the input")
            out_fp, finish = _atomic_output(dest_path, args.force)
        ok = False
        start = time.monotonic()
        try:
            if mode == "compress":
                n_in, n_out = _api.compress_stream(
                    in_fp, out_fp, level=level, codec=args.codec, modality=args.modality,
                    name=None if from_stdin else src, threads=args.threads, chunk_size=args.chunk_size,
                    size_hint=size, progress=progress)
            else:
                n_out, n_in = _api.decompress_stream(in_fp, out_fp, threads=args.threads, progress=progress)
            ok = True
        finally:
            progress.close()
            finish(ok)
        if dest_path and not from_stdin:
            st = os.stat(src)
            os.chmod(dest_path, st.st_mode & 0o7777)
            os.utime(dest_path, ns=(st.st_atime_ns, st.st_mtime_ns))
        if verbosity >= 2 or (verbosity >= 1 and mode == "test"):
            secs = max(1e-9, time.monotonic() - start)
            ratio = 100.0 * n_out / n_in if n_in else 0.0
            what = {"compress": "compressed", "decompress": "decompressed", "test": "OK"}[mode]
            sys.stderr.write(f"{src}: {what} {n_in} -> {n_out} bytes ({ratio:.2f}%), "
                             f"{n_in / secs / 1e6:.2f} MB/s\n")
    finally:
        if not from_stdin:
            in_fp.close()
    if args.rm and not from_stdin and mode in ("compress", "decompress") and not args.stdout:
        os.unlink(src)


def _list(src: str, fp: BinaryIO, verbosity: int) -> None:
    frames = list(scan(fp))
    comp = sum(f["compressed_len"] for f in frames)
    raw = sum(f["content_len"] for f in frames)
    ratio = raw / comp if comp else 0.0
    print(f"{'Frames':>6} {'Compressed':>12} {'Uncompressed':>13} {'Ratio':>7}  Modality    Codec    Filename")
    mods = ",".join(sorted({f['modality'] for f in frames}))
    codecs = ",".join(sorted({c for f in frames for c in f["codecs"]}))
    print(f"{len(frames):>6} {comp:>12} {raw:>13} {ratio:>7.3f}  {mods:<11} {codecs:<8} {src}")
    if verbosity >= 2:
        for i, f in enumerate(frames):
            print(f"frame {i}:")
            print(f"  modality: {f['modality']}")
            print(f"  level: {f['level']}  preset: {_codec.PRESETS.get(f['level'], '?')}")
            print(f"  codec: {','.join(f['codecs']) or f['codec']}")
            print(f"  transform: {f['transform']}")
            print(f"  chunks: {f['chunks']}  chunk size: {f['chunk_size']}")
            print(f"  content: {f['content_len']} bytes  compressed: {f['compressed_len']} bytes")
            print(f"  model: {f['model_id'].hex() if f['model_id'] else 'none'}")
            print(f"  tokenizer: {f['tokenizer_id'].hex() if f['tokenizer_id'] else 'none'}")


def _dispatch(argv: list[str]) -> int | None:
    """Run a subcommand if ``argv`` starts with one; None otherwise."""
    if not argv:
        return None
    head = argv[0]
    if head in ("compress", "decompress"):
        return _main_codec(["-z" if head == "compress" else "-d", *argv[1:]])
    if head in SUBCOMMANDS:
        module, prefix = SUBCOMMANDS[head]
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            sys.stderr.write(f"mmz {head}: not available in this installation ({e})\n")
            return 1
        return int(mod.main([*prefix, *argv[1:]]) or 0)
    return None


def _main_codec(argv: list[str]) -> int:
    # The codec makes no BLAS calls, but OpenBLAS (loaded with numpy by the
    # tokenizers) starts one spinning thread per core: ~3% of a 16 KiB neural
    # compress's CPU time on two cores. Only when the user has not chosen.
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help/--version
        return int(e.code or 0)
    args.mode = args.mode or "compress"
    verbosity = 1 + args.verbose - args.quiet
    level = args.level or {"fast": 2, "default": 5, "max": 9}.get(args.preset or "", _codec.DEFAULT_LEVEL)
    files = args.files or ["-"]
    if args.output and len(files) > 1:
        sys.stderr.write("mmz: -o/--output takes a single input file\n")
        return 2
    if args.threads < 0:
        sys.stderr.write("mmz: -T/--threads must be >= 0\n")
        return 2
    if args.model:
        os.environ["MMZ_MODEL"] = args.model
    status = 0
    for src in files:
        try:
            _process_one(src, args, level, verbosity)
        except KeyboardInterrupt:
            sys.stderr.write("mmz: interrupted\n")
            return 1
        except (MmzError, OSError) as e:
            if verbosity >= 0:
                sys.stderr.write(f"mmz: {src}: {e}\n")
            status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mmz`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        result = _dispatch(argv)
        return _main_codec(argv) if result is None else result
    except BrokenPipeError:
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
