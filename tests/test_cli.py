"""The mmz command line: zstd-like behaviour, exit codes, no partial outputs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PY = sys.executable


def run(*args: str, input: bytes | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "mmz", *args], input=input, capture_output=True, cwd=cwd, timeout=120)


def test_file_roundtrip_keeps_input_mode_and_mtime(tmp_path, sample_paths):
    src = tmp_path / sample_paths[0].name
    src.write_bytes(sample_paths[0].read_bytes())
    os.chmod(src, 0o640)
    os.utime(src, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    r = run(str(src))
    assert r.returncode == 0, r.stderr
    packed = tmp_path / (src.name + ".mmz")
    assert packed.exists() and src.exists()
    assert os.stat(packed).st_mtime_ns == 1_600_000_000_000_000_000
    assert os.stat(packed).st_mode & 0o777 == 0o640
    original = src.read_bytes()
    src.unlink()
    r = run("-d", str(packed))
    assert r.returncode == 0, r.stderr
    assert src.read_bytes() == original
    # refuses to overwrite without -f, overwrites with it
    assert run("-d", str(packed)).returncode == 1
    assert run("-d", "-f", str(packed)).returncode == 0


def test_stdin_stdout_and_long_forms():
    data = b"piped data " * 1000
    r = run("-c", input=data)
    assert r.returncode == 0
    back = run("decompress", "-c", input=r.stdout)
    assert back.returncode == 0 and back.stdout == data
    r2 = run("compress", "-3", "-", input=data)
    assert run("-d", input=r2.stdout).stdout == data


def test_output_option_rm_and_levels(tmp_path):
    src = tmp_path / "a.txt"
    src.write_bytes(b"level test\n" * 3000)
    out = tmp_path / "custom.bin"
    assert run("-9", "-T", "2", "-o", str(out), str(src)).returncode == 0
    assert run("-t", str(out)).returncode == 0
    assert run("-d", "--rm", "-o", str(tmp_path / "b.txt"), str(out)).returncode == 0
    assert not out.exists()
    assert (tmp_path / "b.txt").read_bytes() == src.read_bytes()


def test_list_verbose_prints_modality(tmp_path, sample_paths):
    txt = next(p for p in sample_paths if p.suffix == ".txt")
    blob = run("-c", str(txt)).stdout
    f = tmp_path / "t.mmz"
    f.write_bytes(blob)
    r = run("-l", "-v", str(f))
    assert r.returncode == 0
    assert "modality: " in r.stdout.decode()


def test_corrupt_input_exit_1_and_no_partial_output(tmp_path):
    src = tmp_path / "c.txt"
    src.write_bytes(b"corruption " * 5000)
    assert run(str(src)).returncode == 0
    packed = tmp_path / "c.txt.mmz"
    bad = bytearray(packed.read_bytes())
    bad[len(bad) // 2] ^= 0xFF
    packed.write_bytes(bytes(bad))
    src.unlink()
    r = run("-d", str(packed))
    assert r.returncode == 1
    assert b"corrupt" in r.stderr.lower()
    assert not src.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mmz-")]


def test_usage_errors_exit_2(tmp_path):
    assert run("--codec", "bogus", "x").returncode == 2
    assert run("-o", "x", "a", "b").returncode == 2
    assert run("--no-such-flag").returncode == 2
    assert run("-V").returncode == 0


def test_missing_file_and_bad_suffix_exit_1(tmp_path):
    assert run(str(tmp_path / "missing")).returncode == 1
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"x")
    assert run("-d", str(plain)).returncode == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a pty")
def test_refuses_binary_to_terminal(tmp_path):
    import pty

    src = tmp_path / "t.txt"
    src.write_bytes(b"tty")
    pid, fd = pty.fork()
    if pid == 0:  # child: stdout is the pty
        os.execv(PY, [PY, "-m", "mmz", "-c", str(src)])
    output = b""
    try:
        while True:
            chunk = os.read(fd, 1024)
            if not chunk:
                break
            output += chunk
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1
    assert b"terminal" in output


def test_progress_stays_silent_for_a_second_then_beats_without_updates(monkeypatch) -> None:
    import io
    import time as _time

    from mmz import cli

    err = io.StringIO()
    monkeypatch.setattr(cli.sys, "stderr", err)
    quick = cli._Progress("quick", 100, True)
    quick(100)
    quick.close()
    assert err.getvalue() == "", "work under a second draws nothing"
    slow = cli._Progress("slow.txt", 2_000_000, True)
    slow(500_000)  # one chunk done, then a long chunk with no further calls
    _time.sleep(2.7)
    slow.close()
    out = err.getvalue()
    assert out.count("\rslow.txt:") >= 2, out  # heartbeats redraw while no call comes
    assert " 25.0% " in out and out.rstrip().endswith("\033[K")
    assert not slow._beat.is_alive()
    off = cli._Progress("off", 10, False)
    off(5)
    off.close()
    assert off._beat is None
