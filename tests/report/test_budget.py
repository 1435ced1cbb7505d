"""The time budget (coresweep.report.budget): durations, the calibration's arithmetic, the plan
on this machine's and on captured topologies (each within the budget), explicit values kept,
a budget that cannot hold the run refused before any trial, and the ETA's arithmetic."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from coresweep import studies
from coresweep.errors import ParamsError
from coresweep.machine.topology import read_topology
from coresweep.report.budget import BatchPlan, StudyEstimate, parse_budget, plan_batch
from coresweep.report.calibrate import Calibration, CalPoint, thread_counts
from coresweep.report.progress import Eta, serving_item_names

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
CAL = FIXTURES / "calibration" / "epyc-2vcpu-1.5b.json"


@pytest.mark.parametrize("text, seconds", [("10m", 600), ("90s", 90), ("1h30m", 5400),
                                           ("600", 600), ("2.5m", 150), ("off", None)])
def test_budget_durations(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["ten minutes", "", "0", "-5m", "5x"])
def test_bad_budgets_name_the_parameter(text):
    if text == "0":
        assert parse_budget(text) is None  # "0" means off
        return
    with pytest.raises(ParamsError, match="parameter 'budget'.*valid"):
        parse_budget(text)


def test_calibration_arithmetic():
    cal = Calibration.read(CAL)
    one, two = cal.points[1], cal.points[2]
    assert cal.at(2, 2) == two and cal.at(16, 64) == two  # beyond: the largest below
    over = cal.at(4, 2)
    assert over.decode_tok_s == pytest.approx(two.decode_tok_s / 2) and over.ttft_s > two.ttft_s
    unit = cal.unit_s(1, 1, reps=2, warmup=1, gen_tokens=32)
    assert unit > one.load_s + 3 * 31 / one.decode_tok_s
    assert thread_counts([1, 2, 3, 4, 6, 8, 16, 32], 16) == [1, 2, 4, 8, 16]
    with pytest.raises(Exception, match="calibration"):
        Calibration.read(REPO / "README.md")


def _plan(root: str, budget: str = "10m", overrides=(), spent_s: float = 180.0) -> BatchPlan:
    topo = read_topology(FIXTURES / root)
    values = studies.load(REPO / "params" / "default.yaml", list(overrides))
    chosen = studies.all_studies()
    from coresweep.report.batch import explicit_keys

    return plan_batch(values, topo, chosen, Calibration.read(CAL),
                      budget_s=parse_budget(budget), spent_s=spent_s,
                      explicit=explicit_keys(REPO / "params" / "default.yaml", list(overrides)),
                      validate=lambda v, ss: studies.validate(v, topo=topo, model=False,
                                                              names=[s.id for s in ss]))


@pytest.mark.parametrize("root", ["vm-2vcpu", "server-epyc-7313p", "arm-graviton3-64c"])
def test_the_default_plan_fits_ten_minutes(root):
    """Captured 2-, 16- (32 logical) and 64-core machines: the plan of make report fits, the
    venv and model build (3 minutes here) included, and still answers the thread question."""
    plan = _plan(root)
    assert plan.fits and plan.total_s <= 600
    by = {e.study: e for e in plan.estimates}
    assert "01_threads" in by and "05_recommend" in by
    threads = [k for k in by["01_threads"].units]
    assert len({k.split("__")[0] for k in threads}) >= 2  # at least two thread counts
    assert all(e.seconds > 0 for e in plan.estimates)
    text = "\n".join(plan.lines())
    assert "total" in text and "refining" in text


def test_a_bigger_machine_keeps_the_thread_ladder_and_says_what_it_trimmed():
    plan = _plan("arm-graviton3-64c")
    threads = {e.study: e for e in plan.estimates}["01_threads"]
    assert len({k.split("__")[0] for k in threads.units}) >= 4  # 1, 2, 4, … 64 kept
    assert plan.trims or plan.skipped
    assert any(t.startswith(("04", "06")) for t in plan.trims + plan.skipped)
    small = _plan("vm-2vcpu", budget="1h")
    assert not small.trims and not small.skipped  # room to spare: nothing trimmed


def test_explicit_values_are_kept_and_an_impossible_budget_is_refused():
    plan = _plan("server-epyc-7313p", overrides=["threads=1,2,4,8,16,32"])
    assert [t for t in plan.values["threads"]] == [1, 2, 4, 8, 16, 32]
    with pytest.raises(ParamsError, match="budget.*threads"):  # the user's own budget: refused
        _plan("server-epyc-7313p", budget="2m", overrides=["threads=1,2,4,8,16,32",
                                                            "budget=2m"])
    # the default budget on a machine too slow for it: the smallest plan, with a warning
    slow = _plan("server-epyc-7313p", budget="2m", overrides=["threads=1,2,4,8,16,32"])
    assert not slow.fits and "running the smallest plan anyway" in slow.overrun
    assert "WARNING" in "\n".join(slow.lines())


def test_budget_off_keeps_everything():
    plan = _plan("vm-2vcpu", budget="off")
    assert plan.fits and not plan.trims and plan.budget_s is None


def test_eta_scales_the_items_left_by_the_measured_pace():
    est = {"01": StudyEstimate("01", "", {"a": 30.0, "b": 30.0, "c": 40.0}, 10.0),
           "02": StudyEstimate("02", "", {"d": 50.0}, 20.0)}
    eta = Eta(est)
    eta.start("01")
    assert eta.remaining_s(set()) == pytest.approx(180.0, abs=0.5)  # the plan as it stands
    # the study began 81 s ago; a, its first item, got its 30 s estimate (the rest of its share
    # was the notebook's start) and ended 36 s ago
    eta.current_t0 = eta.last_mark = time.monotonic() - 81.0
    eta.remaining_s({"a"})
    assert eta.item_s["a"] == pytest.approx(30.0) and eta.pace() is None  # not paced by a start
    eta.last_mark = time.monotonic() - 36.0  # b (30 s estimated) took 36 s: pace 1.2
    left = eta.remaining_s({"a", "b"})
    assert eta.pace() == pytest.approx(1.2, rel=0.01)
    # 01's fixed 10 s used up by its start (81 - 30 - 36 = 15 s); fixed parts are not scaled
    assert left == pytest.approx(1.2 * 40 + 1.2 * 50 + 20, rel=0.01)
    assert Eta(est, planned=False).remaining_s(set()) is None  # unplanned: no pace yet
    eta.finish("01")
    assert eta.report()[1].startswith("  01")


def test_open_serving_levels_are_counted_in_plan_order():
    stems = ["sA__closed1", "sA__open0.7", "sA__open0.35", "sB__closed2"]
    assert serving_item_names(stems) == {"sA__closed1", "sA__open#1", "sA__open#2",
                                         "sB__closed2"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coresweep", *args], capture_output=True,
                          text=True, timeout=300, cwd=REPO)


def test_cli_plans_for_a_captured_64_core_machine():
    out = _cli("run", "params/default.yaml", "--plan", "--sysfs",
               str(FIXTURES / "arm-graviton3-64c"), "--calibration", str(CAL))
    assert out.returncode == 0, out.stderr
    assert "plan (budget 10:00" in out.stderr and "01_threads" in out.stderr
    bad = _cli("run", "params/default.yaml", "--plan", "--sysfs", str(FIXTURES / "vm-2vcpu"))
    assert bad.returncode == 2 and "--calibration" in bad.stderr and "Traceback" not in bad.stderr
    worse = _cli("run", "params/default.yaml", "--plan", "-p", "budget=soon")
    assert worse.returncode == 2 and "parameter 'budget'" in worse.stderr


def test_batch_calibration_grows_a_step_and_a_prefill_per_sequence():
    """Without a batch point a batch gains nothing (the safe side); with one, a step and a
    prefill grow linearly per added sequence as measured, and the point survives a round trip."""
    from coresweep.report.calibrate import CalPoint

    cal = Calibration.read(CAL)
    ttft1, step1 = cal.batch_times(2, 2, 1)
    assert step1 == pytest.approx(1 / cal.points[2].decode_tok_s)
    ttft4, step4 = cal.batch_times(2, 2, 4)
    assert step4 == pytest.approx(4 * step1) and ttft4 == pytest.approx(4 * ttft1)
    two = cal.points[2]
    cal.batched = CalPoint(2, 12.0, two.load_s, 2.5 * two.ttft_s, two.decode_tok_s / 1.6, 4)
    assert cal.batch_growth() == pytest.approx((0.2, 0.5))
    assert cal.batch_times(2, 2, 8)[1] == pytest.approx(2.4 * step1)  # extrapolated linearly
    assert cal.batch_times(1, 1, 4)[1] == pytest.approx(1.6 / cal.points[1].decode_tok_s)
    again = Calibration.from_dict(cal.to_dict())
    assert again.batched == cal.batched
    assert cal.generation_s(2, 2, 32, batch=4) > cal.generation_s(2, 2, 32)


def test_the_plan_estimates_batching_and_trims_it_last():
    """Budget off: 07 is estimated per batch size and thread count, 04's batched plan per level
    (a batched worker's request at as many users as its batch holds). A tight budget trims 07's
    1-thread arm and batch sizes before anything costs an answer; 04's batched plan goes only
    with 07 already left out."""
    from coresweep.report.budget import FALLBACKS, TRIMS

    free = _plan("vm-2vcpu", budget="off")
    by = {e.study: e for e in free.estimates}
    assert "07_batching" in by and len(by["07_batching"].units) == 8 * 2  # 2 x 4 batches, 2 procs
    from coresweep.serving.plan import ServePlan

    key = ServePlan(1, 2, True, batch=4).key()  # auto: as many users as 04's top level (4)
    batched = [k for k in by["04_serving"].units if k.startswith(key)]
    assert batched and all(by["04_serving"].units[k] > 0 for k in batched)
    params = [t.param for t in TRIMS]
    assert params.index("batch_threads") < params.index("threads")
    says = [t.says for t in FALLBACKS]
    assert says.index("07 left out") < says.index("04: no batched plan") < says.index(
        "04 left out")



def test_calibration_counts_every_load_as_warm():
    """A load does not depend on the thread count, and one calibration trial's load sometimes
    takes several times the others': each point keeps its own process time less the excess."""
    cal = Calibration("m", "int4", 64, {1: CalPoint(1, 8.1, 4.5, 0.84, 23.1),
                                        2: CalPoint(2, 5.5, 3.2, 0.43, 34.9)},
                      batched=CalPoint(2, 7.1, 1.3, 1.79, 22.7, batch=4))
    overhead = {t: p.overhead_s for t, p in cal.points.items()}
    cal.warm_loads()
    assert {p.load_s for p in cal.points.values()} == {1.3} and cal.batched.load_s == 1.3
    assert cal.points[1].wall_s == pytest.approx(8.1 - 3.2)
    assert {t: p.overhead_s for t, p in cal.points.items()} == pytest.approx(overhead)
