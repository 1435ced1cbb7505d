"""A run folder travels as one file: `export_run` packs it into ``<run>.tar.gz`` (one top folder,
the run's name); `import_run` unpacks one under reports/ and re-renders the index.

An archive is someone else's file: every member is checked before anything is written (one top
folder with a plain name; only regular files and folders — no links, devices, absolute paths or
``..``; a run.json of a schema this coresweep reads; at most ``MAX_IMPORT_BYTES`` on disk and
unpacked, and ``MAX_IMPORT_MEMBERS`` entries), then it is unpacked with tarfile's ``data`` filter
into a hidden folder inside reports/ and renamed into place only once it reads back as a run. A
truncated or corrupt archive leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from coresweep.errors import CoresweepError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # what `coresweep run` names a folder
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)
# A run folder is megabytes (an exported quick run: about 1 MB): 2 GiB leaves ample room for
# long sweeps and stops a gzip bomb (a small file that unpacks to fill the disk) before anything
# is written. `coresweep import --max-size` raises it for an archive one trusts.
MAX_IMPORT_BYTES = 2 << 30
MAX_IMPORT_MEMBERS = 100_000  # files and folders; the test runs hold tens


class ArchiveError(CoresweepError):
    """An archive that is not a coresweep run folder this version can import."""


def _skip(path: Path) -> bool:
    """Not part of a run: the sweep's lock, hidden temp files, links."""
    return path.name.startswith(".") or path.is_symlink()


def export_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Pack a run folder (data, run.json, HTML, summaries) into ``out`` (default
    ``<run>.tar.gz`` in the current folder; a folder puts it there)."""
    from coresweep.measurement.store import Store

    run_dir = Path(run_dir).expanduser().resolve()
    if not (run_dir / "run.json").is_file():
        raise ArchiveError(f"{run_dir} is not a coresweep run folder (no run.json)")
    Store(run_dir).check_readable()
    target = Path(out).expanduser() if out else Path.cwd()
    if target.is_dir():
        target = target / f"{run_dir.name}.tar.gz"
    if not target.parent.is_dir():
        raise ArchiveError(f"cannot write {target}: no folder {target.parent}")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(run_dir, arcname=run_dir.name, recursive=False, filter=_anonymous)
            for p in _files(run_dir):
                tar.add(p, arcname=f"{run_dir.name}/{p.relative_to(run_dir).as_posix()}",
                        recursive=False, filter=_anonymous)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _files(run_dir: Path) -> list[Path]:
    out = []
    for top, dirs, names in os.walk(run_dir):  # does not follow links
        dirs[:] = sorted(d for d in dirs if not _skip(Path(top, d)))
        out += [Path(top, n) for n in sorted(names) if not _skip(Path(top, n))]
    return out


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """No user or group names of the machine that measured in the archive."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _kind(m: tarfile.TarInfo) -> str:
    return ("a symbolic link" if m.issym() else "a hard link" if m.islnk()
            else "a device or pipe")


def _check_member(m: tarfile.TarInfo, archive: Path) -> tuple[str, ...]:
    """The member's path parts; ArchiveError when it could write outside its folder or is not a
    plain file or folder."""
    parts = PurePosixPath(m.name).parts
    if m.name.startswith("/") or not parts:
        raise ArchiveError(f"{archive}: member {m.name!r} has an absolute or empty path; a run "
                           "archive holds relative paths only: nothing imported")
    if ".." in parts:
        raise ArchiveError(f"{archive}: member {m.name!r} points outside the run folder ('..'): "
                           "nothing imported")
    if not (m.isfile() or m.isdir()):
        raise ArchiveError(f"{archive}: member {m.name!r} is {_kind(m)}; a run archive holds "
                           "only files and folders: nothing imported")
    return parts


