"""``mmz train|eval|export`` (dispatched here by :mod:`mmz.cli`).

``mmz train --config configs/s.toml [--resume] [--max-steps N] [--max-minutes M]``
``mmz export CHECKPOINT -o DIR [--fp16|--fp32]``
``mmz eval [--json] [--model DIR] [--max-bytes N] FILES|DIRS``

torch is imported only by ``train``/``export``; ``eval`` needs only numpy + onnxruntime.
Exit status: 0 ok, 1 error, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys

from mmz.errors import MmzError


def _train(args: argparse.Namespace) -> int:
    from mmz.model.config import load_config
    from mmz.model.train import train

    cfg = load_config(args.config)
    if args.threads:
        cfg.train.threads = args.threads
    out = train(cfg, resume=args.resume, max_steps=args.max_steps, max_minutes=args.max_minutes,
                run_dir=args.run_dir, init_from=args.init_from)
    print(json.dumps({k: out[k] for k in ("checkpoint", "step", "tokens", "val")}))
    return 0


def _export(args: argparse.Namespace) -> int:
    from mmz.model.export import export

    info = export(args.checkpoint, args.output, precision=args.precision, check=not args.no_check,
                  replace_older=not args.keep_older)
    print(json.dumps(info, indent=1))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from mmz.model.eval import evaluate_paths, format_table

    if args.val:
        from mmz.model.eval import evaluate_validation

        res = evaluate_validation(args.val, model_dir=args.model, max_bytes=args.max_bytes or 16384,
                                  per_modality=args.per_modality, batch=args.batch)
    elif args.paths:
        res = evaluate_paths(args.paths, model_dir=args.model, max_bytes=args.max_bytes, batch=args.batch,
                             modality=args.modality)
    else:
        raise MmzError("give FILES|DIRS or --val CORPUS")
    if args.plot:
        from mmz.model.eval import plot_routing

        plot_routing(res, args.plot)
    res.pop("_routing", None)
    print(json.dumps(res, indent=1) if args.json else format_table(res))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmz", description="RWKV-MoE predictor: train, export, evaluate")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (CPU) from a TOML recipe")
    t.add_argument("--config", required=True, help="recipe, e.g. configs/s.toml")
    t.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    t.add_argument("--max-steps", type=int, help="stop after N steps in this invocation")
    t.add_argument("--max-minutes", type=float, help="stop after M minutes in this invocation")
    t.add_argument("--threads", type=int, default=0, help="override [train] threads")
    t.add_argument("--run-dir", help="override [train] run_dir")
    t.add_argument("--init-from", metavar="MODEL_DIR",
                   help="continue from an exported model (weights + schedule step; new optimizer state)")
    t.set_defaults(fn=_train)
    e = sub.add_parser("export", help="checkpoint -> ONNX step graph + weights + manifest")
    e.add_argument("checkpoint", help="a last.pt written by mmz train")
    e.add_argument("-o", "--output", required=True,
                   help="parent directory: the model is written to DIR/<first 16 hex of model id>/ and older "
                        "exports of the same recipe name in DIR are removed (unless --keep-older)")
    e.add_argument("--keep-older", action="store_true", help="keep older exports of the same recipe")
    e.add_argument("--precision", choices=("auto", "fp16", "fp32"), default="auto",
                   help="weights precision; auto = fp16 if validation bits/byte stays within 1%%")
    e.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    e.set_defaults(fn=_export)
    v = sub.add_parser("eval", help="bits/byte of the shipped model (onnxruntime)")
    v.add_argument("paths", nargs="*", metavar="FILE|DIR")
    v.add_argument("--val", metavar="CORPUS",
                   help="score the held-out validation split of CORPUS (e.g. /work/shared/corpus) instead of files")
    v.add_argument("--per-modality", type=int, default=8, help="--val: streams per modality (0 = all)")
    v.add_argument("--json", action="store_true", help="JSON output")
    v.add_argument("--model", help="model directory (default: the shipped default model)")
    v.add_argument("--max-bytes", type=int, default=0,
                   help="only the first N bytes of each file (0 = all; --val default 16384)")
    v.add_argument("--batch", type=int, default=64, help="parallel segments per file")
    v.add_argument("--modality", help="force the modality of every file")
    v.add_argument("--plot", metavar="PNG", help="write an expert-utilisation plot")
    v.set_defaults(fn=_eval)
    return p


def main(argv: list[str]) -> int:
    """Entry point: ``argv = [subcommand, *args]``; returns the exit status."""
    p = _parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        return int(args.fn(args))
    except MmzError as e:
        print(f"mmz {args.cmd}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mmz {args.cmd}: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
