"""Ray job: compress a corpus into an Arrow-indexed ``.mmza`` archive.

    ray job submit --address http://127.0.0.1:8265 --working-dir . --runtime-env jobs/runtime_env.yaml \\
        -- python jobs/compress_corpus.py --input /abs/src --output /abs/out.mmza [--workers N]

Use absolute paths (the job runs in a copy of the working directory) or URIs.
``--address local`` starts a private Ray instance instead of joining a cluster.
Re-running the same command after an interruption resumes the same archive.
"""

from __future__ import annotations

import argparse
import json
import sys

from mmz.archive.cli import _size
from mmz.archive.ray_jobs import compress_corpus, init_ray
from mmz.archive.writer import DEFAULT_BATCH_BYTES, DEFAULT_CHUNK_SIZE, Options
from mmz.errors import MmzError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="source directory (local path or pyarrow.fs URI)")
    p.add_argument("--output", required=True, help="archive directory, e.g. /data/out/corpus.mmza")
    p.add_argument("--workers", type=int, default=2, help="compressing actors, one shard each (default 2)")
    p.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs per actor; caps its thread pools")
    p.add_argument("--chunk-size", type=_size, default=DEFAULT_CHUNK_SIZE, help="raw bytes per chunk (default 8M)")
    p.add_argument("--batch-bytes", type=_size, default=DEFAULT_BATCH_BYTES, help="small files per task")
    p.add_argument("--codec", default="auto", help="auto|cm|neural|order2|store")
    p.add_argument("--level", type=int, default=5, help="compression level 1..9 (default 5)")
    p.add_argument("--address", default=None, help="Ray address; 'local' starts a private instance")
    p.add_argument("--object-store-memory", type=_size, default=None,
                   help="object store size of a private --address local instance (e.g. 2G)")
    p.add_argument("--progress-every", type=float, default=2.0, help="seconds between progress lines")
    p.add_argument("--stats", metavar="JSON", help="write per-member rows (bytes, compressed, seconds) as JSON")
    p.add_argument("--test-kill-actor-after", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--test-exit-after-chunks", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be >= 1")
    try:
        init_ray(args.address, args.object_store_memory)
        summary = compress_corpus(args.input, args.output, workers=args.workers,
                        opts=Options(args.level, args.codec, args.chunk_size), batch_bytes=args.batch_bytes,
                        cpus_per_worker=args.cpus_per_worker, fault_after=args.test_kill_actor_after,
                        exit_after_chunks=args.test_exit_after_chunks, progress_every=args.progress_every)
        if args.stats:
            with open(args.stats, "w") as f:
                json.dump({"archive": args.output, "workers": args.workers, "seconds": summary.seconds,
                           "bytes_in": summary.bytes_in, "bytes_out": summary.bytes_out,
                           "rows": summary.rows}, f, indent=1)
    except MmzError as e:
        print(f"compress_corpus: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
