"""Ray job: decode every member of a ``.mmza`` archive in parallel and check every checksum.

    python jobs/verify_corpus.py --archive /abs/x.mmza [--table] [--json OUT]

Prints one line per member (OK/BAD with the reason); exit 1 if any member is damaged.
``--table`` prints the per-member result table (bytes, compressed, bits/byte, KB/s).
"""

from __future__ import annotations

import argparse
import json
import sys

from mmz.archive import Archive
from mmz.archive.ray_jobs import absolute, init_ray, members_parallel
from mmz.errors import MmzError


def _print_table(rows: list[dict[str, object]]) -> None:
    try:
        from mmz.bench.table import print_table
    except ImportError:  # pragma: no cover - the bench module ships with mmz
        for r in rows:
            print(r)
        return
    print_table(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archive", required=True)
    p.add_argument("--members", nargs="*", default=None)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--address", default=None, help="Ray address; 'local' starts a private instance")
    p.add_argument("--table", action="store_true", help="print the result table (compress KB/s from the index)")
    p.add_argument("--json", metavar="OUT", help="write per-member results as JSON")
    args = p.parse_args(argv)
    try:
        init_ray(args.address)
        results = members_parallel(args.archive, args.members, None, args.workers)
        arc = Archive(absolute(args.archive))
    except MmzError as e:
        print(f"verify_corpus: {e}", file=sys.stderr)
        return 1
    rows = []
    for r, secs in results:
        print(f"{'OK ' if r.ok else 'BAD'} {r.path}" + (f": {r.error}" if r.error else ""))
        m = arc.member(r.path)
        rows.append({"file": r.path, "modality": m.modality, "bytes": m.size, "compressed": m.compressed,
                     "ok": r.ok, "error": r.error, "decode_seconds": secs})
    bad = sum(not r.ok for r, _ in results)
    print(f"verify: {len(results) - bad} ok, {bad} damaged")
    if args.table:
        print(f"\n{'(KB/s = decode speed per member, one CPU each)'}")
        _print_table([{**r, "seconds": r["decode_seconds"]} for r in rows])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"archive": args.archive, "members": rows, "damaged": bad}, f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
