"""The notebooks: one per study, committed output-stripped and thin, each .ipynb paired with its
jupytext percent-format .py (the reviewable source) and in sync with it, parameters equal to the
study's declared defaults; every one executes with papermill on params/quick.yaml into a run
folder holding the expected tables and HTML."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from _report_run import REPO, quick_run
from coresweep import studies
from coresweep.machine.topology import read_topology

NB_DIR = REPO / "notebooks"
STUDIES = {s.id: s for s in studies.all_studies()}
NAMES = list(STUDIES)


def _quick_values(run_dir: Path) -> studies.Resolved:
    """quick.yaml resolved as the run's notebooks resolved it: "auto" values that read the run
    folder (06's knob_threads: 01's recommended count) read the same folder."""
    return studies.validate(studies.load(REPO / "params" / "quick.yaml", [f"run_dir={run_dir}"]),
                            model=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return quick_run(tmp_path_factory)


@pytest.mark.parametrize("name", NAMES)
def test_committed_output_stripped_and_thin(name):
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for c in code:
        assert c.outputs == [] and c.execution_count is None, f"{name}: outputs committed"
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: exactly one parameters cell"
    pcell = nb.cells[tagged[0]]
    assert nb.cells.index(pcell) == nb.cells.index(code[1]), "imports, then parameters"
    tree = ast.parse(pcell.source)
    for node in tree.body:  # typed literals only: no derived values
        assert isinstance(node, ast.Assign), ast.dump(node)
        ast.literal_eval(node.value)
    for line in pcell.source.splitlines():
        assert "  # " in line, f"{name}: parameter without a comment: {line}"
    values = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body}
    assert values == STUDIES[name].defaults(), "the parameters cell is the study's defaults"
    assert list(values) == STUDIES[name].keys()
    assert "study.validate(" in code[2].source, "validation right after the parameters"
    assert "import onnxruntime" not in "".join(c.source for c in code)


def test_every_study_has_a_notebook_and_nothing_else_is_one():
    assert sorted(p.stem for p in NB_DIR.glob("*.ipynb")) == sorted(NAMES)
    assert sorted(p.stem for p in NB_DIR.glob("*.py")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_ipynb_and_py_pair_are_in_sync(name):
    import jupytext

    ipynb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    py = jupytext.read(NB_DIR / f"{name}.py")
    assert ipynb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    strip = [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in ipynb.cells]
    text = [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in py.cells]
    assert strip == text, f"{name}: run `jupytext --sync notebooks/{name}.ipynb`"


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_stay_thin(name):
    """Logic lives in lib/coresweep: a notebook cell holds calls and display, no definitions."""
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        tree = ast.parse(c.source.replace(";\n", "\n"))
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef,
                                                               ast.Lambda))]
        assert not defs, f"{name}: define functions in lib/coresweep, not in the notebook"
        if "parameters" not in c.metadata.get("tags", []):  # literals, one per parameter
            assert len(c.source.splitlines()) <= 20, f"{name}: a cell of {c.source[:40]!r} is long"


def test_every_notebook_executes_on_quick(run):
    d: Path = run["run_dir"]
    batch = json.loads((d / "batch.json").read_text())
    for name in NAMES:
        assert batch["notebooks"][name]["status"] == "ok", batch["notebooks"][name]
        nb = nbformat.read(d / f"{name}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                  if o.output_type == "error"]
        assert not errors, f"{name}: {errors[:1]}"
        assert (d / f"{name}.html").stat().st_size > 10_000
    assert run["wall_s"] < 240, f"quick run took {run['wall_s']:.0f} s"


def test_run_folder_has_the_expected_tables(run):
    d: Path = run["run_dir"]
    for f in ("run.json", "batch.json", "machine.json", "summary.md", "summary.csv"):
        assert (d / f).is_file(), f
    for t in ("trials", "tokens", "samples", "threads"):
        assert any((d / "data" / t).glob("*.parquet")), t
    for table in (d / "data").iterdir():  # every table's parts read as one dataset
        if any(table.glob("*.parquet")):
            assert len(pd.read_parquet(table).columns), table.name
    trials = pd.read_parquet(d / "data" / "trials")
    v = _quick_values(d)
    planned = {c.key(): c.display for s in studies.all_studies() for c in s.configs(v)}
    extra = trials[~trials["config_key"].isin(planned)][["label", "threads"]].drop_duplicates()
    missing = [planned[k] for k in set(planned) - set(trials["config_key"])]
    assert extra.empty and not missing, f"measured, not planned: {extra.to_dict('records')}; " \
        f"planned, not measured: {missing}; knob_threads {v['knob_threads']}"
    counts = trials.groupby("config_key")["process"].nunique()
    assert (counts >= 1).all() and (counts <= v["refine_processes"]).all()
    stops = json.loads((d / "run.json").read_text())["stops"]
    for key in counts[counts > v["processes"]].index:  # contenders of an unsettled decision
        assert stops[key]["stop"] == "refined", stops[key]
    for key in counts[counts < v["processes"]].index:  # raced: clearly slower than the best
        assert stops[key]["stop"] == "dropped", stops[key]
    assert (trials["ttft_s"] > 0).all() and (trials["decode_tok_s"] > 0).all()
    # same greedy tokens wherever the work is the same (graph optimisation levels may round
    # differently: the knobs study's own work is checked in its test)
    same = trials[trials["config_key"].isin({c.key() for c in studies.get("threads").configs(v)})]
    assert (same.groupby("prompt_tokens")["checksum"].nunique() == 1).all()
    explicit = trials[(trials["threads"] > 0) & ~trials["oversubscribed"]]
    assert explicit["placement_ok"].all()
    assert set(trials["threads"]) >= set(v["threads"]) | {-1}


def test_machine_notebook_says_what_can_be_tested(run):
    nb = nbformat.read(run["run_dir"] / "00_machine.ipynb", as_version=4)
    text = json.dumps([c.outputs for c in nb.cells if c.cell_type == "code"])
    assert "SMT on vs off (03)" in text and "thread counts (01)" in text
    fp = json.loads((run["run_dir"] / "machine.json").read_text())
    assert fp["machine"] and fp["topology"]


def test_smt_notebook_explains_and_skips_without_smt(run):
    from coresweep.machine.topology import read_topology

    if read_topology().has_smt():
        pytest.skip("this machine has SMT")
    nb = nbformat.read(run["run_dir"] / "03_smt.ipynb", as_version=4)
    text = json.dumps([c.outputs for c in nb.cells if c.cell_type == "code"])
    assert "No SMT on this machine" in text and "no trial was run" in text


def test_bad_parameter_fails_in_the_validation_cell(tmp_path):
    import papermill as pm

    out = tmp_path / "bad.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as exc:
        pm.execute_notebook(str(NB_DIR / "01_threads.ipynb"), str(out),
                            parameters={"placement": "numa:9", "run_dir": str(tmp_path)},
                            progress_bar=False, kernel_name="python3", cwd=str(NB_DIR))
    assert exc.value.ename == "ParamsError"
    assert "'placement'" in exc.value.evalue
    nb = nbformat.read(out, as_version=4)
    failed = [c for c in nb.cells if c.cell_type == "code" and any(
        o.output_type == "error" for o in c.outputs)]
    assert len(failed) == 1 and "study.validate(" in failed[0].source
    assert not (tmp_path / "data").exists()  # no trial ran


def test_serving_notebook_recorded_every_plan_and_level(run):
    """What 04_serving recorded: a unit per plan and closed-loop level, requests that all got
    their tokens, pinned workers whose placement was read back as planned."""
    d: Path = run["run_dir"]
    v = _quick_values(d)
    plans = studies.get("serving").plans(v)
    req = pd.read_parquet(d / "data" / "serve_requests")
    closed = req[req["mode"] == "closed"]
    assert set(closed["plan_key"]) == {p.key() for p in plans}
    for key, g in closed.groupby("plan_key"):
        assert sorted(g["level"].unique()) == sorted(map(float, v["concurrency"])), key
    assert (req["status"] == "ok").all() and (req["n_tokens"] == v["gen_tokens"]).all()
    assert (req["ttft_s"] > 0).all() and (req["ttft_s"] < req["e2e_s"]).all()
    assert set(req["mode"]) == {"closed", "open"}
    workers = pd.read_parquet(d / "data" / "serve_workers")
    pinned = workers[workers["pinned"]]
    assert len(pinned) and pinned["placement_ok"].all()
    assert (pinned["allowed_cpus"] == pinned["plan_cpus"]).all()
    itl = pd.read_parquet(d / "data" / "serve_itl")
    assert (itl["itl_s"] > 0).all() and len(itl) == len(req) * (v["gen_tokens"] - 1)


def test_threads_notebook_measured_the_bandwidth_at_its_placements(run):
    """The roofline's ceiling: one bandwidth row set per non-oversubscribed placement of the
    thread sweep, positive and finite, the roofline's method marked."""
    import math

    d: Path = run["run_dir"]
    bw = pd.read_parquet(d / "data" / "bandwidth")
    v = _quick_values(d)
    from coresweep.machine.cpulist import format_cpulist
    from coresweep.measurement.bandwidth_table import placements

    want = placements(studies.get("threads").configs(v), v.topology)
    assert want and {(r.cpus, int(r.threads)) for r in bw.itertuples()} >= {
        (format_cpulist(c), t) for c, t in want}
    ok = bw[bw["ok"]]
    assert len(ok) and all(math.isfinite(x) and x > 0 for x in ok["gb_s"])
    assert (bw.groupby(["cpus", "threads"])["roofline"].sum() == 1).all()
    summary = (d / "summary.md").read_text()
    assert "decode_gb_s" in summary and "pct_of_roofline" in summary