def _size_text(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


def _too_big(archive: Path, what: str, limit: int) -> ArchiveError:
    exact = f" ({limit} bytes)" if limit >= 1 << 10 else ""
    return ArchiveError(f"{archive} {what}, over the import limit of {_size_text(limit)}{exact}: "
                        "nothing imported; for an archive you trust, raise it with --max-size "
                        "(e.g. --max-size 8G)")


def _headers(tar: tarfile.TarFile, archive: Path, max_bytes: int) -> list[tarfile.TarInfo]:
    """Every member header, read one by one (no data written); stops at the first one past the
    size or count limit, so a bomb is refused without unpacking it."""
    members, total = [], 0
    try:
        for m in tar:  # reads every header: a truncated archive fails here
            members.append(m)
            total += max(m.size, 0)
            if total > max_bytes:
                raise _too_big(archive, f"unpacks to more than {_size_text(total)}", max_bytes)
            if len(members) > MAX_IMPORT_MEMBERS:
                raise ArchiveError(f"{archive} holds more than {MAX_IMPORT_MEMBERS} entries, "
                                   "far more than a run folder: nothing imported")
    except _READ_ERRORS as exc:
        raise ArchiveError(f"{archive} is truncated or not a .tar.gz ({exc}): nothing "
                           "imported") from None
    return members


def _members(tar: tarfile.TarFile, archive: Path,
             max_bytes: int) -> tuple[str, list[tarfile.TarInfo]]:
    """(the run folder's name, every member), each member checked."""
    members = _headers(tar, archive, max_bytes)
    tops = {_check_member(m, archive)[0] for m in members}
    if len(tops) != 1:
        raise ArchiveError(f"{archive} holds {len(tops)} top-level entries "
                           f"({', '.join(sorted(tops)[:5]) or 'none'}); a run archive holds one "
                           "folder, the run's (coresweep export RUN_DIR): nothing imported")
    top = tops.pop()
    if not _NAME.match(top):
        raise ArchiveError(f"{archive}: run folder name {top!r} is not a plain name (letters, "
                           "digits, '.', '_', '+', '-'): nothing imported")
    return top, members


def _schema_version(tar: tarfile.TarFile, members: list[tarfile.TarInfo], top: str,
                    archive: Path) -> int:
    """The run.json's schema version; ArchiveError when missing, unreadable or too new."""
    from coresweep.measurement.store import SCHEMA_VERSION

    meta = next((m for m in members if PurePosixPath(m.name).parts == (top, "run.json")), None)
    if meta is None or not meta.isfile():
        raise ArchiveError(f"{archive} has no {top}/run.json: not a coresweep run folder "
                           "(coresweep export RUN_DIR makes one): nothing imported")
    try:
        data = json.loads(tar.extractfile(meta).read())
    except (ValueError, *_READ_ERRORS) as exc:
        raise ArchiveError(f"{archive}: {top}/run.json cannot be read ({exc}): nothing "
                           "imported") from None
    version = data.get("schema_version", 1) if isinstance(data, dict) else None
    if not isinstance(version, int) or version < 1:
        raise ArchiveError(f"{archive}: {top}/run.json has no valid schema_version "
                           f"({version!r}): nothing imported")
    if version > SCHEMA_VERSION:
        raise ArchiveError(f"{archive} holds a run of result schema version {version}; this "
                           f"coresweep reads versions 1 to {SCHEMA_VERSION}: upgrade coresweep "
                           "to import it (nothing imported)")
    return version


def import_run(archive: str | Path, reports: str | Path | None = None, *,
               max_bytes: int = MAX_IMPORT_BYTES) -> Path:
    """Unpack a run archive into ``reports`` (default reports/) and re-render its index; returns
    the run folder. ArchiveError, with nothing written, for a hostile, malformed or too-new
    archive, one larger than ``max_bytes`` on disk or unpacked, or when a run of that name is
    already there."""
    from coresweep.report.index import write_index
    from coresweep.report.paths import reports_root

    archive = Path(archive).expanduser()
    if not archive.is_file():
        raise ArchiveError(f"{archive}: no such archive file")
    if max_bytes < 1:
        raise ArchiveError(f"max_bytes={max_bytes}: the size limit must be at least 1 byte")
    if archive.stat().st_size > max_bytes:
        raise _too_big(archive, f"is {_size_text(archive.stat().st_size)}", max_bytes)
    if not hasattr(tarfile, "data_filter"):  # Python < 3.10.12 / 3.11.4
        raise ArchiveError("this Python has no tarfile data filter (3.10.12+, 3.11.4+): "
                           "upgrade Python to import archives safely")
    root = Path(reports).expanduser().resolve() if reports else reports_root()
    try:
        tar = tarfile.open(archive, "r:*")
    except _READ_ERRORS as exc:
        raise ArchiveError(f"{archive} is not a readable .tar.gz ({exc}): nothing "
                           "imported") from None
    with tar:
        top, members = _members(tar, archive, max_bytes)
        _schema_version(tar, members, top, archive)
        dest = root / top
        if dest.exists():
            raise ArchiveError(f"{dest} already exists: remove it, or import into another "
                               "reports folder (--reports DIR): nothing imported")
        _unpack(tar, members, top, root, archive)
    write_index(root)
    return dest


def _extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: Path,
             archive: Path) -> None:
    try:
        tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{archive} is truncated or corrupt ({exc}): nothing "
                           "imported") from None
    except OSError as exc:
        raise ArchiveError(f"{archive} could not be unpacked into {dest.parent} ({exc}): "
                           "nothing imported") from None


def _read_back(run_dir: Path, archive: Path) -> None:
    from coresweep.measurement.run import Run

    try:
        Run.load(run_dir)
    except (CoresweepError, ValueError, OSError) as exc:  # pyarrow's errors are one of these
        raise ArchiveError(f"{archive} does not read as a run folder ({exc}): nothing "
                           "imported") from None


def _unpack(tar: tarfile.TarFile, members: list[tarfile.TarInfo], top: str, root: Path,
            archive: Path) -> None:
    """Extract into a hidden folder of ``root``, read it back as a run, then move it into place;
    the hidden folder is removed whatever happens."""
    import tempfile

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".import-{top}-", dir=root))
    try:
        _extract(tar, members, tmp, archive)
        _read_back(tmp / top, archive)
        os.rename(tmp / top, root / top)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
