"""Studies and their parameters: parameter files, -p overrides and the schema: bad input fails before any trial, naming the
parameter and the valid choices."""

from __future__ import annotations

from pathlib import Path

import pytest
from coresweep import studies
from coresweep.errors import ParamsError
from coresweep.machine.topology import read_topology
from coresweep.studies import affinity, threads

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures"


@pytest.fixture(scope="module")
def topo():
    return read_topology()


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", ["quick", "default", "seed-article"])
def test_shipped_param_files_validate(name, topo):
    checked = studies.load(REPO / "params" / f"{name}.yaml")
    res = studies.validate(checked, topo=topo, model=False)
    assert all(v != "auto" for v in res.values.values())
    assert res["threads"] and all(t >= 1 for t in res["threads"])


def test_seed_article_is_the_studys_sweep():
    v = studies.load(REPO / "params" / "seed-article.yaml")
    assert v["threads"] == [1, 2, 4, 6, 8, 10, 12, 16]
    assert v["model"] == "deepseek-r1-distill-qwen-1.5b" and v["precision"] == "int4"
    assert v["prompt_text"]
    # the study's text is used with a real model's tokenizer, never the synthetic preset's
    topo = read_topology()
    res = studies.validate(v, topo=topo, model=False)
    assert all(c.prompt_text is None for c in studies.get("threads").configs(res))
    real = studies.validate({**v, "model": str(REPO)}, topo=topo, model=False)
    assert {c.prompt_text for c in studies.get("threads").configs(real)} == {v["prompt_text"]}


def test_quick_uses_the_tiny_model():
    v = studies.load(REPO / "params" / "quick.yaml")
    assert v["model"] == "tiny" and v["processes"] <= 2 and len(v["threads"]) <= 4


def test_default_is_derived_from_the_machine(topo):
    v = studies.load(REPO / "params" / "default.yaml")
    assert v["model"] == "deepseek-r1-distill-qwen-1.5b" and v["threads"] == "auto"
    res = studies.validate(v, topo=topo, model=False)
    n = len(topo.allowed)
    assert res["threads"][-1] == 2 * n  # one oversubscribed point
    assert set(range(1, min(n, 8) + 1)) <= set(res["threads"])


def test_auto_threads_on_a_16_cpu_laptop():
    t = read_topology(FIX / "laptop-i7-11800h")
    res = studies.validate(studies.defaults(), topo=t, model=False)
    assert res["threads"] == [1, 2, 4, 6, 8, 10, 12, 14, 16, 32]
    assert res["affinity_threads"] == [8]
    assert res["smt_cores"] == [1, 8]


def test_unknown_key_in_file(tmp_path):
    with pytest.raises(ParamsError, match=r"unknown parameter 'thread'.*did you mean 'threads'"):
        studies.load(_write(tmp_path, "thread: [1, 2]\n"))


def test_wrong_type_in_file(tmp_path):
    with pytest.raises(ParamsError, match=r"'reps'.*not an integer"):
        studies.load(_write(tmp_path, "reps: three\n"))
    with pytest.raises(ParamsError, match=r"'threads'.*list of integers"):
        studies.load(_write(tmp_path, "threads: [1, two]\n"))
    with pytest.raises(ParamsError, match=r"'oversubscribe'.*true/false"):
        studies.load(_write(tmp_path, "oversubscribe: 1\n"))


def test_not_a_mapping_and_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="mapping"):
        studies.load(_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ParamsError, match="does not exist"):
        studies.load(tmp_path / "nope.yaml")


def test_choices_are_listed():
    with pytest.raises(ParamsError, match=r"'runtime'.*valid choices: ort, genai, llamacpp"):
        studies.load(overrides=["runtime=tensorrt"])
    with pytest.raises(ParamsError, match=r"'smt_mode'.*valid choices: placement, sysfs"):
        studies.load(overrides=["smt_mode=bios"])


def test_overrides_are_typed():
    v = studies.load(REPO / "params" / "quick.yaml",
               ["threads=1,2", "reps=3", "oversubscribe=false", "placement=0-1",
                "strategies=physical,none", "timeout_s=30"])
    assert v["threads"] == [1, 2] and v["reps"] == 3 and v["oversubscribe"] is False
    assert v["placement"] == "0-1" and v["strategies"] == ["physical", "none"]
    assert v["timeout_s"] == 30.0
    assert studies.load(overrides=["threads=[1, 4]"])["threads"] == [1, 4]
    assert studies.load(overrides=["threads=auto"])["threads"] == "auto"
    assert studies.load(overrides={"reps": 5})["reps"] == 5