def test_recommend_notebook_answers_with_configs_and_claims(run):
    d: Path = run["run_dir"]
    nb = nbformat.read(d / "05_recommend.ipynb", as_version=4)
    text = json.dumps([c.outputs for c in nb.cells if c.cell_type == "code"])
    # noisy points stay eligible: the one decision always names a point (decided, tied or
    # undecided) when any verified one was measured
    assert "taskset -c" in text and "intra_op_num_threads" in text
    assert any(f"| {s} |" in text for s in ("decided", "tied", "undecided"))
    # the serving deployment handed out is the one measured: gunicorn behind HAProxy
    assert "gunicorn.conf.py" in text and "uvicorn_worker.Uvicorn" in text
    assert "haproxy.cfg" in text and "balance leastconn" in text
    rec = (d / "recommendation.md").read_text()
    assert "Claims: 1." in rec and "### Recommendation" in rec
    claims = [ln for ln in rec.splitlines() if ln.startswith("Claims:")][0]
    assert claims.count(";") == 7  # eight claims
    if len(read_topology().nodes_with_memory()) < 2:  # one node: nothing to compare
        assert "NUMA-local placement helps: cannot be tested here" in claims
    assert "Recommendation" in (d / "summary.md").read_text()
    index = run["index"].read_text()
    assert index.index("05_recommend.html") < index.index("00_machine.html")  # the answer first


