"""mmz.archive: round trips, random access byte accounting, pyarrow.fs, damage isolation, safety."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest

from mmz.archive import Archive, create
from mmz.archive import format as F
from mmz.archive.cli import main as archive_main
from mmz.archive.reader import safe_target
from mmz.errors import CorruptDataError, MmzError

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small tree: a few sample files, an empty file, a multi-chunk file, odd modes and mtimes."""
    root = tmp_path_factory.mktemp("src")
    for rel in ("gene/yeast_someORF.fa", "structured/statsmodels_fair.csv",
                "music/hydrogen_Millo_MultiLayered3__bd_01.wav", "medical/pydicom_CT_small.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SAMPLE / rel, root / rel)
    (root / "empty.bin").write_bytes(b"")
    big = (SAMPLE / "structured/rdatasets_geepack.csv").read_bytes()[:100_000]
    (root / "deep/er").mkdir(parents=True)
    (root / "deep/er/big.csv").write_bytes(big)  # 4 chunks at 32 KiB
    os.chmod(root / "deep/er/big.csv", 0o600)
    os.utime(root / "empty.bin", ns=(1_500_000_000_123_456_789, 1_500_000_000_123_456_789))
    return root


@pytest.fixture(scope="module")
def archive(src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("arc") / "t.mmza"
    assert archive_main(["create", str(src), "-o", str(out), "--chunk-size", "32K", "-2", "-T", "2", "-q"]) == 0
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_round_trip_modes_mtimes(src: Path, archive: Path, tmp_path: Path) -> None:
    assert archive_main(["extract", str(archive), "-o", str(tmp_path / "x")]) == 0
    assert _files(tmp_path / "x") == _files(src)
    for rel in ("deep/er/big.csv", "empty.bin", "gene/yeast_someORF.fa"):
        a, b = os.stat(src / rel), os.stat(tmp_path / "x" / rel)
        assert (a.st_mode & 0o777, a.st_mtime_ns) == (b.st_mode & 0o777, b.st_mtime_ns), rel
    arc = Archive(str(archive))
    assert len(arc.chunks("deep/er/big.csv")) == 4
    assert [m.path for m in arc.members()] == sorted(_files(src))
    assert arc.verify() and all(r.ok for r in arc.verify())


def test_index_is_plain_arrow(archive: Path) -> None:
    with pa.memory_map(str(archive / F.INDEX)) as f:
        t = pa.ipc.open_file(f).read_all()
    assert t.schema.names[:3] == ["path", "member_size", "chunk"]
    meta = F.schema_meta(t)
    assert meta["mmza.format_version"] == "1" and "mmza.tool_version" in meta and json.loads(meta["mmza.models"]) == []
    big = t.filter(pc.equal(t["path"], "deep/er/big.csv"))
    assert big["chunk"].to_pylist() == [0, 1, 2, 3] and sum(big["raw_len"].to_pylist()) == 100_000
    members = pa.ipc.open_file(pa.memory_map(str(archive / F.MEMBERS))).read_all()
    assert {"path", "size", "mtime_ns", "mode", "sha256"} <= set(members.schema.names)


def test_list_info_json(archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert archive_main(["list", str(archive), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["path"] for r in rows} >= {"empty.bin", "deep/er/big.csv"}
    assert archive_main(["list", str(archive)]) == 0
    assert "-rw-------" in capsys.readouterr().out
    assert archive_main(["info", str(archive), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["members"] == len(rows) and info["chunks"] == sum(max(1, -(-r["size"] // 32768)) for r in rows)


class _CountingHandler(pafs.FileSystemHandler):
    """A local filesystem that counts every byte read through it."""

    def __init__(self) -> None:
        self.fs = pafs.LocalFileSystem()
        self.read = 0

    def _wrap(self, f: Any) -> Any:
        handler = self

        class Counting:
            closed = False

            def read(self, n: int = -1) -> bytes:
                b = f.read(n)
                handler.read += len(b)
                return b

            def seek(self, pos: int, whence: int = 0) -> int:
                return f.seek(pos, whence)

            def tell(self) -> int:
                return f.tell()

            def close(self) -> None:
                f.close()

            def size(self) -> int:
                return f.size()

        return pa.PythonFile(Counting(), mode="r")

    def open_input_file(self, path: str) -> Any:
        return self._wrap(self.fs.open_input_file(path))

    def open_input_stream(self, path: str) -> Any:
        return self._wrap(self.fs.open_input_file(path))

    def get_type_name(self) -> str:
        return "counting"

    def equals(self, other: Any) -> bool:
        return self is other

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.fs.get_file_info(selector)

    def normalize_path(self, path: str) -> str:
        return path

    def create_dir(self, path: str, recursive: bool) -> None:
        raise NotImplementedError

    delete_dir = delete_dir_contents = delete_root_dir_contents = delete_file = move = copy_file = create_dir
    open_output_stream = open_append_stream = create_dir


def test_random_access_reads_only_index_and_member(archive: Path, src: Path) -> None:
    handler = _CountingHandler()
    arc = Archive(str(archive), filesystem=pafs.PyFileSystem(handler))
    index_bytes = handler.read
    seal = json.loads((archive / F.SEAL).read_text())
    assert index_bytes <= (archive / F.SEAL).stat().st_size + seal[F.INDEX]["size"] + seal[F.MEMBERS]["size"]
    name = "deep/er/big.csv"
    assert arc.read(name) == (src / name).read_bytes()
    member_comp = sum(r["compressed_len"] for r in arc.chunks(name))
    assert handler.read - index_bytes == member_comp
    total_shards = sum(p.stat().st_size for p in (archive / "shards").glob("*.mmzs"))
    assert member_comp < total_shards / 2


def test_single_member_cli_to_file(archive: Path, src: Path, tmp_path: Path) -> None:
    out = tmp_path / "one.fa"
    assert archive_main(["extract", str(archive), "gene/yeast_someORF.fa", "-o", str(out)]) == 0
    assert out.read_bytes() == (src / "gene/yeast_someORF.fa").read_bytes()
    assert archive_main(["extract", str(archive), "no/such", "-o", str(tmp_path / "n")]) == 1


def test_subtree_filesystem(src: Path, tmp_path: Path) -> None:
    sub_src = pafs.SubTreeFileSystem(str(src), pafs.LocalFileSystem())
    sub_out = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    create(["gene"], "arc.mmza", codec="store", source_fs=sub_src, output_fs=sub_out, threads=1)
    arc = Archive("arc.mmza", filesystem=sub_out)
    assert [m.path for m in arc.members()] == ["yeast_someORF.fa"]
    assert arc.read("yeast_someORF.fa") == (src / "gene/yeast_someORF.fa").read_bytes()


def _copy(archive: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "c.mmza"
    shutil.copytree(archive, dst)
    return dst


def test_bit_flip_isolates_member(archive: Path, src: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    arc_path = _copy(archive, tmp_path)
    victim = Archive(str(arc_path)).chunks("structured/statsmodels_fair.csv")[0]
    shard = arc_path / victim["shard"]
    data = bytearray(shard.read_bytes())
    data[victim["offset"] + victim["compressed_len"] // 2] ^= 0x10
    shard.write_bytes(bytes(data))
    assert archive_main(["verify", str(arc_path)]) == 1
    out = capsys.readouterr().out
    bad = [line for line in out.splitlines() if line.startswith("BAD")]
    assert len(bad) == 1 and "structured/statsmodels_fair.csv" in bad[0]
    with pytest.raises(CorruptDataError, match="statsmodels_fair.csv"):
        Archive(str(arc_path)).read("structured/statsmodels_fair.csv")
    dest = tmp_path / "x"
    assert archive_main(["extract", str(arc_path), "-o", str(dest)]) == 1
    assert "statsmodels_fair.csv" in capsys.readouterr().err
    got = _files(dest)
    want = _files(src)
    assert "structured/statsmodels_fair.csv" not in got  # never wrong bytes
    del want["structured/statsmodels_fair.csv"]
    assert got == want


def test_truncated_shard_isolates_tail_members(archive: Path, tmp_path: Path) -> None:
    arc_path = _copy(archive, tmp_path)
    arc = Archive(str(arc_path))
    rows = arc.index.to_pylist()
    last = max(rows, key=lambda r: (r["shard"], r["offset"]))
    shard = arc_path / last["shard"]
    with open(shard, "r+b") as f:
        f.truncate(last["offset"] + 5)
    results = {r.path: r for r in Archive(str(arc_path)).verify()}
    assert not results[last["path"]].ok and "truncated" in results[last["path"]].error
    assert sum(not r.ok for r in results.values()) == 1


def test_damaged_index_is_named(archive: Path, tmp_path: Path) -> None:
    arc_path = _copy(archive, tmp_path)
    data = bytearray((arc_path / F.INDEX).read_bytes())
    data[len(data) // 2] ^= 1
    (arc_path / F.INDEX).write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match="index.arrow is damaged"):
        Archive(str(arc_path))
    (arc_path / F.SEAL).unlink()
    with pytest.raises(MmzError, match="not a finished"):
        Archive(str(arc_path))


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "a//b", "./a", "C:/x", "a\\..\\b"])
def test_unsafe_names_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(MmzError, match="unsafe"):
        safe_target(str(tmp_path), name)


def test_symlink_escape_refused(archive: Path, tmp_path: Path) -> None:
    dest = tmp_path / "d"
    outside = tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "gene").symlink_to(outside)
    results = {r.path: r for r in Archive(str(archive)).extract(str(dest))}
    assert not results["gene/yeast_someORF.fa"].ok and "symbolic link" in results["gene/yeast_someORF.fa"].error
    assert list(outside.iterdir()) == []
    assert results["empty.bin"].ok


def test_existing_output_refused(archive: Path, src: Path) -> None:
    assert archive_main(["create", str(src), "-o", str(archive), "--chunk-size", "32K", "-2", "-q"]) == 1


def test_media_members_stay_whole(tmp_path: Path) -> None:
    """Images/audio bigger than a chunk stay one chunk so the PNG transform and WAV layout apply."""
    import mmz

    root = tmp_path / "src"
    root.mkdir()
    for rel in ("image/sklearn_flower.png", "speech/asterisk_agent-alreadyon.wav"):
        shutil.copyfile(SAMPLE / rel, root / Path(rel).name)
    (root / "t.txt").write_bytes((SAMPLE / "text/debian_handbook_en.txt").read_bytes()[:100_000])
    out = tmp_path / "m.mmza"
    assert archive_main(["create", str(root), "-o", str(out), "--chunk-size", "32K", "-2", "-T", "2", "-q"]) == 0
    arc = Archive(str(out))
    assert len(arc.chunks("t.txt")) == 4
    for name in ("sklearn_flower.png", "asterisk_agent-alreadyon.wav"):
        data = (root / name).read_bytes()
        assert len(data) > 32 << 10
        rows = arc.chunks(name)
        assert len(rows) == 1, name
        whole = mmz.compress(data, 2, name=name, threads=1, chunk_size=32 << 10)
        assert rows[0]["compressed_len"] == len(whole), name
        assert arc.read(name) == data
    assert all(r.ok for r in arc.verify())
