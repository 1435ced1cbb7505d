"""Placement plans on real-shaped machines: every strategy at several thread counts, and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from coresweep.errors import CoresweepError, PlacementError
from coresweep.machine.placement import STRATEGIES, Plan, make_plan, plan_for_smt, strategy_order
from coresweep.machine.topology import read_topology

FIX = Path(__file__).resolve().parents[1] / "fixtures"
MACHINES = sorted(p.name for p in FIX.iterdir() if (p / "sys").is_dir())


@pytest.fixture(scope="module")
def topos():
    return {m: read_topology(FIX / m) for m in MACHINES}


def r(a, b):
    return tuple(range(a, b))


# (machine, strategy, threads) -> expected cpus, worked out by hand from the fixture's layout
EXPECTED = [
    # i7-11800H: cores 0-7, sibling of n is n+8, one L3
    ("laptop-i7-11800h", "physical", 1, (0,)),
    ("laptop-i7-11800h", "physical", 4, (0, 1, 2, 3)),
    ("laptop-i7-11800h", "physical", 8, r(0, 8)),
    ("laptop-i7-11800h", "smt", 2, (0, 8)),
    ("laptop-i7-11800h", "smt", 5, (0, 8, 1, 9, 2)),
    ("laptop-i7-11800h", "smt", 16, (0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15)),
    ("laptop-i7-11800h", "compact", 4, (0, 1, 2, 3)),
    ("laptop-i7-11800h", "compact", 12, r(0, 12)),
    ("laptop-i7-11800h", "scatter", 3, (0, 1, 2)),
    ("laptop-i7-11800h", "all", 3, (0, 1, 2)),
    ("laptop-i7-11800h", "numa:0", 10, r(0, 10)),
    ("laptop-i7-11800h", "llc:0", 9, r(0, 9)),
    ("laptop-i7-11800h", "0-3,8-11", 8, (0, 1, 2, 3, 8, 9, 10, 11)),
    ("laptop-i7-11800h", "8-11,0-3", 2, (8, 9, 10, 11, 0, 1, 2, 3)),  # the whole list, its order
    # 2 x Xeon 6226R: socket0 = 0-15 + siblings 32-47, socket1 = 16-31 + 48-63, node = socket
    ("server-2s-xeon-6226r", "physical", 4, (0, 1, 2, 3)),
    ("server-2s-xeon-6226r", "physical", 20, r(0, 20)),  # node 0's 16 cores, then node 1
    ("server-2s-xeon-6226r", "physical", 32, r(0, 32)),
    ("server-2s-xeon-6226r", "smt", 4, (0, 32, 1, 33)),
    ("server-2s-xeon-6226r", "compact", 16, r(0, 16)),
    ("server-2s-xeon-6226r", "compact", 20, r(0, 16) + (32, 33, 34, 35)),  # stays in LLC 0
    ("server-2s-xeon-6226r", "compact", 40, r(0, 16) + r(32, 48) + r(16, 24)),
    ("server-2s-xeon-6226r", "scatter", 4, (0, 16, 1, 17)),
    ("server-2s-xeon-6226r", "scatter", 34, tuple(x for i in range(16) for x in (i, 16 + i)) + (32, 48)),
    ("server-2s-xeon-6226r", "numa:1", 3, (16, 17, 18)),
    ("server-2s-xeon-6226r", "numa:1", 18, r(16, 32) + (48, 49)),
    ("server-2s-xeon-6226r", "llc:1", 2, (16, 17)),
    ("server-2s-xeon-6226r", "llc:0", 17, r(0, 16) + (32,)),
    # i7-12700H: P-cores 0-11 (siblings adjacent), E-cores 12-19
    ("hybrid-i7-12700h", "physical", 6, (0, 2, 4, 6, 8, 10)),
    ("hybrid-i7-12700h", "physical", 8, (0, 2, 4, 6, 8, 10, 12, 13)),
    ("hybrid-i7-12700h", "physical", 14, (0, 2, 4, 6, 8, 10) + r(12, 20)),
    ("hybrid-i7-12700h", "smt", 3, (0, 1, 2)),
    ("hybrid-i7-12700h", "pcore", 6, (0, 2, 4, 6, 8, 10)),
    ("hybrid-i7-12700h", "pcore", 8, (0, 2, 4, 6, 8, 10, 1, 3)),
    ("hybrid-i7-12700h", "pcore", 12, (0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11)),
    ("hybrid-i7-12700h", "ecore", 4, (12, 13, 14, 15)),
    ("hybrid-i7-12700h", "ecore", 8, r(12, 20)),
    ("hybrid-i7-12700h", "compact", 16, (0, 2, 4, 6, 8, 10) + r(12, 20) + (1, 3)),
    # container: cpuset 2-5 of a 16-CPU host (four cores, no two siblings)
    ("container-cgv2-quota", "physical", 4, (2, 3, 4, 5)),
    ("container-cgv2-quota", "smt", 2, (2, 3)),
    ("container-cgv2-quota", "all", 4, (2, 3, 4, 5)),
    ("container-cgv2-quota", "compact", 3, (2, 3, 4)),
    ("container-cgv2-quota", "3-4", 2, (3, 4)),
    # i7-7700 with CPU 6 offline, cpuset 2-5,7: cores (0,4) (1,5) (2) (3,7)
    ("desktop-cgv1-offline", "physical", 4, (2, 3, 4, 5)),
    ("desktop-cgv1-offline", "smt", 3, (2, 3, 7)),
    ("desktop-cgv1-offline", "compact", 5, (2, 3, 4, 5, 7)),
    # EPYC 7313P: one node, four L3 domains of 4 cores (siblings n+16)
    ("server-epyc-7313p", "physical", 6, r(0, 6)),
    ("server-epyc-7313p", "compact", 6, (0, 1, 2, 3, 16, 17)),
    ("server-epyc-7313p", "scatter", 4, (0, 4, 8, 12)),
    ("server-epyc-7313p", "scatter", 6, (0, 4, 8, 12, 1, 5)),
    ("server-epyc-7313p", "scatter", 17, (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 16)),
    ("server-epyc-7313p", "llc:2", 5, (8, 9, 10, 11, 24)),
    ("server-epyc-7313p", "smt", 3, (0, 16, 1)),
    # Graviton3: 64 cores, no SMT, LLC = per-core L2
    ("arm-graviton3-64c", "physical", 64, r(0, 64)),
    ("arm-graviton3-64c", "scatter", 3, (0, 1, 2)),
    ("arm-graviton3-64c", "llc:5", 1, (5,)),
    # runtime SMT off and the 2-vCPU VM
    ("laptop-i7-11800h-smt-off", "smt", 8, r(0, 8)),
    ("laptop-i7-11800h-smt-off", "physical", 8, r(0, 8)),
    ("vm-2vcpu", "physical", 2, (0, 1)),
    ("vm-2vcpu", "smt", 2, (0, 1)),
    ("vm-2vcpu", "1", 1, (1,)),
]


@pytest.mark.parametrize(("machine", "strategy", "threads", "cpus"), EXPECTED)
def test_expected_plans(topos, machine, strategy, threads, cpus):
    plan = make_plan(topos[machine], threads, strategy)
    assert plan.cpus == cpus
    assert plan.threads == threads and not plan.oversubscribed and plan.pinned
    assert plan.description


NAMED = ["physical", "smt", "compact", "scatter", "all", "none", "numa:0", "llc:0"]


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("strategy", NAMED + ["pcore", "ecore", "numa:1", "llc:1"])
def test_every_strategy_on_every_machine(topos, machine, strategy):
    t = topos[machine]
    try:
        order, _ = strategy_order(t, strategy)
    except PlacementError as exc:  # pcore/ecore without hybrid, missing node or LLC
        assert (strategy in ("pcore", "ecore") and not t.hybrid) or strategy.endswith(":1")
        assert "valid" in str(exc) or "use one of" in str(exc) or "domains" in str(exc) or "nodes" in str(exc)
        return
    assert len(order) == len(set(order)) and set(order) <= set(t.allowed)
    cap = len(order)
    for n in sorted(x for x in {1, 2, cap // 2 or 1, cap} if x <= cap):
        plan = make_plan(t, n, strategy)
        if strategy == "none":
            assert plan.cpus == t.allowed and not plan.pinned
            assert plan.ort_affinity_string() == ""
            continue
        assert len(plan.cpus) == n == plan.threads
        assert plan.cpus == tuple(order[:n])
        entries = plan.ort_affinity_string().split(";") if n > 1 else []
        assert len(entries) == n - 1
        assert all(1 <= int(e) <= max(t.online) + 1 for e in entries)
    if strategy == "physical":  # one CPU per core
        cores = [t.cpus[c].siblings for c in order]
        assert len(set(cores)) == len(cores) == t.physical_core_count(allowed=True)
    if strategy in ("smt", "compact", "scatter", "all"):
        assert sorted(order) == list(t.allowed)
    # one thread too many is refused, unless asked for
    with pytest.raises(PlacementError, match="oversubscribe"):
        make_plan(t, cap + 1, strategy)
    over = make_plan(t, cap + 1, strategy, oversubscribe=True)
    assert over.oversubscribed and len(over.cpus) == cap and over.threads == cap + 1


def test_ort_affinity_string():
    t = read_topology(FIX / "laptop-i7-11800h")
    assert make_plan(t, 4, "physical").ort_affinity_string() == "2;3;4"
    assert make_plan(t, 4, "smt").ort_affinity_string() == "9;2;10"  # cpus 0,8,1,9: 1-based
    assert make_plan(t, 1, "physical").ort_affinity_string() == ""
    over = make_plan(t, 10, "physical", oversubscribe=True)
    assert over.cpus == r(0, 8)
    assert over.ort_affinity_string() == "2;3;4;5;6;7;8;1;2"  # thread k -> cpus[k % 8]
    assert over.thread_cpus() == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]
    d = make_plan(t, 8, "0-3,8-11").to_dict()
    assert d["cpulist"] == "0-3,8-11" and d["ort_affinity"] == "2;3;4;9;10;11;12"
    assert d["cpus"] == [0, 1, 2, 3, 8, 9, 10, 11] and d["oversubscribed"] is False


def test_explicit_list_smaller_thread_count_keeps_the_list():
    t = read_topology(FIX / "laptop-i7-11800h")
    p = make_plan(t, 2, "0-3")
    assert p.cpus == (0, 1, 2, 3) and p.ort_affinity_string() == "2"
    with pytest.raises(PlacementError, match="oversubscribe"):
        make_plan(t, 5, "0-3")
    p = make_plan(t, 6, "0-3", oversubscribe=True)
    assert p.oversubscribed and p.ort_affinity_string() == "2;3;4;1;2"


def test_smt_pairs():
    t = read_topology(FIX / "laptop-i7-11800h")
    on, off = plan_for_smt(t, 4, True), plan_for_smt(t, 4, False)
    assert on.cpus == (0, 8, 1, 9, 2, 10, 3, 11) and on.threads == 8 and on.strategy == "smt"
    assert off.cpus == (0, 1, 2, 3) and off.threads == 4 and off.strategy == "physical"
    assert {t.cpus[c].siblings for c in on.cpus} == {t.cpus[c].siblings for c in off.cpus}
    s = read_topology(FIX / "server-2s-xeon-6226r")
    assert plan_for_smt(s, 2, True).cpus == (0, 32, 1, 33)
    d = read_topology(FIX / "desktop-cgv1-offline")
    assert plan_for_smt(d, 1, True).cpus == (3, 7) and plan_for_smt(d, 1, False).cpus == (3,)
    with pytest.raises(PlacementError, match="only 1 usable cores"):
        plan_for_smt(d, 2, True)
    h = read_topology(FIX / "hybrid-i7-12700h")
    assert plan_for_smt(h, 6, True).cpus == r(0, 12)
    with pytest.raises(PlacementError, match="between 1 and 6"):
        plan_for_smt(h, 7, False)
    for m in ("vm-2vcpu", "container-cgv2-quota", "laptop-i7-11800h-smt-off"):
        with pytest.raises(PlacementError, match="no SMT here"):
            plan_for_smt(read_topology(FIX / m), 1, True)
    with pytest.raises(PlacementError):
        plan_for_smt(t, 0, True)


@pytest.mark.parametrize(
    ("machine", "strategy", "threads", "match"),
    [
        ("laptop-i7-11800h", "bogus", 2, "unknown placement strategy 'bogus'.*physical, cores-first, smt"),
        ("laptop-i7-11800h", "numa:1", 2, "NUMA node 1 does not exist.*numa:0"),
        ("laptop-i7-11800h", "numa:x", 2, "non-negative integer"),
        ("laptop-i7-11800h", "llc:3", 2, r"LLC domain 3 .*llc:0 \(0-15\)"),
        ("laptop-i7-11800h", "pcore", 2, "not hybrid"),
        ("laptop-i7-11800h", "ecore", 1, "not hybrid"),
        ("laptop-i7-11800h", "physical", 0, "positive integer"),
        ("laptop-i7-11800h", "physical", -2, "positive integer"),
        ("laptop-i7-11800h", "physical", 9, "8 physical cores"),
        ("laptop-i7-11800h", "0-3,16", 2, "do not exist: 16.*Usable CPUs: 0-15"),
        ("laptop-i7-11800h", "0-3;5", 2, "bad CPU list"),
        ("laptop-i7-11800h", "", 2, "empty"),
        ("laptop-i7-11800h-smt-off", "8", 1, "offline: 8.*Usable CPUs: 0-7"),
        ("container-cgv2-quota", "0-3", 2, r"outside this process's allowed set.*0-1\. Usable CPUs: 2-5"),
        ("container-cgv2-quota", "physical", 5, "oversubscribe"),
        ("desktop-cgv1-offline", "2,6,9", 2, "do not exist: 9; offline: 6.*Usable CPUs: 2-5,7"),
        ("server-2s-xeon-6226r", "numa:2", 2, "numa:0, numa:1"),
        ("server-2s-xeon-6226r", "numa:0", 33, "oversubscribe"),
        ("hybrid-i7-12700h", "pcore", 13, "oversubscribe"),
        ("hybrid-i7-12700h", "ecore", 9, "oversubscribe"),
    ],
)
def test_invalid_requests(topos, machine, strategy, threads, match):
    with pytest.raises(PlacementError, match=match) as info:
        make_plan(topos[machine], threads, strategy)
    assert isinstance(info.value, CoresweepError) and isinstance(info.value, ValueError)


def test_bad_thread_types(topos):
    t = topos["vm-2vcpu"]
    for bad in (True, 1.5, "2", None):
        with pytest.raises(PlacementError, match="threads"):
            make_plan(t, bad, "physical")


def test_numa_node_without_usable_cpus():
    t = read_topology(FIX / "server-2s-xeon-6226r")
    from dataclasses import replace

    t2 = replace(t, allowed=r(0, 16))  # as if the process were pinned to socket 0
    with pytest.raises(PlacementError, match="NUMA node 1 has no CPU usable.*numa:0"):
        make_plan(t2, 1, "numa:1")
    with pytest.raises(PlacementError, match="llc:0"):
        make_plan(t2, 1, "llc:1")
    assert make_plan(t2, 4, "scatter").cpus == (0, 1, 2, 3)


def test_strategies_constant():
    assert STRATEGIES[:5] == ("physical", "cores-first", "smt", "compact", "scatter")
    assert {"numa:N", "llc:N", "pcore", "ecore", "all", "none"} <= set(STRATEGIES)
    assert Plan("x", 1, (0,), "d", False).pinned


def test_live_plans():
    t = read_topology("/")
    n = t.physical_core_count(allowed=True)
    p = make_plan(t, n, "physical")
    assert len(p.cpus) == n and set(p.cpus) <= set(t.allowed)
    assert make_plan(t, 1, "none").cpus == t.allowed


@pytest.mark.parametrize("fixture, threads, expected", [
    # i7-11800H: sibling of n is n+8 → the 8 cores first, then their siblings
    ("laptop-i7-11800h", 10, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    ("laptop-i7-11800h", 16, list(range(16))),
    # 2 sockets x 16C/32T, siblings split (socket0 0-15 + 32-47): socket 0's cores, then socket 1's
    # cores, then the siblings
    ("server-2s-xeon-6226r", 34, list(range(32)) + [32, 33]),
])
def test_cores_first_fills_cores_then_siblings(fixture, threads, expected):
    topo = read_topology(FIX / fixture)
    plan = make_plan(topo, threads, "cores-first")
    assert list(plan.cpus) == expected and not plan.oversubscribed
    phys = make_plan(topo, topo.physical_core_count(allowed=True), "physical")
    assert list(plan.cpus[: len(phys.cpus)]) == list(phys.cpus)[: len(plan.cpus)]
