"""mmz bench on tiny inputs: JSON validates against the schema, round trips verified, tables print."""

from __future__ import annotations

import io
import json
import struct
import wave

import jsonschema
import numpy as np
from PIL import Image

from mmz.bench import cli, inputs
from mmz.bench.report import SCHEMA, SCHEMA_PATH
from mmz.bench.table import format_table


def _make_corpus(root):
    (root / "text").mkdir()
    (root / "text" / "a.txt").write_bytes(b"a small text file for the benchmark test\n" * 50)
    (root / "image").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (17, 23, 3), dtype=np.uint8)).save(root / "image" / "p.png")
    (root / "audio").mkdir()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(1000 * np.sin(i / 5))) for i in range(2000)))
    (root / "audio" / "s.wav").write_bytes(buf.getvalue())


def test_denominators(tmp_path):
    _make_corpus(tmp_path)
    files = {f.path.name: f for f in inputs.discover([str(tmp_path)], "folder")}
    assert files["p.png"].raw_bytes == 17 * 23 * 3
    assert files["s.wav"].raw_bytes == 4000
    assert files["a.txt"].raw_bytes == len(files["a.txt"].data)
    assert {f.group for f in files.values()} == {"text", "image", "audio"}


def test_bench_json_validates(tmp_path):
    _make_corpus(tmp_path)
    out = tmp_path / "out.json"
    rc = cli.main([str(tmp_path), "--json", str(out), "--group-by", "folder", "-q",
                   "--methods", "mmz-fast", "gzip-9", "flac-8", "png-optipng-o2"])
    assert rc == 0
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert json.loads(SCHEMA_PATH.read_text()) == SCHEMA, "docs/bench_schema.json is stale"
    methods = {(r["modality"], r["method"]) for r in doc["results"]}
    assert ("text", "mmz-fast") in methods and ("text", "gzip-9") in methods
    assert all(r["roundtrip_ok"] for r in doc["results"])


def test_unknown_method_is_usage_error(tmp_path):
    _make_corpus(tmp_path)
    assert cli.main([str(tmp_path), "--methods", "nope", "-q"]) == 2


def test_table_totals():
    rows = [{"file": "a", "modality": "text", "bytes": 1000, "compressed": 250, "seconds": 0.5},
            {"file": "b", "modality": "image", "bytes": 3000, "compressed": 1500, "seconds": 1.0}]
    text = format_table(rows)
    assert "total ALL (2 files)" in text and "3.500" in text  # 8*1750/4000


def test_merge_runs(tmp_path):
    """Two partial runs (tools, then mmz) merge into one report that still validates."""
    _make_corpus(tmp_path)
    a, b, m = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "m.json"
    assert cli.main([str(tmp_path), "--json", str(a), "--group-by", "folder", "-q", "--methods", "gzip-9"]) == 0
    assert cli.main([str(tmp_path), "--json", str(b), "--group-by", "folder", "-q", "--methods", "mmz-fast"]) == 0
    md = tmp_path / "m.md"
    assert cli.main(["--merge", str(a), str(b), "--json", str(m), "--markdown", str(md), "-q"]) == 0
    doc = json.loads(m.read_text())
    jsonschema.validate(doc, SCHEMA)
    methods = {(r["modality"], r["method"]) for r in doc["results"]}
    assert ("text", "gzip-9") in methods and ("text", "mmz-fast") in methods
    assert len(doc["commands"]) == 2 and "gzip-9" in md.read_text() and "mmz-fast" in md.read_text()


def test_merge_refuses_paths(tmp_path):
    a = tmp_path / "a.json"
    a.write_text("{}")
    try:
        cli.main([str(tmp_path), "--merge", str(a)])
    except SystemExit as e:
        assert e.code == 2
    else:
        raise AssertionError("--merge with input paths must be a usage error")


def test_sweep_plots(tmp_path):
    """Scaling and batch-size plots are drawn from the JSON of the Ray and neural benchmarks."""
    from mmz.bench import report

    src = tmp_path / "src"
    src.mkdir()
    (src / "scaling.json").write_text(json.dumps({"options": {"level": 5, "chunk_size": 1 << 20}, "workers": [
        {"workers": 1, "compress_MBps": 0.5, "decompress_MBps": 0.5, "roundtrip_ok": True},
        {"workers": 2, "compress_MBps": 0.9, "decompress_MBps": 0.95, "roundtrip_ok": True}]}))
    (src / "neural.json").write_text(json.dumps({"runs": [
        {"data": "text", "threads": t, "batch": b, "compress_kb_s": 5.0 * t + b / 16}
        for t in (1, 2) for b in (1, 64)]}))
    made = report._plot_sweeps(tmp_path / "img", src)
    assert sorted(p.rsplit("/", 1)[-1] for p in made) == ["bench_neural_batch.png", "bench_scaling_workers.png"]
    assert all((tmp_path / "img" / n).stat().st_size > 1000 for n in ("bench_neural_batch.png",
                                                                       "bench_scaling_workers.png"))
