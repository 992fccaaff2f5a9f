"""``mmz archive create|list|extract|verify|info`` — the archive command line.

Exit status: 0 success, 1 error (including any damaged member), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import time

from mmz import codec as _codec
from mmz.archive.reader import Archive
from mmz.archive.writer import DEFAULT_CHUNK_SIZE, create
from mmz.errors import MmzError


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    mult = units.get(t[-1:], 1)
    try:
        return int(float(t[:-1] if t[-1:] in units else t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 65536, 512K, 8M)") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmz archive", description="Arrow-indexed .mmza archives with random access.")
    sub = p.add_subparsers(dest="verb", required=True)

    c = sub.add_parser("create", help="archive files and directories (members named relative to each SRC)")
    c.add_argument("sources", nargs="+", metavar="SRC", help="files, directories or pyarrow.fs URIs")
    c.add_argument("-o", "--output", required=True, metavar="ARCHIVE", help="archive directory, e.g. out/x.mmza")
    for n in range(1, 10):
        c.add_argument(f"-{n}", dest="level", action="store_const", const=n, help=argparse.SUPPRESS)
    c.add_argument("--codec", default="auto", choices=_codec.CODECS, help="engine (default: auto)")
    c.add_argument("--modality", choices=_codec.MODALITIES, help="override modality detection")
    c.add_argument("--chunk-size", type=_size, default=DEFAULT_CHUNK_SIZE, metavar="BYTES",
                   help="raw bytes per chunk/frame (default 8M)")
    c.add_argument("-T", "--threads", type=int, default=0, metavar="N", help="worker threads (0 = all cores)")
    c.add_argument("--resume", action="store_true", help="continue an interrupted create with the same options")
    c.add_argument("-q", "--quiet", action="store_true")

    ls = sub.add_parser("list", help="list members (like tar -tv)")
    ls.add_argument("archive")
    ls.add_argument("--json", action="store_true", help="one JSON object per member")

    x = sub.add_parser("extract", help="extract all or some members")
    x.add_argument("archive")
    x.add_argument("members", nargs="*", help="member names (default: all)")
    x.add_argument("-o", "--output", default=".", metavar="DEST",
                   help="destination directory; with one MEMBER, a file path is also accepted")

    v = sub.add_parser("verify", help="decode everything and check every checksum")
    v.add_argument("archive")
    v.add_argument("members", nargs="*")
    v.add_argument("--json", action="store_true")

    i = sub.add_parser("info", help="archive metadata and totals")
    i.add_argument("archive")
    i.add_argument("--json", action="store_true")
    return p


def _create(args: argparse.Namespace) -> int:
    t0 = time.time()
    s = create(args.sources, args.output, level=args.level or _codec.DEFAULT_LEVEL, codec=args.codec,
               chunk_size=args.chunk_size, modality=args.modality, threads=args.threads, resume=args.resume)
    if not args.quiet:
        ratio = s.bytes_in / s.bytes_out if s.bytes_out else 0.0
        print(f"{args.output}: {s.members} members, {s.chunks} chunks, {s.bytes_in} -> {s.bytes_out} bytes "
              f"(x{ratio:.3f}, {8 * s.bytes_out / max(1, s.bytes_in):.3f} bits/byte) in {time.time() - t0:.1f}s")
    return 0


def _list(args: argparse.Namespace) -> int:
    arc = Archive(args.archive)
    for m in arc.members():
        if args.json:
            print(json.dumps({**m.__dict__}))
        else:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.mtime_ns / 1e9))
            print(f"{stat.filemode(stat.S_IFREG | m.mode)} {m.size:>12} {m.compressed:>12} {m.modality:<10} {when} "
                  f"{m.path}")
    return 0


def _extract(args: argparse.Namespace) -> int:
    arc = Archive(args.archive)
    names = args.members or None
    if names and len(names) == 1 and not os.path.isdir(args.output) and not args.output.endswith(os.sep):
        results = [arc.extract_member(names[0], args.output, as_file=True)]
    else:
        results = arc.extract(args.output, names)
    bad = [r for r in results if not r.ok]
    for r in bad:
        sys.stderr.write(f"mmz archive: {r.path}: {r.error}\n")
    if bad:
        sys.stderr.write(f"mmz archive: {len(bad)} of {len(results)} members failed; the others were extracted\n")
    return 1 if bad else 0


def _verify(args: argparse.Namespace) -> int:
    arc = Archive(args.archive)
    results = arc.verify(args.members or None)
    for r in results:
        if args.json:
            print(json.dumps({"path": r.path, "ok": r.ok, "error": r.error}))
        else:
            print(f"{'OK ' if r.ok else 'BAD'} {r.path}" + (f": {r.error}" if r.error else ""))
    bad = sum(not r.ok for r in results)
    if not args.json:
        print(f"{len(results) - bad} ok, {bad} damaged")
    return 1 if bad else 0


def _info(args: argparse.Namespace) -> int:
    info = Archive(args.archive).info()
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    meta = info["metadata"]
    print(f"archive: {info['path']} (format version {info['format_version']})")
    print(f"  written by: {meta.get('mmza.tool', '?')} at {meta.get('mmza.created', '?')}")
    print(f"  options: level {meta.get('mmza.level')}, codec {meta.get('mmza.codec')}, "
          f"chunk size {meta.get('mmza.chunk_size')}")
    print(f"  models: {', '.join(json.loads(meta.get('mmza.models', '[]'))) or 'none'}")
    print(f"  members: {info['members']}  chunks: {info['chunks']}  shards: {len(info['shards'])}")
    print(f"  bytes: {info['bytes']} -> {info['compressed']} ({info['bits_per_byte']:.3f} bits/byte); "
          f"index {info['index_bytes']} + {info['members_bytes']} bytes")
    return 0


def main(argv: list[str]) -> int:
    """Run ``mmz archive ARGV``; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    verbs = {"create": _create, "list": _list, "extract": _extract, "verify": _verify, "info": _info}
    try:
        return verbs[args.verb](args)
    except (MmzError, OSError) as e:
        sys.stderr.write(f"mmz archive {args.verb}: {e}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("mmz archive: interrupted\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