def test_threads_notebook_swept_every_prompt_length(run):
    """quick.yaml's prompt_tokens list is an axis of 01: every thread count at every length, the
    context figure drawn, and the main curves on the first length."""
    d: Path = run["run_dir"]
    v = _quick_values(d)
    trials = pd.read_parquet(d / "data" / "trials")
    keys = {c.key() for c in studies.get("threads").configs(v)}
    t = trials[trials["config_key"].isin(keys)]
    assert sorted(t["prompt_tokens"].unique()) == sorted(v["prompt_tokens"])
    for p, g in t.groupby("prompt_tokens"):
        assert set(g["threads"]) == set(v["threads"]), p
    nb = nbformat.read(d / "01_threads.ipynb", as_version=4)
    text = json.dumps([c.outputs for c in nb.cells if c.cell_type == "code"])
    assert "one prompt length" not in text  # the context figure was drawn, not its placeholder


def test_knobs_notebook_measured_each_knob_against_the_baseline(run):
    """What 06_knobs recorded: every planned knob value in every process, the session options
    and memory policy the worker used, the parent's placement, and the spin split drawn."""
    d: Path = run["run_dir"]
    v = _quick_values(d)
    study = studies.get("knobs")
    configs = study.configs(v)
    trials = pd.read_parquet(d / "data" / "trials")
    t = trials[trials["config_key"].isin({c.key() for c in configs})]
    assert t["config_key"].nunique() == len(configs)
    stops = json.loads((d / "run.json").read_text())["stops"]
    for key, n in t.groupby("config_key")["process"].nunique().items():  # or raced and dropped
        assert n == v["processes"] or stops[key]["stop"] == "dropped", stops[key]
    assert set(t["session"]) >= {"{}", '{"spinning": false}', '{"graph_optimization": "basic"}'}
    assert t["parent_cpus"].str.len().gt(0).all() and t["cpu_s_per_token"].gt(0).all()
    for c in configs:  # the tokens do not depend on a knob that only schedules work
        if c.role["knob"] in ("spinning", "pin_threads", "dynamic_block_base", "inter_op_threads"):
            assert t[t["config_key"] == c.key()]["checksum"].iloc[0] == \
                t[t["config_key"] == configs[0].key()]["checksum"].iloc[0]
    nb = nbformat.read(d / "06_knobs.ipynb", as_version=4)
    text = json.dumps([c.outputs for c in nb.cells if c.cell_type == "code"])
    assert "spinning off" in text and "share of CPU time that is spin" in text
    assert "decode vs baseline" in text and "parent ran on" in text