def test_bad_overrides():
    with pytest.raises(ParamsError, match=r"unknown parameter 'repz'"):
        studies.load(overrides=["repz=2"])
    with pytest.raises(ParamsError, match=r"key=value"):
        studies.load(overrides=["reps"])
    with pytest.raises(ParamsError, match=r"'reps'.*not an integer"):
        studies.load(overrides=["reps=2.5"])
    with pytest.raises(ParamsError, match=r"'processes'.*below the minimum 1"):
        studies.load(overrides=["processes=0"])
    with pytest.raises(ParamsError, match=r"'threads'.*below the minimum"):
        studies.load(overrides=["threads=0,1"])


def test_invalid_placement_names_the_parameter(topo):
    node = max(topo.numa_nodes) + 1  # one past this machine's nodes and CPUs
    cpu = max(topo.online) + 1
    with pytest.raises(ParamsError, match=rf"'placement'.*numa:{node}.*valid strategies"):
        studies.validate(studies.load(overrides=[f"placement=numa:{node}"]), topo=topo,
                         model=False)
    with pytest.raises(ParamsError, match=r"'strategies'.*'pcore'"):
        studies.validate(studies.load(overrides=["strategies=physical,pcore"]), topo=topo, model=False)
    with pytest.raises(ParamsError, match=rf"'placement'.*'0-{cpu}'"):
        studies.validate(studies.load(overrides=[f"placement=0-{cpu}"]), topo=topo, model=False)


def test_oversubscription_needs_the_flag(topo):
    n = len(topo.allowed)
    v = studies.load(overrides=[f"threads=1,{2 * n}", "oversubscribe=false"])
    with pytest.raises(ParamsError, match=r"'placement'.*cannot place"):
        studies.validate(v, topo=topo, model=False)


def test_heatmaps_must_be_compared_strategies(topo):
    v = studies.load(overrides=["strategies=physical,none", "heatmaps=compact"])
    with pytest.raises(ParamsError, match=r"'heatmaps'.*valid choices: physical, none"):
        studies.validate(v, topo=topo, model=False)


def test_smt_cores_bounded(topo):
    v = studies.load(overrides=["smt_cores=1,999"])
    with pytest.raises(ParamsError, match=r"'smt_cores'.*999"):
        studies.validate(v, topo=topo, model=False)


def test_missing_model(topo, tmp_path):
    v = studies.load(overrides=[f"model={tmp_path / 'no-such-model'}"])
    with pytest.raises(ParamsError, match=r"parameter 'model'.*valid presets: .*tiny"):
        studies.validate(v, topo=topo)


def test_notebook_validation_only_checks_its_parameters(topo):
    study = studies.get("01_threads")
    bad_for_02 = {**study.defaults(), "threads": [1], "strategies": ["bogus"]}
    res = study.validate(bad_for_02, topo=topo, model=False)
    assert set(res.values) == set(study.keys())
    with pytest.raises(ParamsError, match="unknown study '04_nothing'; valid choices: 00_machine"):
        studies.get("04_nothing")


def test_configs_for_each_notebook(topo):
    res = studies.validate(studies.load(REPO / "params" / "quick.yaml"), topo=topo, model=False)
    assert studies.get("machine").configs(res) == []
    c1 = studies.get("threads").configs(res)
    lengths = res["prompt_tokens"]
    assert len(lengths) == 2, "quick.yaml sweeps two prompt lengths through 01"
    assert [(c.prompt_tokens, c.threads) for c in c1] == [(p, t) for p in lengths
                                                          for t in res["threads"]]
    main = studies.get("threads").main_configs(res)
    assert {c.prompt_tokens for c in main} == {lengths[0]}
    c2 = studies.get("affinity").configs(res)
    labels = [c.display for c in c2]
    assert "ort-default" in labels and any(lb.startswith("omp-only") for lb in labels)
    omp = [c for c in c2 if c.display.startswith("omp-only")][0]
    assert omp.threads is None
    v = int(omp.env["OMP_NUM_THREADS"])
    assert v == affinity.omp_control_value(res["affinity_threads"][0], topo)
    assert v != topo.physical_core_count(), "the control must ask for a count ORT would not pick"
    assert len({c.key() for c in c2}) == len(c2)
    assert studies.get("smt").configs(res) == ([] if not topo.has_smt() else studies.get("smt").configs(res))
    df = studies.describe_configs(c1 + c2, topo)
    assert list(df["label"]) == [c.display for c in c1 + c2]


