"""``mmz bench PATH... [--json OUT] [--plot DIR] [--methods ...]``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys

from mmz.bench import inputs, methods, report, runner


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mmz bench``; returns the exit status (1 if any round trip failed)."""
    p = argparse.ArgumentParser(prog="mmz bench", description="Compare mmz with classical compressors "
                                "on your files: sizes, bits/byte, speed, peak RSS, verified round trips.")
    p.add_argument("paths", nargs="*", help="files or directories")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="instead of running: combine the results of earlier runs (later files win per "
                        "group and method) and write the report (--json/--markdown/--plot)")
    p.add_argument("--json", metavar="OUT", help="write results as JSON (schema: docs/bench_schema.json)")
    p.add_argument("--plot", metavar="DIR", help="write PNG plots to DIR")
    p.add_argument("--markdown", metavar="OUT", help="write the Markdown tables to OUT")
    p.add_argument("--methods", nargs="+", metavar="NAME", help="subset of methods (default: all available)")
    p.add_argument("--group-by", choices=("modality", "folder"), default="modality")
    p.add_argument("--sample", type=int, metavar="N", help="at most N files per group (deterministic stride)")
    p.add_argument("--max-bytes", type=int, metavar="B", help="at most B input bytes per group")
    p.add_argument("--estimate", action="store_true", help="also report the model's cross-entropy estimate")
    p.add_argument("--no-all-threads", action="store_true",
                   help="time mmz single-threaded only (skip the all-threads pass; halves the run time)")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    log = (lambda s: None) if args.quiet else (lambda s: print(f"[bench] {s}", file=sys.stderr, flush=True))
    if args.merge:
        if args.paths:
            p.error("--merge takes no input paths")
        doc = report.merge([_load(f) for f in args.merge])
        return _emit(doc, args, log)
    if not args.paths:
        p.error("give files or directories to benchmark (or --merge JSON...)")

    files = inputs.subsample(inputs.discover(args.paths, args.group_by), args.sample, args.max_bytes)
    if not files:
        print("mmz bench: no input files", file=sys.stderr)
        return 1
    wanted = set(args.methods or [])
    known = {m.name for m in methods.TOOLS} | {m.name for m in methods.MMZ}
    unknown = wanted - known
    if unknown:
        print(f"mmz bench: unknown methods {sorted(unknown)}; known: {sorted(known)}", file=sys.stderr)
        return 2
    tools = [t for t in methods.TOOLS if not wanted or t.name in wanted]
    skipped = sorted(t.name for t in tools if not t.available())
    tools = [t for t in tools if t.available()]
    mmz_methods = [m for m in methods.MMZ if (not wanted or m.name in wanted) and m.available()]
    if skipped:
        log(f"not installed, skipped: {', '.join(skipped)}")
    rows = runner.run_all(files, tools, mmz_methods, progress=log, estimate=args.estimate,
                          threads_all=not args.no_all_threads)
    import mmz

    doc = {
        "machine": {**runner.machine_info(), "loadavg_end": list(os.getloadavg())},
        "mmz_version": mmz.__version__,
        "command": "mmz bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "tools": {t.name: t.version() for t in tools},
        "skipped_tools": skipped,
        "results": rows,
    }
    return _emit(doc, args, log)


def _load(path: str) -> dict:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError) as e:
        raise SystemExit(f"mmz bench: cannot read {path}: {e}") from e


def _emit(doc: dict, args: argparse.Namespace, log) -> int:  # noqa: ANN001 - a print-like callable
    """Print and write the report of ``doc``; exit status 1 if any round trip failed."""
    rows = doc["results"]
    md = report.markdown(doc)
    if not args.quiet:
        print(md)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(md)
    if args.plot:
        for path in report.plot(doc, args.plot):
            log(f"wrote {path}")
    return 0 if all(r["roundtrip_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
