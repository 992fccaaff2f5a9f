"""Neural codec with and without online mixing: bits/byte of the network alone (payload flags 0), the
network mixed bitwise with per-sub-stream context models (flags 1), the network mixed bitwise with the
full CM byte model of each sub-stream (flags 2, ``cmmix``), the network mixed with one CM byte model
shared by each group of sub-streams (flags 3, ``cmgrp``), inside sample regions the CM sample model
mixed with the network (flags 4, ``smix``; CM's size where a chunk has no sample region), the CM codec
alone, and the per-chunk cheapest of them (``best``: flags 4 / 3 / 1 / 0, CM, stored = what ``mmz -z
--codec neural`` writes; ``best_f3``: the same without flags 4, what it wrote before;
``best_f2``: the same with flags 2 instead of flags 3, what it wrote before; ``best_all``: every
form), on (a) small files and
excerpts and (b) 1 MB excerpts per dev modality; plus compress/decompress KB/s with and without
mixing. Writes ``out/bench/neural_mix.json``.

    .venv/bin/python bench/neural_mix_bench.py [--sets small,large,speed] [--small-level 5]
        [--large-level 9] [--large-bytes 1000000] [--corpus /work/shared/corpus/dev]

Sizes are payload bytes summed over chunks (no frame headers, identical for every method). Each
input is planned and chunked as :func:`mmz.compress` does (modality detection, reversible transform,
chunk hints); an excerpt is the first bytes of the transformed stream. Every mixed payload of the
small set is decoded and compared (``--verify``; on by default for small inputs).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import mmz.neural as neural
from mmz import _core
from mmz import codec as _codec

ROOT = Path(__file__).resolve().parent.parent
MODALITIES = ["text", "structured", "gene", "image", "medical", "speech", "music"]


def planned(path: Path) -> tuple[str, bytes, tuple[_codec.Region, ...]]:
    """(modality, transformed stream, sample regions) of a file, as mmz.compress plans it."""
    data = path.read_bytes()
    mod = _codec.detect_modality(data[:_codec.DETECT_BYTES], path.name)
    plan = _codec.plan_whole(data, mod)
    stream = plan.stream if plan.stream is not None else data
    return mod, stream, plan.regions


def code(m: neural.Model, mod: str, stream: bytes, regions: tuple[_codec.Region, ...], level: int,
         verify: bool) -> dict[str, Any]:
    """Payload bytes of every method over the chunks of ``stream``."""
    res = {"raw": len(stream), "plain": 0, "mixed": 0, "cmmix": 0, "cmgrp": 0, "cm": 0, "best": 0, "best_old": 0,
           "best_f2": 0, "best_f3": 0, "smix": 0, "best_all": 0, "chunks": 0, "neural_s": 0.0,
           "smix_s": 0.0}
    for start, end in _codec.cut(len(stream), _codec.default_chunk_size(level)):
        piece = stream[start:end]
        hint = _codec.chunk_hint(mod, regions, start, end)
        t0 = time.perf_counter()
        plain, mixed, cmmix, cmgrp = neural.encode_all_forms(m, piece, level, hint)
        res["neural_s"] += time.perf_counter() - t0
        mixed = mixed if mixed is not None else plain
        cmmix = cmmix if cmmix is not None else plain
        cmgrp = cmgrp if cmgrp is not None else plain
        t0 = time.perf_counter()
        smix = neural.encode_sample_mixed(m, piece, level, hint)
        res["smix_s"] += time.perf_counter() - t0
        cm = len(_core.encode_chunk(piece, "cm", level, hint)) - _core.CHUNK_HEADER_LEN
        if verify:
            if neural.decode_payload(m, mixed, len(piece), hint) != piece:
                raise SystemExit(f"mixed payload did not round-trip ({mod}, {len(piece)} bytes)")
            if neural.decode_payload(m, cmmix, len(piece), hint) != piece:
                raise SystemExit(f"CM-mixed payload did not round-trip ({mod}, {len(piece)} bytes)")
            if neural.decode_payload(m, cmgrp, len(piece), hint) != piece:
                raise SystemExit(f"CM-group payload did not round-trip ({mod}, {len(piece)} bytes)")
            if smix is not None and neural.decode_payload(m, smix, len(piece), hint) != piece:
                raise SystemExit(f"sample-mixed payload did not round-trip ({mod}, {len(piece)} bytes)")
        res["plain"] += len(plain)
        res["mixed"] += len(mixed)
        res["cmmix"] += len(cmmix)
        res["cmgrp"] += len(cmgrp)
        res["cm"] += cm
        old = min(len(plain), len(mixed), cm, len(piece) + 1)
        res["best_old"] += old
        res["best_f2"] += min(old, len(cmmix))
        res["smix"] += len(smix) if smix is not None else cm
        res["best_f3"] += min(old, len(cmgrp))
        res["best"] += min(old, len(cmgrp), len(smix) if smix is not None else cm)
        res["best_all"] += min(old, len(cmmix), len(cmgrp), len(smix) if smix is not None else cm)
        res["chunks"] += 1
    return res


def add(total: dict[str, Any], r: dict[str, Any]) -> None:
    for k, v in r.items():
        total[k] = total.get(k, 0) + v


def bpb(r: dict[str, Any]) -> dict[str, Any]:
    out = dict(r)
    for k in ("plain", "mixed", "cmmix", "cmgrp", "smix", "cm", "best", "best_old", "best_f2", "best_f3",
              "best_all"):
        out[f"{k}_bpb"] = 8 * r[k] / r["raw"] if r["raw"] else 0.0
    out["mixed_vs_plain_pct"] = 100 * (r["mixed"] / r["plain"] - 1) if r["plain"] else 0.0
    out["mixed_vs_cm_pct"] = 100 * (r["mixed"] / r["cm"] - 1) if r["cm"] else 0.0
    out["cmmix_vs_cm_pct"] = 100 * (r["cmmix"] / r["cm"] - 1) if r["cm"] else 0.0
    out["cmgrp_vs_cm_pct"] = 100 * (r["cmgrp"] / r["cm"] - 1) if r["cm"] else 0.0
    out["cmgrp_vs_cmmix_pct"] = 100 * (r["cmgrp"] / r["cmmix"] - 1) if r["cmmix"] else 0.0
    out["smix_vs_cm_pct"] = 100 * (r["smix"] / r["cm"] - 1) if r["cm"] else 0.0
    out["best_vs_cm_pct"] = 100 * (r["best"] / r["cm"] - 1) if r["cm"] else 0.0
    return out


def small_set(m: neural.Model, corpus: Path, level: int, max_files: int, max_bytes: int,
              excerpt: int, verify: bool) -> dict[str, Any]:
    """Per modality: files under 64 KiB (up to ``max_files`` / ``max_bytes``), or, where a folder has
    none, ``excerpt``-byte excerpts of its first files' streams."""
    out = {}
    for mod_dir in MODALITIES:
        files = sorted(p for p in (corpus / mod_dir).iterdir() if p.is_file())
        small = [p for p in files if p.stat().st_size < 65536]
        total: dict[str, Any] = {"files": 0}
        if small:
            for p in small[:max_files]:
                if total.get("raw", 0) >= max_bytes:
                    break
                mod, stream, regions = planned(p)
                add(total, code(m, mod, stream, regions, level, verify))
                total["files"] += 1
            total["kind"] = "whole files < 64 KiB"
        else:
            for p in sorted(files, key=lambda q: q.stat().st_size)[:3]:
                mod, stream, regions = planned(p)
                add(total, code(m, mod, stream[:excerpt], regions, level, verify))
                total["files"] += 1
            total["kind"] = f"first {excerpt} stream bytes of the smallest files"
        out[mod_dir] = bpb(total)
        print(mod_dir, json.dumps(out[mod_dir]), flush=True)
    return out