def test_omp_control_value_differs_from_ort_default():
    t = read_topology(FIX / "laptop-i7-11800h")  # ORT's default: 8 threads (physical cores)
    assert affinity.omp_control_value(4, t) == 4
    assert affinity.omp_control_value(8, t) == 1
    assert affinity.omp_control_value(16, t) == 16


def test_smt_configs_pair_on_and_off():
    t = read_topology(FIX / "laptop-i7-11800h")
    res = studies.validate(studies.defaults(), topo=t, model=False)
    cfgs = studies.get("smt").configs(res)
    assert {c.smt for c in cfgs} == {"on", "off"}
    # equal physical cores (8 off vs 16 on) and equal threads (8 off vs 8 on)
    assert {(c.threads, c.smt) for c in cfgs} >= {(8, "off"), (16, "on"), (8, "on")}
    assert studies.get("smt").configs(studies.validate(studies.defaults(), topo=read_topology(
        FIX / "laptop-i7-11800h-smt-off"), model=False)) == []


def test_schema_is_papermill_friendly():
    # papermill's parameter parser stops at '=' inside a comment; every help becomes a comment
    for p in studies.schema().values():
        assert "=" not in p.help, p.name
        p.check(p.default_value())


def test_cli_rejects_bad_params_before_any_trial(tmp_path, capsys):
    from coresweep.cli import main

    out = tmp_path / "run"
    rc = main(["run", str(REPO / "params" / "quick.yaml"), "-p", "placement=numa:9",
               "--out", str(out)])
    assert rc == 2
    assert "'placement'" in capsys.readouterr().err
    assert not out.exists()
    rc = main(["run", str(REPO / "params" / "quick.yaml"), "-p", "bogus=1", "--out", str(out)])
    assert rc == 2 and "unknown parameter 'bogus'" in capsys.readouterr().err
    assert not out.exists()


def test_cli_params_lists_and_validates(capsys):
    from coresweep.cli import main

    assert main(["params"]) == 0
    out = capsys.readouterr().out
    assert "threads" in out and "smt_mode" in out and "placement, sysfs" in out
    assert main(["params", str(REPO / "params" / "quick.yaml"), "-p", "reps=4"]) == 0
    assert '"reps": 4' in capsys.readouterr().out


def _plans(cfgs, topo):
    from coresweep.machine.placement import make_plan

    return [make_plan(topo, c.threads, c.plan_strategy(), oversubscribe=c.oversubscribe)
            for c in cfgs]


def test_auto_threads_use_siblings_before_oversubscribing():
    t = read_topology(FIX / "laptop-i7-11800h")  # 8 cores / 16 CPUs
    res = studies.validate(studies.load(REPO / "params" / "default.yaml"), topo=t, model=False)
    cfgs = studies.get("threads").configs(res)
    plans = _plans(cfgs, t)
    assert res["threads"][-1] == 32 and max(res["threads"][:-1]) == 16
    assert [p.oversubscribed for p in plans] == [False] * (len(plans) - 1) + [True]
    ten = next(p for c, p in zip(cfgs, plans, strict=True) if c.threads == 10)
    assert len(set(ten.cpus)) == 10  # 8 cores + 2 siblings, not 10 threads on 8 CPUs
    assert threads.sweep_cpus(res.values, t) == 16
    no_over = studies.validate({**studies.load(REPO / "params" / "default.yaml"), "oversubscribe": False},
                         topo=t, model=False)
    assert max(no_over["threads"]) == 16


@pytest.mark.parametrize("fixture", ["laptop-i7-11800h", "hybrid-i7-12700h",
                                     "desktop-cgv1-offline", "server-2s-xeon-6226r"])
