"""`runtime` as an axis: 01 and 02 measure each runtime side by side (each its own decision),
the other studies use the first; the parameter that was `engine` keeps every run folder's keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from coresweep import studies
from coresweep.errors import ParamsError
from coresweep.measurement.config import TrialConfig

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_topology(name: str):
    from coresweep.machine.topology import read_topology

    return read_topology(FIX / name)


def _resolved(*overrides: str):
    values = studies.load(overrides=["model=tiny", "threads=1,2", *overrides])
    return studies.validate(values, topo=fixture_topology("vm-2vcpu"), model=False)


def test_threads_and_affinity_measure_each_runtime():
    both = _resolved("runtime=ort,llamacpp")
    one = _resolved("runtime=ort")
    threads = studies.get("threads").configs(both)
    assert [c.runtime for c in threads] == ["ort", "ort", "llamacpp", "llamacpp"]
    assert [c.display for c in threads][2:] == ["1 thread · llamacpp", "2 threads · llamacpp"]
    # the ort points are the same configs (same keys) with or without llamacpp beside them
    assert {c.key() for c in studies.get("threads").configs(one)} <= {c.key() for c in threads}
    affinity = studies.get("affinity").configs(both)
    controls = [c for c in affinity if c.role.get("control")]
    assert controls and {c.runtime for c in controls} == {"ort"}  # onnxruntime's own modes
    assert {c.runtime for c in affinity if c.role.get("strategy")} == {"ort", "llamacpp"}
    keep = studies.get("threads").keep(threads)
    assert {k for k in keep} == {threads[0].key(), threads[2].key()}  # each runtime's baseline


def test_other_studies_use_the_first_runtime():
    both = _resolved("runtime=ort,llamacpp")
    assert {c.runtime for c in studies.get("smt").configs(both)} <= {"ort"}
    with pytest.raises(ParamsError, match="06_knobs compares onnxruntime's session options"):
        studies.validate(studies.load(overrides=["runtime=llamacpp,ort"]),  # ORT's knobs
                         topo=fixture_topology("vm-2vcpu"), model=False, names=["06_knobs"])
    with pytest.raises(ParamsError, match="serve_controls.*cannot run on runtime 'llamacpp'"):
        studies.validate(studies.load(overrides=["runtime=llamacpp"]),
                         topo=fixture_topology("vm-2vcpu"), model=False, names=["04_serving"])


def test_the_engine_parameter_was_renamed_runtime(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("model: tiny\nengine: ort\n")
    with pytest.raises(ParamsError, match="unknown parameter 'engine' \\(it is now called "
                                          "'runtime': did you mean 'runtime'\\?\\)"):
        studies.load(old)
    # a config stored by a run folder of the previous release reads back with the same key
    stored = {"model": "tiny", "engine": "genai", "threads": 2, "warmups": 1}
    cfg = TrialConfig.from_dict(stored)
    assert cfg.runtime == "genai" and cfg.key() == TrialConfig(model="tiny", runtime="genai",
                                                               threads=2).key()
    assert TrialConfig(runtime="llamacpp").key() != TrialConfig().key()


def _summary(runtime: str, decode: dict[int, float]) -> pd.DataFrame:
    rows = []
    for t, v in decode.items():
        rows.append({"config_key": f"{runtime}{t}", "label": f"{t}t {runtime}", "runtime": runtime,
                     "threads": t, "n_cpus": t, "placement_ok": True, "oversubscribed": False,
                     "decode_tok_s_median": v, "decode_tok_s_ci_lo": v * 0.98,
                     "decode_tok_s_ci_hi": v * 1.02, "ttft_s_median": 1 / v,
                     "ttft_s_ci_lo": 0.98 / v, "ttft_s_ci_hi": 1.02 / v})
    return pd.DataFrame(rows)


def test_each_runtime_is_decided_apart_and_compared():
    from coresweep.analysis import runtimes
    from coresweep.tables import runtimes_markdown, study_table

    s = pd.concat([_summary("ort", {1: 10.0, 2: 18.0}), _summary("llamacpp", {1: 12.0, 2: 24.0})],
                  ignore_index=True)
    by_rt = runtimes.decisions(s)
    assert list(by_rt) == ["ort", "llamacpp"]
    assert by_rt["ort"]["decode_tok_s"].pick["config_key"] == "ort2"
    assert by_rt["llamacpp"]["decode_tok_s"].pick["config_key"] == "llamacpp2"
    c = runtimes.compare_picks(by_rt, "decode_tok_s")
    assert c["best"] == "llamacpp" and c["ratio"] == pytest.approx(24 / 18)
    assert c["relation"] == "better"
    text = runtimes.comparison_sentence(by_rt)
    assert "**llamacpp**" in text and "33 % faster" in text
    table = runtimes.side_by_side(s)
    assert list(table["threads"]) == [1, 2] and list(table["llamacpp ÷ ort"]) == ["1.20", "1.33"]
    assert "llamacpp ÷ ort" in runtimes_markdown(s)
    assert list(study_table(s)["runtime"]) == ["ort", "ort", "llamacpp", "llamacpp"]
    one = runtimes.decisions(_summary("ort", {1: 10.0}))
    assert runtimes.compare_picks(one, "decode_tok_s") is None
    assert np.isfinite(one["ort"]["decode_tok_s"].pick["value"])
