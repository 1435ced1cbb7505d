"""`coresweep export` / `coresweep import`: a run folder round-trips through one .tar.gz; older
schemas are read, newer ones refused; hostile or malformed archives are refused with nothing
written (outside reports/ or in it)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from _fixture_runs import copy_run
from coresweep.cli import main
from coresweep.compare import export_run, import_run
from coresweep.compare.archive import ArchiveError
from coresweep.measurement.run import Run


def _tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file()}


def test_export_import_round_trip(tmp_path):
    run = copy_run("quick-t12", tmp_path / "here")
    (run / ".lock").write_text("pid 1\n")  # the sweep's lock and a temp file stay behind
    (run / "data" / "trials" / ".x.parquet.1.tmp").write_bytes(b"partial")
    archive = export_run(run, out=tmp_path)
    assert archive == tmp_path / "quick-t12.tar.gz"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert all(n == "quick-t12" or n.startswith("quick-t12/") for n in names)
        assert not any(Path(n).name.startswith(".") for n in names)
        assert {m.uname for m in tar.getmembers()} == {""}  # no user names of the machine
    reports = tmp_path / "reports"
    imported = import_run(archive, reports=reports)
    assert imported == reports / "quick-t12"
    expected = {k: v for k, v in _tree(run).items() if not Path(k).name.startswith(".")}
    assert _tree(imported) == expected
    assert len(Run.load(imported).trials) == len(Run.load(run).trials)
    assert "quick-t12" in (reports / "index.html").read_text()
    assert sorted(p.name for p in reports.iterdir()) == ["index.html", "quick-t12"]


def test_export_refuses_what_it_cannot_pack_or_write(tmp_path):
    with pytest.raises(ArchiveError, match="no run.json"):
        export_run(tmp_path)
    run = copy_run("quick-t12", tmp_path / "here")
    with pytest.raises(ArchiveError, match="no folder"):
        export_run(run, out=tmp_path / "missing" / "x.tar.gz")


def test_cli_export_and_import(tmp_path, capsys):
    run = copy_run("quick-t12", tmp_path / "here")
    assert main(["export", str(run), "--out", str(tmp_path / "x.tar.gz")]) == 0
    assert "x.tar.gz" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "x.tar.gz"), "--reports", str(tmp_path / "r")]) == 0
    assert str(tmp_path / "r" / "quick-t12") in capsys.readouterr().out
    assert main(["import", str(tmp_path / "x.tar.gz"), "--reports", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coresweep import: error:") and "already exists" in err


def test_an_older_schema_is_imported_and_read(tmp_path, capsys):
    archive = export_run(copy_run("v0-quick", tmp_path / "here"), out=tmp_path)
    assert main(["import", str(archive), "--reports", str(tmp_path / "r")]) == 0
    assert "older coresweep (result schema 1)" in capsys.readouterr().out
    assert len(Run.load(tmp_path / "r" / "v0-quick").trials)


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"x", **kw) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data) if kw.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data) if info.size else None)


def _archive(path: Path, members: list[tuple], run_json: dict | None = None) -> Path:
    """A .tar.gz holding run/run.json (unless run_json is None) and the members given as
    (name, data, TarInfo attributes)."""
    with tarfile.open(path, "w:gz") as tar:
        if run_json is not None:
            _add(tar, "run/run.json", json.dumps(run_json).encode())
        for name, data, kw in members:
            _add(tar, name, data, **kw)
    return path


HOSTILE = {
    "path traversal": ([("run/../../evil.txt", b"owned", {})], "outside the run folder"),
    "absolute path": ([("/tmp/coresweep-evil.txt", b"owned", {})], "absolute"),
    "symlink": ([("run/data", b"", {"type": tarfile.SYMTYPE, "linkname": "/etc"})],
                "symbolic link"),
    "hard link": ([("run/passwd", b"", {"type": tarfile.LNKTYPE, "linkname": "/etc/passwd"})],
                  "hard link"),
    "device": ([("run/null", b"", {"type": tarfile.CHRTYPE})], "device"),
    "two folders": ([("other/file.txt", b"x", {})], "2 top-level entries"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_with_nothing_written(tmp_path, case):
    members, message = HOSTILE[case]
    archive = _archive(tmp_path / "bad.tar.gz", members, run_json={"schema_version": 2})
    reports = tmp_path / "reports"
    with pytest.raises(ArchiveError, match=message):
        import_run(archive, reports=reports)
    assert not reports.exists() or not any(reports.iterdir())
    assert not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/coresweep-evil.txt").exists()


def test_a_run_folder_name_that_is_not_plain_is_refused(tmp_path):
    archive = _archive(tmp_path / "a.tar.gz", [(".hidden/run.json", b"{}", {})])
    with pytest.raises(ArchiveError, match="not a plain name"):
        import_run(archive, reports=tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


def test_missing_run_json_and_newer_schema_are_refused(tmp_path):
    reports = tmp_path / "reports"
    no_meta = _archive(tmp_path / "a.tar.gz", [("run/data/x.parquet", b"x", {})])
    with pytest.raises(ArchiveError, match="no run/run.json"):
        import_run(no_meta, reports=reports)
    newer = _archive(tmp_path / "b.tar.gz", [], run_json={"schema_version": 99})
    with pytest.raises(ArchiveError, match="schema version 99.*upgrade coresweep"):
        import_run(newer, reports=reports)
    assert not reports.exists() or not any(reports.iterdir())


def test_truncated_corrupt_and_unreadable_archives_are_refused(tmp_path):
    good = export_run(copy_run("quick-t12", tmp_path / "here"), out=tmp_path)
    reports = tmp_path / "reports"
    blob = good.read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ArchiveError, match="truncated"):
        import_run(truncated, reports=reports)
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not an archive at all" * 50)
    with pytest.raises(ArchiveError, match="not a readable"):
        import_run(garbage, reports=reports)
    bad_data = _archive(tmp_path / "c.tar.gz", [("run/data/trials/k__p0.parquet", b"junk", {})],
                        run_json={"schema_version": 2})
    with pytest.raises(ArchiveError, match="does not read as a run folder"):
        import_run(bad_data, reports=reports)
    assert not any(reports.iterdir())  # no half-unpacked folder left behind


def test_an_archive_over_the_size_limit_is_refused_before_writing(tmp_path, monkeypatch):
    """The limit counts the file on disk and what it unpacks to (the headers' sizes, read
    without writing): a small archive of a large file is refused like a large archive."""
    from coresweep.compare import archive as arc

    reports = tmp_path / "reports"
    zeros = _archive(tmp_path / "zeros.tar.gz", [("run/data/big.bin", bytes(1 << 20), {})],
                     run_json={"schema_version": 2})
    assert zeros.stat().st_size < 100_000  # a megabyte of zeros packs small
    with pytest.raises(ArchiveError, match="unpacks to more than 1.0 MiB.*--max-size"):
        import_run(zeros, reports=reports, max_bytes=100_000)
    with pytest.raises(ArchiveError, match=r"is .*KiB, over the import limit of 1000 bytes"):
        import_run(zeros, reports=reports, max_bytes=1000)
    monkeypatch.setattr(arc, "MAX_IMPORT_MEMBERS", 5)
    many = _archive(tmp_path / "many.tar.gz", [(f"run/f{i}", b"x", {}) for i in range(9)],
                    run_json={"schema_version": 2})
    with pytest.raises(ArchiveError, match="more than 5 entries"):
        import_run(many, reports=reports)
    assert not reports.exists() or not any(reports.iterdir())


def test_cli_import_size_limit_flag(tmp_path, capsys):
    archive = export_run(copy_run("quick-t12", tmp_path / "here"), out=tmp_path)
    reports = tmp_path / "r"
    assert main(["import", str(archive), "--reports", str(reports), "--max-size", "1K"]) == 2
    err = capsys.readouterr().err
    assert "over the import limit of 1.0 KiB (1024 bytes)" in err and "--max-size" in err
    assert not reports.exists() or not any(reports.iterdir())
    assert main(["import", str(archive), "--reports", str(reports), "--max-size", "64M"]) == 0
    assert (reports / "quick-t12" / "run.json").is_file()
