"""Run folder: atomic parts, completed units, lock, run.json."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from coresweep.errors import CoresweepError
from coresweep.measurement.store import SCHEMA_VERSION, RunLockedError, Store


def _unit(key: str, process: int, n: int = 2) -> dict[str, pd.DataFrame]:
    trials = pd.DataFrame(
        {"config_key": key, "process": process, "rep": range(n), "ok": True, "decode_tok_s": 10.0}
    )
    tokens = pd.DataFrame(
        {"config_key": key, "process": process, "rep": 0, "token_index": range(3), "latency_s": 0.1,
         "phase": ["prefill", "decode", "decode"]}
    )
    return {"trials": trials, "tokens": tokens}


def test_units_roundtrip_and_completed(tmp_path):
    st = Store(tmp_path / "run")
    with st:
        st.write_meta({"a": 1})
        st.write_unit("abc", 0, _unit("abc", 0))
        st.write_unit("abc", 1, _unit("abc", 1))
        st.update_meta(b=2)
    assert st.completed_units() == {("abc", 0), ("abc", 1)}
    assert len(st.load_table("trials")) == 4
    assert len(st.load_table("tokens")) == 6
    assert st.read_meta() == {"a": 1, "b": 2, "schema_version": SCHEMA_VERSION}
    # the directory reads as one parquet dataset too
    assert len(pd.read_parquet(tmp_path / "run" / "data" / "trials")) == 4
    # no temp files left behind
    assert not [p for p in (tmp_path / "run").rglob(".*.tmp")]


def test_incomplete_unit_parts_are_ignored_and_overwritten(tmp_path):
    st = Store(tmp_path)
    # a crash after tokens but before trials: tokens part exists, unit not complete
    d = tmp_path / "data" / "tokens"
    d.mkdir(parents=True)
    _unit("k", 0)["tokens"].to_parquet(d / "k__p0.parquet")
    assert st.completed_units() == set()
    assert len(st.load_table("tokens")) == 0
    st.write_unit("k", 0, _unit("k", 0))
    assert len(st.load_table("tokens")) == 3  # overwritten, not duplicated


def test_rerun_without_rows_for_a_table_drops_the_old_attempts_part(tmp_path):
    st = Store(tmp_path)
    d = tmp_path / "data" / "samples"
    d.mkdir(parents=True)
    pd.DataFrame({"config_key": ["k"], "process": [0], "t_s": [0.0], "cpu": [0],
                  "util_pct": [50.0]}).to_parquet(d / "k__p0.parquet")  # interrupted attempt
    st.write_unit("k", 0, _unit("k", 0))  # the rerun sampled nothing
    assert len(st.load_table("samples")) == 0


def test_unit_needs_trials(tmp_path):
    with pytest.raises(ValueError):
        Store(tmp_path).write_unit("k", 0, {"tokens": _unit("k", 0)["tokens"]})


def test_failures_accumulate(tmp_path):
    st = Store(tmp_path)
    for _ in range(2):
        st.write_failure("k", 0, pd.DataFrame([{"config_key": "k", "process": 0, "status": "timeout"}]))
    assert len(st.load_table("failures")) == 2
    assert st.completed_units() == set()


def test_lock_refuses_second_holder(tmp_path):
    st = Store(tmp_path)
    with st:
        code = textwrap.dedent(
            f"""
            from coresweep.measurement.store import Store, RunLockedError
            try:
                Store({str(tmp_path)!r}).lock()
            except RunLockedError as e:
                print("LOCKED", e)
            """
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert "LOCKED" in out.stdout and "in use by another sweep" in out.stdout
        with pytest.raises(RunLockedError):
            Store(tmp_path).lock()  # a second open file description in this process too
    Store(tmp_path).lock().unlock()  # free again after release
    assert issubclass(RunLockedError, CoresweepError)
