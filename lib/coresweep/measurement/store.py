"""A run folder: `run.json` + long-form parquet tables under `data/<table>/`.

Layout::

    <run>/run.json                 fingerprint, params, configs, versions, start/end, sessions
    <run>/.lock                    fcntl.flock held while a sweep writes here
    <run>/data/trials/<key>__p<process>.parquet      one part per completed (config, process) unit
    <run>/data/tokens/...  data/threads/...  data/samples/...  data/thread_samples/...
    <run>/data/failures/<key>__p<process>__<n>.parquet   one part per failed attempt

Each part is written to a hidden temp file and renamed (atomic on POSIX), and a unit's `trials`
part is written last: a unit is complete exactly when its trials part exists, so a crash loses at
most the unit in flight and a resume reruns only units without one. Parts of an incomplete unit
are overwritten by the rerun (same file names). `pd.read_parquet("<run>/data/trials")` reads a
table as one dataset; `load_table` concatenates the parts.

Versions: run.json holds ``schema_version`` (SCHEMA_VERSION), and every parquet part carries it in
the file's key-value metadata (``coresweep_schema_version``). A run.json without one was written by
release 0.1 (version 1) and reads the same; `check_readable` refuses a newer version, or a run.json
that is not JSON, with a message saying why. A unit's parts also carry the measurement version of
the timed loop that made them (``coresweep_measurement_version``, asv's benchmark_version idea):
a resume measures a unit of an older version again instead of mixing the two.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from pathlib import Path
from typing import Any

from coresweep.errors import CoresweepError
from coresweep.provenance import now_iso

SCHEMA_VERSION = 2  # 1: release 0.1 (no version recorded); 2: versioned run.json and parts
_PART_KEY = b"coresweep_schema_version"
# columns an earlier release named differently: old -> new, renamed as parts are read (the
# `runtime` parameter was called `engine`)
RENAMED_COLUMNS = {"engine": "runtime"}
_MEASUREMENT_KEY = b"coresweep_measurement_version"  # of the timed loop (measurement.rows)

TABLES = ("trials", "tokens", "samples", "thread_samples", "threads", "failures")
UNIT_TABLES = ("tokens", "samples", "thread_samples", "threads", "trials")  # trials LAST


class RunLockedError(CoresweepError):
    """Another sweep holds the run folder's lock."""


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_write_parquet(path: Path, df: Any, measurement_version: int | None = None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    from coresweep.measurement.rows import NULLABLE_TYPES

    table = pa.Table.from_pandas(df, preserve_index=False)
    for i, f in enumerate(table.schema):
        if pa.types.is_null(f.type) and f.name in NULLABLE_TYPES:
            table = table.set_column(i, f.name, table.column(i).cast(NULLABLE_TYPES[f.name]))
    meta = {**(table.schema.metadata or {}), _PART_KEY: str(SCHEMA_VERSION).encode()}
    if measurement_version is not None:
        meta[_MEASUREMENT_KEY] = str(measurement_version).encode()
    pq.write_table(table.replace_schema_metadata(meta), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", s)


def part_measurement_version(path: Path) -> int:
    """The measurement version a part was written with (from its parquet footer); 1 for parts
    written before versions were recorded."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return int(meta.get(_MEASUREMENT_KEY, b"1"))


class Store:
    """Writer/reader of one run folder. Use as a context manager to hold the lock."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.data = self.path / "data"
        self._lock_f: Any = None

    # -- lock --------------------------------------------------------------------------------------
    def lock(self) -> Store:
        self.path.mkdir(parents=True, exist_ok=True)
        f = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            raise RunLockedError(
                f"run folder {self.path} is in use by another sweep ({holder or 'unknown pid'}); "
                "wait for it to finish or choose another out= folder"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} since {now_iso()}\n")
        f.flush()
        self._lock_f = f
        return self

    def unlock(self) -> None:
        if self._lock_f is not None:
            fcntl.flock(self._lock_f.fileno(), fcntl.LOCK_UN)
            self._lock_f.close()
            self._lock_f = None

    def __enter__(self) -> Store:
        return self.lock()

    def __exit__(self, *exc: Any) -> None:
        self.unlock()

    # -- run.json ------------------------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        f = self.path / "run.json"
        if not f.exists():
            return {}
        try:
            return json.loads(f.read_text())
        except ValueError as exc:
            raise CoresweepError(f"{f} is not valid JSON ({exc}): this run folder cannot be "
                                 "read; restore run.json or start a new run folder") from None

    def check_readable(self) -> int:
        """The folder's schema version; CoresweepError when this coresweep cannot read it."""
        version = int(self.read_meta().get("schema_version", 1))
        if version > SCHEMA_VERSION:
            raise CoresweepError(
                f"{self.path} was written with result schema version {version}; this coresweep "
                f"reads versions 1 to {SCHEMA_VERSION}: upgrade coresweep to read it")
        return version

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        meta = {**meta, "schema_version": SCHEMA_VERSION}
        blob = json.dumps(meta, indent=2, sort_keys=True, default=str).encode()
        _atomic_write_bytes(self.path / "run.json", blob)

    def update_meta(self, **kw: Any) -> dict[str, Any]:
        meta = self.read_meta()
        meta.update(kw)
        self.write_meta(meta)
        return meta

    # -- units ---------------------------------------------------------------------------------------
    @staticmethod
    def unit_name(key: str, process: int) -> str:
        return f"{_safe(key)}__p{int(process)}"

    def completed_units(self, measurement_version: int | None = None) -> set[tuple[str, int]]:
        """(config key, process) of every unit with a trials part; with ``measurement_version``,
        only those its timed loop measured (older units are measured again on resume)."""
        d = self.data / "trials"
        out = set()
        if d.is_dir():
            for f in d.glob("*.parquet"):
                m = re.fullmatch(r"(.+)__p(\d+)\.parquet", f.name)
                if m and (measurement_version is None
                          or part_measurement_version(f) == measurement_version):
                    out.add((m.group(1), int(m.group(2))))
        return out

    def write_unit(self, key: str, process: int, tables: dict[str, Any]) -> None:
        """Write one completed unit's rows (DataFrames); the trials part goes last."""
        name = self.unit_name(key, process)
        trials = tables.get("trials")
        version = (int(trials["measurement_version"].iloc[0]) if trials is not None
                   and len(trials) and "measurement_version" in trials else None)
        for t in UNIT_TABLES:
            df = tables.get(t)
            if df is None or len(df) == 0:
                if t == "trials":
                    raise ValueError("a completed unit needs trials rows")
                # a part left by an interrupted earlier attempt must not pass for this one's
                (self.data / t / f"{name}.parquet").unlink(missing_ok=True)
                continue
            d = self.data / t
            d.mkdir(parents=True, exist_ok=True)
            _atomic_write_parquet(d / f"{name}.parquet", df, version)

    def write_part(self, table: str, name: str, df: Any) -> Path:
        """One part ``data/<table>/<name>.parquet``, atomically and with the schema version (for
        tables other than the trial units', e.g. the serving study's)."""
        d = self.data / table
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{_safe(name)}.parquet"
        _atomic_write_parquet(path, df)
        return path

    def write_failure(self, key: str, process: int, df: Any) -> Path:
        d = self.data / "failures"
        d.mkdir(parents=True, exist_ok=True)
        base = self.unit_name(key, process)
        n = len(list(d.glob(f"{base}__*.parquet")))
        p = d / f"{base}__{n}.parquet"
        _atomic_write_parquet(p, df)
        return p

    def load_table(self, table: str) -> Any:
        import pandas as pd

        d = self.data / table
        parts = sorted(d.glob("*.parquet")) if d.is_dir() else []
        if table != "trials" and table != "failures" and parts:
            done = {self.unit_name(k, p) for k, p in self.completed_units()}
            parts = [f for f in parts if f.stem in done]  # drop leftovers of incomplete units
        frames = [pd.read_parquet(f).rename(columns=RENAMED_COLUMNS) for f in parts]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)