def large_set(m: neural.Model, corpus: Path, level: int, nbytes: int, mods: list[str]) -> dict[str, Any]:
    """Per modality: the first ``nbytes`` of the stream of the first file whose stream is that long
    (else of the largest file)."""
    out = {}
    for mod_dir in mods:
        files = sorted(p for p in (corpus / mod_dir).iterdir() if p.is_file())
        pick = None
        for p in sorted(files, key=lambda q: q.stat().st_size):
            if p.stat().st_size >= nbytes:
                pick = p
                break
        pick = pick or max(files, key=lambda q: q.stat().st_size)
        mod, stream, regions = planned(pick)
        r = bpb(code(m, mod, stream[:nbytes], regions, level, verify=False))
        r["file"] = pick.name
        out[mod_dir] = r
        print(mod_dir, json.dumps(r), flush=True)
    return out


def speed(m: neural.Model, nbytes: int, level: int, threads: int, reps: int) -> dict[str, Any]:
    """Compress/decompress KB/s of the sample text, plain vs mixed payloads (best of ``reps``)."""
    text = (ROOT / "data" / "sample" / "text" / "debian_handbook_en.txt").read_bytes()[:nbytes]
    hint = _core.make_hint("text", None)
    m.batch, m.threads = 64, threads
    out: dict[str, Any] = {"bytes": len(text), "level": level, "threads": threads, "batch": 64}
    for name, mixed in (("plain", False), ("mixed", True)):
        te = td = float("inf")
        payload = b""
        for _ in range(reps):
            t0 = time.perf_counter()
            payload = neural.encode_payload(m, text, level, hint, mixed=mixed)
            te = min(te, time.perf_counter() - t0)
            t0 = time.perf_counter()
            back = neural.decode_payload(m, payload, len(text), hint)
            td = min(td, time.perf_counter() - t0)
            if back != text:
                raise SystemExit(f"{name} payload did not round-trip")
        out[name] = {"compress_kb_s": len(text) / te / 1e3, "decompress_kb_s": len(text) / td / 1e3,
                     "bits_per_byte": 8 * len(payload) / len(text)}
        print(name, out[name], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="small,large,speed")
    ap.add_argument("--corpus", default="/work/shared/corpus/dev")
    ap.add_argument("--small-level", type=int, default=5)
    ap.add_argument("--small-files", type=int, default=12)
    ap.add_argument("--small-bytes", type=int, default=120_000, help="stop adding files past this many bytes")
    ap.add_argument("--excerpt", type=int, default=32768)
    ap.add_argument("--large-level", type=int, default=9)
    ap.add_argument("--large-bytes", type=int, default=1_000_000)
    ap.add_argument("--speed-bytes", type=int, default=262144)
    ap.add_argument("--speed-level", type=int, default=5)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--modalities", default=",".join(MODALITIES), help="folders of the large set")
    ap.add_argument("--large-key", default="large", help="JSON key of the large set")
    ap.add_argument("--out", default=str(ROOT / "out" / "bench" / "neural_mix.json"))
    ap.add_argument("--model", default=None,
                    help="model directory or id (default: $MMZ_MODEL, else the shipped default model)")
    args = ap.parse_args()
    sets = set(args.sets.split(","))
    m = neural.load(args.model or os.environ.get("MMZ_MODEL"))
    m.batch, m.threads = 64, 2
    corpus = Path(args.corpus)
    out_path = Path(args.out)
    res: dict[str, Any] = json.loads(out_path.read_text()) if out_path.is_file() else {}
    res.update({"model_id": m.manifest["model_id"], "mix_flags": _core.NEURAL_FLAGS_MIX,
                "cm_mix_flags": _core.NEURAL_FLAGS_CM_MIX, "cm_group_flags": _core.NEURAL_FLAGS_CM_GROUP,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if "small" in sets:
        res["small"] = {"level": args.small_level,
                        "by_modality": small_set(m, corpus, args.small_level, args.small_files, args.small_bytes,
                                                 args.excerpt, not args.no_verify)}
        out_path.write_text(json.dumps(res, indent=1) + "\n")
    if "large" in sets:
        res[args.large_key] = {"level": args.large_level, "bytes": args.large_bytes,
                               "by_modality": large_set(m, corpus, args.large_level, args.large_bytes,
                                                        args.modalities.split(","))}
        out_path.write_text(json.dumps(res, indent=1) + "\n")
    if "speed" in sets:
        res["speed"] = speed(m, args.speed_bytes, args.speed_level, 2, args.reps)
        out_path.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
