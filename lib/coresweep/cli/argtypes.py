"""Argument types shared by the commands: each checks one flag's value when argparse reads it, so
a bad path, number or name stops the command before any work, with argparse naming the flag
("argument --out: ..."). Library checks that need the machine or the model come later and
raise CoresweepError."""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _bad(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def _path(text: str) -> Path:
    if not text.strip():
        raise _bad("empty path")
    return Path(text).expanduser()


def file_to_read(text: str) -> Path:
    """An existing, readable file."""
    p = _path(text)
    if p.is_dir():
        raise _bad(f"{text!r} is a folder; give a file")
    if not p.is_file():
        raise _bad(f"{text!r}: no such file")
    if not os.access(p, os.R_OK):
        raise _bad(f"{text!r} is not readable (permission denied)")
    return p


def folder_to_read(text: str) -> Path:
    """An existing folder."""
    p = _path(text)
    if p.exists() and not p.is_dir():
        raise _bad(f"{text!r} is a file; give a folder")
    if not p.is_dir():
        raise _bad(f"{text!r}: no such folder")
    return p


def _nearest_existing(p: Path) -> Path:
    p = Path(os.path.abspath(p))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_writable(folder: Path, text: str) -> None:
    """Can a file be created in ``folder``? Tried for real (a temporary file, removed at once):
    permission bits say nothing for root or on /proc and read-only mounts."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise _bad(f"{text!r}: cannot write into {folder} ({exc.strerror or exc})") from None


def folder_to_write(text: str) -> Path:
    """A folder that exists or can be created, where files can be written."""
    p = _path(text)
    if p.exists() and not p.is_dir():
        raise _bad(f"{text!r} is a file; give a folder (created when missing)")
    base = _nearest_existing(p)
    if not base.is_dir():
        raise _bad(f"{text!r} cannot be created: {base} is a file")
    _check_writable(base, text)
    return p


def own_folder(*markers: str) -> Callable[[str], Path]:
    """A :func:`folder_to_write` type that takes a new or empty folder, or one of coresweep's own
    (holding one of ``markers``: resumed or rewritten), never a folder of other files."""
    def check(text: str) -> Path:
        p = folder_to_write(text)
        if p.is_dir() and any(p.iterdir()) and not any((p / m).is_file() for m in markers):
            raise _bad(f"{text!r} holds other files and is not a folder coresweep wrote (no "
                       f"{' or '.join(markers)}); give a new or empty folder")
        return p
    return check


def default_folder(path: Path, flag: str) -> Path:
    """The folder a command writes when ``flag`` is not given, checked as the flag would be."""
    from coresweep.errors import CoresweepError

    try:
        return folder_to_write(str(path))
    except argparse.ArgumentTypeError as exc:
        raise CoresweepError(f"{flag} not given, and the default {exc}; pass {flag}") from None


def captured_tree_dest(text: str) -> Path:
    """`topology --capture DEST`: new, empty, or an earlier capture (it is overwritten)."""
    p = folder_to_write(text)
    if p.is_dir() and any(p.iterdir()) and not (p / "sys" / "devices" / "system" / "cpu").is_dir():
        raise _bad(f"{text!r} holds other files and is not a captured tree (no "
                   "sys/devices/system/cpu); give a new or empty folder")
    return p


RUN_OUT = own_folder("batch.json", "run.json")  # coresweep run / trial: resumes a run
COMPARE_OUT = own_folder("compare.json")  # coresweep compare: rewrites a comparison


def file_to_write(text: str) -> Path:
    """A file to create or replace, or an existing folder to put it in."""
    p = _path(text)
    if p.is_dir():
        _check_writable(p, text)
        return p
    if not p.parent.is_dir():
        raise _bad(f"{text!r}: no folder {p.parent}")
    _check_writable(p.parent, text)
    return p


def run_folder(text: str) -> Path:
    """An existing run folder (``coresweep run`` or ``coresweep trial`` wrote run.json)."""
    p = folder_to_read(text)
    if not (p / "run.json").is_file():
        raise _bad(f"{text!r} is not a coresweep run folder (no run.json)")
    return p


def batch_folder(text: str) -> Path:
    """An existing folder written by ``coresweep run`` (batch.json: notebooks to re-render)."""
    p = folder_to_read(text)
    if not (p / "batch.json").is_file():
        raise _bad(f"{text!r} is not a folder written by coresweep run (no batch.json)")
    return p


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _bad(f"{text!r} is not an integer") from None
    if value < 1:
        raise _bad(f"{text!r}: need an integer >= 1")
    return value


def byte_size(text: str) -> int:
    """A size in bytes: 123, or with a unit (binary: 500M, 2G, 1.5GiB)."""
    m = _SIZE.match(text)
    if not m:
        raise _bad(f"{text!r} is not a size; give bytes or a number with K, M, G or T "
                   "(binary units), e.g. 2G")
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value < 1:
        raise _bad(f"{text!r}: need a size of at least 1 byte")
    return value


def env_item(text: str) -> tuple[str, str]:
    """NAME=VALUE with a valid environment variable name."""
    name, sep, value = text.partition("=")
    if not sep or not _ENV_NAME.match(name):
        raise _bad(f"{text!r}: expected NAME=VALUE with NAME letters, digits and '_' (not "
                   "starting with a digit), e.g. OMP_NUM_THREADS=4")
    return name, value


def cpu_list(text: str) -> str:
    """A CPU list in kernel syntax (0-3,8); whether those CPUs are usable is checked against the
    machine later."""
    from coresweep.machine.cpulist import parse_cpulist

    try:
        cpus = parse_cpulist(text)
    except ValueError as exc:
        raise _bad(f"{text!r}: {exc}") from None
    if not text.strip() or not cpus:
        raise _bad(f"{text!r} names no CPU; give CPU ids in kernel syntax, e.g. 0-3,8")
    return text.strip()


def study(text: str) -> str:
    """A study by id, name or number (see `coresweep params`)."""
    from coresweep import studies
    from coresweep.errors import CoresweepError

    try:
        return studies.get(text).id
    except CoresweepError as exc:
        raise _bad(str(exc)) from None


def override(text: str) -> str:
    """A ``-p key=value`` of `coresweep run` / `params`, typed and checked against the schema;
    returned as given (the batch applies it over the parameter file)."""
    from coresweep import studies
    from coresweep.errors import CoresweepError
    from coresweep.parameters import parse_override

    try:
        parse_override(studies.schema(), text)
    except CoresweepError as exc:
        raise _bad(str(exc)) from None
    return text
