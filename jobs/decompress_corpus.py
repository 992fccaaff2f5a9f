"""Ray job: extract a whole ``.mmza`` archive (or some members) in parallel.

    python jobs/decompress_corpus.py --archive /abs/x.mmza --output /abs/dest [--members a b ...]

Damaged members are reported by name (exit 1); every other member is extracted.
"""

from __future__ import annotations

import argparse
import sys

from mmz.archive.ray_jobs import init_ray, members_parallel
from mmz.errors import MmzError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archive", required=True)
    p.add_argument("--output", required=True, help="destination directory")
    p.add_argument("--members", nargs="*", default=None, help="member names (default: all)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--address", default=None, help="Ray address; 'local' starts a private instance")
    args = p.parse_args(argv)
    try:
        init_ray(args.address)
        results = members_parallel(args.archive, args.members, args.output, args.workers)
    except MmzError as e:
        print(f"decompress_corpus: {e}", file=sys.stderr)
        return 1
    bad = [r for r, _ in results if not r.ok]
    for r in bad:
        print(f"decompress_corpus: {r.path}: {r.error}", file=sys.stderr)
    print(f"extracted {len(results) - len(bad)} of {len(results)} members to {args.output}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