@pytest.mark.parametrize("params_file", ["default", "quick"])
def test_smt_pairs_compare_the_same_cores(fixture, params_file):
    t = read_topology(FIX / fixture)
    res = studies.validate(studies.load(REPO / "params" / f"{params_file}.yaml"), topo=t, model=False)
    cfgs = studies.get("smt").configs(res)
    assert cfgs, "an SMT machine gets SMT configs"
    cores_of = {c: core.cpus for core in t.cores for c in core.cpus}
    by_label = dict(zip([c.display for c in cfgs], _plans(cfgs, t), strict=True))
    for c in res["smt_cores"]:
        off, on = by_label[f"SMT off {c}c/{c}t"], next(
            p for lb, p in by_label.items() if lb.startswith(f"SMT on {c}c/"))
        assert {cores_of[x] for x in off.cpus} == {cores_of[x] for x in on.cpus}
        assert len({cores_of[x] for x in off.cpus}) == c and len(on.cpus) > c
        assert not off.oversubscribed and not on.oversubscribed


# -- the registry and one definition per parameter ---------------------------------------------


def test_registry_numbers_names_and_notebooks():
    every = studies.all_studies()
    assert [s.number for s in every] == sorted({s.number for s in every})
    assert len({s.name for s in every}) == len(every)
    for s in every:
        assert (REPO / "notebooks" / f"{s.id}.ipynb").is_file(), s.id
        assert s.title and s.question.endswith("?")
        assert studies.get(s.name) is s and studies.get(s.id) is s
        assert studies.get(str(s.number)) is s and studies.get(f"{s.id}.ipynb") is s
    studies.schema()  # raises when two studies define the same parameter twice


def test_no_study_id_is_spelled_outside_the_studies_package():
    ids = [s.id for s in studies.all_studies()]
    lib = REPO / "lib" / "coresweep"
    for path in lib.rglob("*.py"):
        if "studies" in path.relative_to(lib).parts:
            continue
        text = path.read_text()
        assert not [i for i in ids if i in text], path


def test_docs_parameter_reference_is_generated_from_the_registry():
    doc = (REPO / "docs" / "parameters.md").read_text()
    assert doc == studies.reference_markdown(), "run: coresweep params --markdown > docs/parameters.md"


def test_reports_doc_lists_every_parameter_by_notebook():
    doc = (REPO / "docs" / "reports.md").read_text()
    missing = [k for k in studies.schema() if f"`{k}`" not in doc]
    assert not missing, f"docs/reports.md does not list {missing}"
    for s in studies.all_studies():
        assert f"| `{s.id}` |" in doc, s.id


def test_trial_config_and_trial_flags_take_the_parameter_defaults():
    import argparse

    from coresweep.cli import trial as cli_trial
    from coresweep.measurement.config import TrialConfig
    from coresweep.parameters import PROTOCOL, WORKLOAD

    cfg = TrialConfig()
    for name, p in WORKLOAD.items():
        if name != "prompt_text":  # "" in files means "no text": None on the config
            assert getattr(cfg, name) == p.default, name
    parser = argparse.ArgumentParser()
    cli_trial.register(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices["trial"]
    args = sub.parse_args(["--threads", "1"])
    for name, p in {**WORKLOAD, **PROTOCOL}.items():
        assert getattr(args, name) == p.default, name
    assert sub.parse_args(["--threads", "1", "--warmups", "2"]).warmup == 2  # old spelling


def test_a_new_field_with_a_default_leaves_keys_unchanged():
    import dataclasses

    from coresweep.measurement.config import TrialConfig

    Later = dataclasses.make_dataclass("Later", [("new_knob", int, dataclasses.field(default=0))],
                                       bases=(TrialConfig,), frozen=True)
    old = TrialConfig(model="tiny", threads=2)
    assert Later(model="tiny", threads=2).key() == old.key()
    assert Later(model="tiny", threads=2, new_knob=1).key() != old.key()
    assert TrialConfig(model="tiny", threads=2, role={"x": 1}, label="l").key() == old.key()


def test_quick_configs_resume_a_run_folder_written_by_release_0_1(topo):
    """The keys of today's configs are the keys release 0.1 stored: resuming its run folder
    reruns nothing (threads study: machine-independent configs)."""
    import json

    from coresweep.measurement.store import Store

    old = FIX / "runs" / "v0-quick"
    res = studies.validate(studies.load(REPO / "params" / "quick.yaml",
                                        ["processes=1", "reps=1", "prompt_tokens=32"]),
                           topo=topo, model=False)
    keys = {c.key() for c in studies.get("threads").configs(res)}
    assert keys <= {k for k, _ in Store(old).completed_units()}
    stored = json.loads((old / "run.json").read_text())["configs"]
    from coresweep.measurement.config import TrialConfig

    assert all(TrialConfig.from_dict(c["config"]).key() == c["key"] for c in stored)