@pytest.mark.parametrize("name", ["00_machine", "01_threads", "02_affinity", "03_smt",
                                  "06_knobs"])
def test_report_tables_show_no_index_and_no_hashes(run, name):
    """Every table a notebook displays: no pandas index column, no configuration key."""
    d: Path = run["run_dir"]
    keys = set(pd.read_parquet(d / "data" / "trials")["config_key"])
    nb = nbformat.read(d / f"{name}.ipynb", as_version=4)
    shown = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code"
             for o in c.outputs if "text/html" in o.get("data", {})]
    for html in shown:
        assert "<th></th>" not in html, f"{name}: a table with its index column"
        assert not [k for k in keys if k in html], f"{name}: a configuration key in a table"


def test_batching_notebook_recorded_each_batch_and_its_step_roofline(run):
    """What 07_batching recorded: every batch size's rows, the aggregate as batch x each
    sequence's speed, batch 1's tokens in every sequence, and a step's bytes from the model's
    bytes per token (not its file size) plus each sequence's KV cache."""
    from coresweep.measurement.run import Run
    from coresweep.models import inspect_model, resolve_model
    from coresweep.studies.results import select

    d: Path = run["run_dir"]
    v = _quick_values(d)
    study = studies.get("batching")
    configs = study.configs(v)
    trials = pd.read_parquet(d / "data" / "trials")
    t = trials[trials["config_key"].isin({c.key() for c in configs})]
    assert set(t["batch"]) == set(v["batch_sizes"]) and t["sequences_agree"].all()
    assert (t["agg_decode_tok_s"] == t["batch"] * t["decode_tok_s"]).all()
    assert t["checksum"].nunique() == 1  # the same prompt: batch 1's tokens in every batch
    results = study.finish(v, select(Run.load(d), configs))
    s = results.summary
    info = inspect_model(resolve_model(v["model"], v["precision"], build=False))
    context = s["prompt_tokens"] + s["gen_tokens"] / 2
    expected = (info.bytes_per_token + s["batch"] * info.kv_bytes_per_position * context) / 1e9
    assert s["step_gb"].to_numpy() == pytest.approx(expected.to_numpy())
    assert (s["pct_of_ceiling"] > 0).all() and s["pct_of_ceiling"].notna().all()
