"""Ray corpus jobs end to end on a private 2-CPU head node: round trip, actor kill, driver kill + resume,
damaged shard isolation. One cluster per session (started with ``ray start --block``, stopped by SIGTERM,
so other Ray clusters on the machine are untouched)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmz.archive import Archive

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
JOBS = ROOT / "jobs"
#: A private throw-away cluster: no token authentication between the test's processes.
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}
COMMON = ["--chunk-size", "32K", "--batch-bytes", "64K", "--level", "1", "--progress-every", "0.5"]


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="mmzrt")
    log = open(os.path.join(temp, "start.log"), "w+")  # noqa: SIM115
    ray_bin = str(Path(sys.executable).parent / "ray")
    proc = subprocess.Popen([ray_bin, "start", "--head", "--block", "--port", "0", "--num-cpus", "2",
                             "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=ENV)
    try:
        address = None
        for _ in range(120):
            log.seek(0)
            m = re.search(r"ray start --address='([^']+)'", log.read())
            if m:
                address = m.group(1)
                break
            if proc.poll() is not None:
                break
            time.sleep(0.5)
        if address is None:
            log.seek(0)
            pytest.fail(f"ray head did not start:\n{log.read()[-3000:]}")
        yield address
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for rel in ("gene/yeast_someORF.fa", "gene/solexa_s_1_sequence.fastq", "medical/pydicom_CT_small.png",
                "music/hydrogen_Millo_MultiLayered3__bd_01.wav", "MANIFEST.tsv"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SAMPLE / rel, root / rel)
    (root / "big").mkdir()
    (root / "big/table.csv").write_bytes((SAMPLE / "structured/statsmodels_fair.csv").read_bytes()[:150_000])
    (root / "empty").write_bytes(b"")
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _job(script: str, *args: str, address: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, str(JOBS / script), "--address", address, *args],
                       capture_output=True, text=True, timeout=300, cwd=ROOT, env=ENV)
    if check is not None:
        assert p.returncode == check, f"{script} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def _compress(corpus: Path, out: Path, address: str, *extra: str, check: int | None = 0
              ) -> subprocess.CompletedProcess[str]:
    return _job("compress_corpus.py", "--input", str(corpus), "--output", str(out), "--workers", "2",
                *COMMON, *extra, address=address, check=check)


def _assert_complete(out: Path, corpus: Path) -> Archive:
    arc = Archive(str(out))
    keys = list(zip(arc.index.column("path").to_pylist(), arc.index.column("chunk").to_pylist(), strict=True))
    assert len(keys) == len(set(keys)), "a chunk is referenced twice"
    assert {m.path for m in arc.members()} == set(_files(corpus))
    assert all(r.ok for r in arc.verify())
    return arc


def test_job_round_trip(ray_address: str, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.mmza"
    p = _compress(corpus, out, ray_address)
    assert "[mmz-archive] files" in p.stdout and "MB/s per worker" in p.stdout and "ETA" in p.stdout
    arc = _assert_complete(out, corpus)
    assert len(arc.info()["shards"]) == 2  # both actors wrote
    _job("verify_corpus.py", "--archive", str(out), "--table", address=ray_address)
    dest = tmp_path / "x"
    _job("decompress_corpus.py", "--archive", str(out), "--output", str(dest), address=ray_address)
    assert _files(dest) == _files(corpus)
    one = tmp_path / "one"
    _job("decompress_corpus.py", "--archive", str(out), "--output", str(one), "--members", "big/table.csv",
         address=ray_address)
    assert _files(one) == {"big/table.csv": (corpus / "big/table.csv").read_bytes()}


def test_actor_killed_mid_job(ray_address: str, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "k.mmza"
    _compress(corpus, out, ray_address, "--test-kill-actor-after", "2")
    arc = _assert_complete(out, corpus)
    # the killed attempt left a torn frame behind in shard 0: the shard holds bytes no index row references
    shard0 = "shards/00-0000.mmzs"
    referenced = sum(r["compressed_len"] for r in arc.index.to_pylist() if r["shard"] == shard0)
    assert (out / shard0).stat().st_size > referenced


def test_driver_killed_then_resumed(ray_address: str, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.mmza"
    p = _compress(corpus, out, ray_address, "--test-exit-after-chunks", "3", check=3)
    assert not (out / "archive.json").exists()
    p = _compress(corpus, out, ray_address)
    m = re.search(r"\((\d+) resumed from journals", p.stdout)
    assert m and int(m.group(1)) >= 3, p.stdout[-2000:]
    _assert_complete(out, corpus)
    dest = tmp_path / "x"
    _job("decompress_corpus.py", "--archive", str(out), "--output", str(dest), address=ray_address)
    assert _files(dest) == _files(corpus)


def test_damaged_shard_isolates_members(ray_address: str, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.mmza"
    _compress(corpus, out, ray_address)
    arc = Archive(str(out))
    victim = arc.chunks("gene/yeast_someORF.fa")[0]
    shard = out / victim["shard"]
    data = bytearray(shard.read_bytes())
    data[victim["offset"] + victim["compressed_len"] - 9] ^= 0x01
    shard.write_bytes(bytes(data))
    p = _job("verify_corpus.py", "--archive", str(out), address=ray_address, check=1)
    bad = [line for line in p.stdout.splitlines() if line.startswith("BAD")]
    assert len(bad) == 1 and "gene/yeast_someORF.fa" in bad[0]
    dest = tmp_path / "x"
    p = _job("decompress_corpus.py", "--archive", str(out), "--output", str(dest), address=ray_address, check=1)
    assert "gene/yeast_someORF.fa" in p.stderr
    want = _files(corpus)
    del want["gene/yeast_someORF.fa"]
    assert _files(dest) == want


def _bench_corpus(root: Path) -> int:
    """About 170 KB: text, CSV, incompressible bytes and an empty file; returns the total size."""
    rng = random.Random(7)
    words = "the of and to compress archive model ray worker chunk stream byte entropy".split()
    files = {
        "text.txt": " ".join(rng.choice(words) for _ in range(14_000)).encode(),
        "table.csv": "\n".join(f"{i},{rng.randint(0, 999)},{rng.random():.5f}" for i in range(3000)).encode(),
        "sub/noise.bin": rng.randbytes(40_000),
        "sub/empty": b"",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return sum(len(d) for d in files.values())


BENCH = ["--chunk-size", "32K", "--batch-bytes", "32K", "--level", "1", "--progress-every", "0.5"]


def test_benchmark_job_sweep(ray_address: str, tmp_path: Path) -> None:
    total = _bench_corpus(tmp_path / "src")
    out = tmp_path / "res" / "bench.json"
    p = _job("benchmark_corpus.py", "--input", str(tmp_path / "src"), "--out-json", str(out),
             "--workers-sweep", "1,2", *BENCH, address=ray_address)
    doc = json.loads(out.read_text())
    assert doc["complete"] and doc["roundtrip_ok"]
    assert doc["input_bytes"] == total and doc["input_files"] == 4
    assert "--workers-sweep 1,2" in doc["command"]
    rows = doc["workers"]
    assert [r["workers"] for r in rows] == [1, 2]
    for r in rows:
        assert r["roundtrip_ok"] is True and r["roundtrip_problems"] == []
        assert r["bytes_in"] == total and r["members"] == 4
        assert 0 < r["bytes_out"] < total
        assert r["bits_per_byte"] == pytest.approx(8 * r["bytes_out"] / total, rel=1e-5)
        assert r["compress_MBps"] == pytest.approx(total / 1e6 / r["seconds"], rel=1e-3)
        assert r["startup_seconds"] > 0 and r["coding_seconds"] > 0
        assert r["startup_seconds"] + r["coding_seconds"] == pytest.approx(r["seconds"], rel=0.05, abs=0.05)
        assert r["coding_MBps"] == pytest.approx(total / 1e6 / r["coding_seconds"], rel=1e-3)
        assert r["decompress_startup_seconds"] > 0
        assert r["decompress_MBps"] > 0 and r["decompress_seconds"] > 0
        assert r["compress_MBps_per_worker"] == pytest.approx(r["compress_MBps"] / r["workers"], rel=1e-3)
        assert sum(a["bytes"] for a in r["actors"]) == total
        assert r["actors_used"] == len(r["actors"]) <= r["workers"]
        assert all(a["busy_MBps"] > 0 for a in r["actors"] if a["bytes"])
        assert r["archive"] is None  # temporary archives are not reported (and deleted)
    assert rows[0]["speedup_vs_1"] == 1.0 and rows[0]["efficiency"] == 1.0
    assert rows[1]["speedup_vs_1"] == pytest.approx(rows[1]["compress_MBps"] / rows[0]["compress_MBps"], rel=1e-3)
    assert rows[1]["coding_speedup_vs_1"] == pytest.approx(rows[1]["coding_MBps"] / rows[0]["coding_MBps"], rel=1e-3)
    assert rows[1]["actors_used"] == 2  # 32K batches: both actors got work
    m = doc["machine"]
    assert m["logical_cores"] and m["cpu"] and len(m["loadavg_before"]) == len(m["loadavg_after"]) == 3
    assert m["ray"] and m["mmz"] and m["python"] and m["cluster"]["cpus"] == 2
    assert doc["options"]["actor_thread_env_seen"]["env"]["RAYON_NUM_THREADS"] == "1"
    cm = doc["cost_model"]
    assert cm["datasets"] == {"enwik9": 1_000_000_000, "librispeech_960h_pcm": 110_592_000_000}
    assert "hours" in cm["formula"] and any("110.6 GB" in a for a in cm["assumptions"])
    est = {(e["dataset"], e["nodes"]): e for e in cm["estimates"]}
    assert set(est) == {(d, n) for d in cm["datasets"] for n in (1, 8, 32, 128)}
    per_core, eff = cm["per_core_compress_MBps"], cm["compress_efficiency_used"]
    assert per_core == pytest.approx(rows[0]["compress_MBps"], rel=1e-3) and 0 < eff <= 1
    for (name, nodes), e in est.items():
        want = cm["datasets"][name] / (per_core * 1e6 * 2 * nodes * eff) / 3600
        assert e["compress_hours"] == pytest.approx(want, rel=1e-2)
    table = p.stdout[p.stdout.index("roundtrip"):]
    assert re.search(r"^\s+1\s.*\sok$", table, re.M) and re.search(r"^\s+2\s.*\sok$", table, re.M)


def test_benchmark_job_detects_damage(ray_address: str, tmp_path: Path) -> None:
    _bench_corpus(tmp_path / "src")
    out, keep = tmp_path / "bench.json", tmp_path / "keep"
    p = _job("benchmark_corpus.py", "--input", str(tmp_path / "src"), "--out-json", str(out), "--workers-sweep",
             "1", "--keep", str(keep), "--test-damage", *BENCH, address=ray_address, check=1)
    assert "round trip" in p.stderr and "FAILED" in p.stderr
    doc = json.loads(out.read_text())
    assert doc["roundtrip_ok"] is False and doc["complete"] is False
    (row,) = doc["workers"]
    assert row["roundtrip_ok"] is False and row["roundtrip_problems"]
    assert row["archive"] == str(keep / "w1.mmza") and (keep / "w1.mmza" / "archive.json").exists()
    assert "MISMATCH" in p.stdout
    # an existing archive under --keep is refused (it would be resumed, not measured)
    p = _job("benchmark_corpus.py", "--input", str(tmp_path / "src"), "--out-json", str(out), "--workers-sweep",
             "1", "--keep", str(keep), address=ray_address, check=2)
    assert "w1.mmza" in p.stderr


@pytest.mark.parametrize("args, message", [
    (["--workers-sweep", "0"], "worker counts"),
    (["--workers-sweep", "1,x"], "not a list"),
    (["--level", "12"], "level"),
    (["--input", "/nonexistent/mmz-bench"], "no such file"),
])
def test_benchmark_job_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    base = ["--input", str(tmp_path), "--out-json", str(tmp_path / "o.json")]
    p = _job("benchmark_corpus.py", *base, *args, address="local", check=2)
    assert message in p.stderr


def test_member_groups_balance_small_archives() -> None:
    from mmz.archive.ray_jobs import member_groups

    sizes = [(f"m{i}", n) for i, n in enumerate([100, 5000, 300, 300, 300, 4000, 50, 50])]
    groups = member_groups(sizes, workers=2, group_bytes=1 << 20)
    assert sorted(n for g in groups for n in g) == sorted(n for n, _ in sizes)  # every member exactly once
    weight = dict(sizes)
    w = [sum(weight[n] for n in g) for g in groups]
    assert w == sorted(w, reverse=True)  # largest group first
    assert len(groups) >= 4  # a 10 KB archive still gives every worker several groups (not one 4 MiB group)
    assert member_groups([], workers=2) == []
    assert member_groups([("a", 0)], workers=2) == [["a"]]


def test_benchmark_summarize_takes_medians() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "jobs"))
    try:
        import benchmark_corpus as bc
    finally:
        sys.path.pop(0)

    def run(w: int, secs: float, rep: int) -> dict:
        return {"workers": w, "repeat": rep, "seconds": secs, "startup_seconds": 1.0, "coding_seconds": secs - 1,
                "decompress_seconds": secs, "decompress_startup_seconds": 0.5, "bytes_in": 10_000_000,
                "roundtrip_ok": True}

    runs = [run(1, 10.0, 0), run(2, 6.0, 0), run(1, 12.0, 1), run(2, 5.0, 1), run(1, 11.0, 2), run(2, 9.0, 2)]
    rows = bc.summarize(runs, [1, 2])
    assert [r["workers"] for r in rows] == [1, 2] and all(r["repeats"] == 3 for r in rows)
    assert rows[0]["seconds"] == 11.0 and rows[1]["seconds"] == 6.0
    assert rows[0]["compress_MBps"] == pytest.approx(10 / 11.0, rel=1e-5)
    assert rows[1]["coding_speedup_vs_1"] == pytest.approx(10.0 / 5.0, rel=1e-5)
    assert rows[1]["speedup_vs_1"] == pytest.approx(11.0 / 6.0, rel=1e-5)
    failed = bc.summarize([*runs, {"workers": 2, "repeat": 3, "error": "boom", "roundtrip_ok": False}], [1, 2])
    assert failed[1]["error"] == "boom"
