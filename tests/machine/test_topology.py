"""The machine model read from captured sysfs/procfs/cgroup trees (tests/fixtures/) and live."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from coresweep.errors import CoresweepError
from coresweep.machine.capture import capture_tree
from coresweep.machine.cpulist import format_cpulist, parse_cpulist
from coresweep.machine.describe import describe
from coresweep.machine.fingerprint import fingerprint, machine_name
from coresweep.machine.topology import read_topology

FIX = Path(__file__).resolve().parents[1] / "fixtures"
MACHINES = sorted(p.name for p in FIX.iterdir() if (p / "sys").is_dir())

# name -> what the summary must say: packages, cores, online, offline, allowed, threads/core,
# NUMA nodes {id: cpulist}, L2 domains, L3 domains, SMT (has, usable), hybrid, cgroup (version,
# cpuset, budget)
EXPECT = {
    "vm-2vcpu": dict(
        packages=1, cores=2, online="0-1", offline="", allowed="0-1", tpc=1,
        nodes={0: "0-1"}, l2=2, l3=1, smt=(False, False), smt_control="notsupported",
        hybrid=None, cg=(1, "0-1", 2.0), model="AMD EPYC", name="amd-epyc-2c",
    ),
    "laptop-i7-11800h": dict(
        packages=1, cores=8, online="0-15", offline="", allowed="0-15", tpc=2,
        nodes={0: "0-15"}, l2=8, l3=1, smt=(True, True), smt_control="on",
        hybrid=None, cg=(2, "0-15", 16.0), model="11th Gen Intel(R) Core(TM) i7-11800H @ 2.30GHz",
        name="intel-core-i7-11800h-8c16t",
    ),
    "laptop-i7-11800h-smt-off": dict(
        packages=1, cores=8, online="0-7", offline="8-15", allowed="0-7", tpc=1,
        nodes={0: "0-7"}, l2=8, l3=1, smt=(False, False), smt_control="off",
        hybrid=None, cg=(2, "0-7", 8.0), model="11th Gen Intel(R) Core(TM) i7-11800H @ 2.30GHz",
        name="intel-core-i7-11800h-8c",
    ),
    "server-2s-xeon-6226r": dict(
        packages=2, cores=32, online="0-63", offline="", allowed="0-63", tpc=2,
        nodes={0: "0-15,32-47", 1: "16-31,48-63"}, l2=32, l3=2, smt=(True, True),
        smt_control="on", hybrid=None, cg=(2, "0-63", 64.0),
        model="Intel(R) Xeon(R) Gold 6226R CPU @ 2.90GHz", name="intel-xeon-gold-6226r-2s-32c64t",
    ),
    "hybrid-i7-12700h": dict(
        packages=1, cores=14, online="0-19", offline="", allowed="0-19", tpc=2,
        nodes={0: "0-19"}, l2=8, l3=1, smt=(True, True), smt_control="on",
        hybrid={"P": "0-11", "E": "12-19"}, cg=(2, "0-19", 20.0),
        model="12th Gen Intel(R) Core(TM) i7-12700H", name="intel-core-i7-12700h-14c20t",
    ),
    "container-cgv2-quota": dict(
        packages=1, cores=8, online="0-15", offline="", allowed="2-5", tpc=2,
        nodes={0: "0-15"}, l2=8, l3=1, smt=(True, False), smt_control="on",
        hybrid=None, cg=(2, "2-5", 2.5), model="AMD Ryzen 7 5800X 8-Core Processor",
        name="amd-ryzen-7-5800x-8c16t",
    ),
    "desktop-cgv1-offline": dict(
        packages=1, cores=4, online="0-5,7", offline="6", allowed="2-5,7", tpc=2,
        nodes={0: "0-5,7"}, l2=4, l3=1, smt=(True, True), smt_control="on",
        hybrid=None, cg=(1, "2-5,7", 1.5), model="Intel(R) Core(TM) i7-7700 CPU @ 3.60GHz",
        name="intel-core-i7-7700-4c7t",
    ),
    "server-epyc-7313p": dict(
        packages=1, cores=16, online="0-31", offline="", allowed="0-31", tpc=2,
        nodes={0: "0-31"}, l2=16, l3=4, smt=(True, True), smt_control="on",
        hybrid=None, cg=(2, "0-31", 32.0), model="AMD EPYC 7313P 16-Core Processor",
        name="amd-epyc-7313p-16c32t",
    ),
    "vm-xeon-2vcpu-llc260m": dict(
        packages=1, cores=2, online="0-1", offline="", allowed="0-1", tpc=1,
        nodes={0: "0-1"}, l2=2, l3=1, smt=(False, False), smt_control="notsupported",
        hybrid=None, cg=(2, "0-1", 2.0), model="Intel(R) Xeon(R) Processor", name="intel-xeon-2c",
    ),
    "arm-graviton3-64c": dict(
        packages=1, cores=64, online="0-63", offline="", allowed="0-63", tpc=1,
        nodes={0: "0-63"}, l2=64, l3=0, smt=(False, False), smt_control=None,
        hybrid=None, cg=(2, "0-63", 64.0), model="Neoverse-V1", name="neoverse-v1-64c",
    ),
}


def test_every_fixture_has_expectations():
    assert set(MACHINES) == set(EXPECT), "add the new fixture to EXPECT"


@pytest.fixture(scope="module")
def topos():
    return {m: read_topology(FIX / m) for m in MACHINES}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_summary_counts(topos, name):
    t, e = topos[name], EXPECT[name]
    assert len(t.packages) == e["packages"]
    assert t.physical_core_count() == e["cores"] == len(t.cores)
    assert format_cpulist(t.online) == e["online"]
    assert format_cpulist(t.offline) == e["offline"]
    assert format_cpulist(t.allowed) == e["allowed"]
    assert t.logical_count() == len(t.online) == len(t.cpus)
    assert t.threads_per_core() == e["tpc"]
    assert {n: format_cpulist(v.cpus) for n, v in t.numa_nodes.items()} == e["nodes"]
    assert all(v.mem_total_bytes and v.mem_total_bytes > 0 for v in t.numa_nodes.values())
    assert len(t.cache_domains(2)) == e["l2"]
    assert len(t.cache_domains(3)) == e["l3"]
    assert (t.smt_hardware(), t.smt_available()) == e["smt"]
    assert t.has_smt() == t.smt_available()
    assert t.smt_control == e["smt_control"]
    hy = None if t.hybrid is None else {k: format_cpulist(v) for k, v in t.hybrid.items()}
    assert hy == e["hybrid"]
    version, cpuset, budget = e["cg"]
    assert t.cgroup.version == version
    assert format_cpulist(t.cgroup.cpuset) == cpuset
    assert t.cgroup.budget == pytest.approx(budget)
    assert t.model_name == e["model"]
    assert machine_name(t) == e["name"]
    assert t.mem_total_bytes > 0 and t.kernel


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_structure_is_consistent(topos, name):
    t = topos[name]
    assert set(t.allowed) <= set(t.online)
    assert not set(t.online) & set(t.offline)
    core_cpus = [c for k in t.cores for c in k.cpus]
    assert sorted(core_cpus) == list(t.online), "every online CPU in exactly one core"
    for c, ci in t.cpus.items():
        assert c in ci.siblings
        for s in ci.siblings:
            assert t.cpus[s].siblings == ci.siblings, "siblings are symmetric"
            assert t.cpus[s].package == ci.package and t.cpus[s].core_id == ci.core_id
        assert ci.node is not None and c in t.numa_nodes[ci.node].cpus
        assert ci.l2 is not None and (ci.l3 is not None or not t.cache_domains(3))
        assert set(ci.siblings) <= set(t.cache_domains(2)[ci.l2].cpus), "SMT siblings share L2"
    for lvl in (1, 2, 3):
        doms = t.cache_domains(lvl)
        if lvl == 3 and not doms:
            continue
        flat = sorted(c for d in doms for c in d.cpus)
        assert flat == list(t.online), f"L{lvl} domains partition the online CPUs"
        assert all(d.size_bytes and d.size_bytes > 0 for d in doms)
    assert [k.cpus[0] for k in t.cores] == sorted(k.cpus[0] for k in t.cores)
    # the LLC domains restricted to the allowed CPUs cover exactly the allowed CPUs
    assert sorted(c for d in t.llc_domains() for c in d) == list(t.allowed)


def test_laptop_siblings_are_n_plus_8(topos):
    t = topos["laptop-i7-11800h"]
    for n in range(8):
        assert t.siblings(n) == (n, n + 8)
        assert t.siblings(n + 8) == (n, n + 8)
        assert t.cpus[n].l2 == t.cpus[n + 8].l2  # L2 per core, shared by its two threads
    assert len({t.cpus[n].l2 for n in range(8)}) == 8
    assert t.cache_domains(3)[0].cpus == tuple(range(16))
    assert t.cache_domains(3)[0].size_bytes == 24 * 1024 * 1024
    assert t.cache_domains(2)[0].size_bytes == 1280 * 1024
    assert t.isa["avx512f"] and t.isa["avx512_vnni"] and t.isa["avx2"] and not t.isa["amx"]
    assert t.freq["max_mhz"] == 4600 and t.governor == "powersave"
    assert t.smt_active is True


def test_server_core_id_repeats_per_package(topos):
    t = topos["server-2s-xeon-6226r"]
    ids0 = sorted(k.core_id for k in t.cores if k.package == 0)
    ids1 = sorted(k.core_id for k in t.cores if k.package == 1)
    assert ids0 == ids1 and len(ids0) == 16  # same core_ids in both sockets: not unique alone
    assert t.siblings(0) == (0, 32) and t.siblings(16) == (16, 48) and t.siblings(47) == (15, 47)
    assert t.cpus[16].package == 1 and t.cpus[48].package == 1 and t.cpus[47].package == 0
    l3 = t.cache_domains(3)
    assert [format_cpulist(d.cpus) for d in l3] == ["0-15,32-47", "16-31,48-63"]
    assert t.llc_domain_map() == {0: l3[0].cpus, 1: l3[1].cpus}
    assert t.cpus[40].node == 0 and t.cpus[50].node == 1
    assert t.nodes_with_memory() == [0, 1]
    assert t.governor == "performance"


def test_hybrid_p_and_e_cores(topos):
    t = topos["hybrid-i7-12700h"]
    p = [k for k in t.cores if k.kind == "P"]
    e = [k for k in t.cores if k.kind == "E"]
    assert len(p) == 6 and all(len(k.cpus) == 2 for k in p)
    assert len(e) == 8 and all(len(k.cpus) == 1 for k in e)
    assert t.siblings(0) == (0, 1) and t.siblings(11) == (10, 11) and t.siblings(12) == (12,)
    assert {c: t.cpus[c].kind for c in (0, 11, 12, 19)} == {0: "P", 11: "P", 12: "E", 19: "E"}
    # E-cores share an L2 in clusters of four
    l2 = {format_cpulist(d.cpus) for d in t.cache_domains(2)}
    assert {"12-15", "16-19", "0-1", "10-11"} <= l2
    assert t.cpus[12].l2 == t.cpus[15].l2 != t.cpus[16].l2
    assert t.cpus[12].cluster == t.cpus[15].cluster != t.cpus[16].cluster
    assert t.cpus[0].max_freq_khz == 4700000 and t.cpus[12].max_freq_khz == 3500000
    assert t.isa["avx_vnni"] and not t.isa["avx512f"]


def test_container_cpuset_and_fractional_quota(topos):
    t = topos["container-cgv2-quota"]
    assert t.cgroup.quota_us == 250000 and t.cgroup.period_us == 100000
    assert t.cgroup.quota_cpus == pytest.approx(2.5)
    assert t.cgroup.budget == pytest.approx(2.5)  # quota, not the 4 cpuset CPUs nor 16 online
    assert t.cgroup.path == "/"
    assert t.physical_core_count(allowed=True) == 4
    assert not t.smt_available() and "siblings exist" in t.smt_note()
    assert t.logical_count(allowed=True) == 4


def test_cgroup_v1_offline_cpu(topos):
    t = topos["desktop-cgv1-offline"]
    assert 6 not in t.cpus and t.offline == (6,)
    assert t.siblings(2) == (2,), "the offline sibling is not listed"
    assert t.siblings(3) == (3, 7)
    assert t.cgroup.path == "/docker/5b1f3d0e9a7c6b2d"
    assert (t.cgroup.quota_us, t.cgroup.period_us) == (150000, 100000)
    assert t.cgroup.budget == pytest.approx(1.5)
    assert t.smt_available()  # core 3 has both 3 and 7 usable


def test_old_kernel_falls_back_to_thread_siblings():
    """Linux 4.19 has no core_cpus_list, die_id or cluster_id: thread_siblings_list is used."""
    topo_dir = FIX / "desktop-cgv1-offline/sys/devices/system/cpu/cpu3/topology"
    assert not (topo_dir / "core_cpus_list").exists() and not (topo_dir / "die_id").exists()
    t = read_topology(FIX / "desktop-cgv1-offline")
    assert t.siblings(3) == (3, 7) and t.cpus[3].die == 0 and t.cpus[3].cluster is None
    s = read_topology(FIX / "server-2s-xeon-6226r")  # 5.15: die_id yes, cluster_id no
    assert s.cpus[0].cluster is None and s.siblings(0) == (0, 32)


def test_smt_off_at_runtime(topos):
    t = topos["laptop-i7-11800h-smt-off"]
    assert t.smt_active is False and not t.has_smt() and not t.smt_hardware()
    assert "no SMT here" in t.smt_note() and "smt/control=off" in t.smt_note()
    # affinity keeps 0-15 but only online CPUs are allowed
    assert t.affinity == tuple(range(16)) and t.allowed == tuple(range(8))


def test_epyc_has_four_llc_domains_in_one_node(topos):
    t = topos["server-epyc-7313p"]
    assert len(t.numa_nodes) == 1 and t.llc_level == 3
    assert [format_cpulist(v) for v in t.llc_domains()] == [
        "0-3,16-19", "4-7,20-23", "8-11,24-27", "12-15,28-31"
    ]
    assert t.llc_of(5) == t.llc_of(21) == 1


def test_arm_without_smt_dir_l3_or_model_name(topos):
    t = topos["arm-graviton3-64c"]
    assert t.smt_control is None and t.smt_active is None and not t.has_smt()
    assert t.llc_level == 2 and len(t.llc_domains()) == 64  # no shared cache reported
    assert t.isa["asimddp"] and t.isa["i8mm"] and t.isa["sve"] and not t.isa["avx2"]
    assert t.arch == "aarch64" and t.freq["max_mhz"] is None and t.governor is None
    assert "no SMT here (one logical CPU per core)" in describe(t)


def test_vm_matches_design_facts(topos):
    t = topos["vm-2vcpu"]
    assert t.smt_control == "notsupported" and not t.smt_available()
    assert "no SMT here" in t.smt_note()


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_to_dict_and_fingerprint_are_json(topos, name):
    t = topos[name]
    d = json.loads(json.dumps(t.to_dict()))
    assert d["counts"]["physical_cores"] == t.physical_core_count()
    assert d["allowed"] == format_cpulist(t.allowed)
    assert len(d["cpus"]) == len(t.online)
    fp = json.loads(json.dumps(fingerprint(t)))
    assert fp["machine"] == machine_name(t)
    assert fp["versions"]["python"]
    assert fp["transparent_hugepage"] in ("always", "madvise", "never")
    assert isinstance(fp["numa_balancing"], int)
    assert len(fp["loadavg"]) == 3
    assert fp["timestamp"].endswith("+00:00")
    assert fp["hostname"]


def test_summary_has_a_row_per_cpu(topos):
    for name, t in topos.items():
        text = describe(t)
        rows = [ln for ln in text.splitlines() if ln.strip()[:1].isdigit()]
        assert len(rows) == len(t.online) + len(t.offline), name
        assert "SIBLINGS" in text and "budget" in text


def test_fixture_files_are_kernel_shaped():
    """The generated trees keep the kernel's invariants: hex masks equal their lists, cpu0 has no
    online file on x86, offline CPUs have no topology directory."""

    def mask_to_cpus(text: str) -> list[int]:
        v = int(text.replace(",", ""), 16)
        return [i for i in range(v.bit_length()) if v >> i & 1]

    checked = 0
    for m in MACHINES:
        cpu = FIX / m / "sys/devices/system/cpu"
        for d in sorted(cpu.glob("cpu[0-9]*/topology")):
            for name in ("core_cpus", "thread_siblings", "package_cpus", "die_cpus"):
                if not (d / name).exists():  # older kernels: no core_cpus/die_cpus/package_cpus
                    continue
                lst = (d / f"{name}_list").read_text()
                assert mask_to_cpus((d / name).read_text().strip()) == parse_cpulist(lst)
                checked += 1
        for d in sorted(cpu.glob("cpu[0-9]*/cache/index*")):
            assert mask_to_cpus((d / "shared_cpu_map").read_text().strip()) == sorted(
                parse_cpulist((d / "shared_cpu_list").read_text())
            )
            assert (d / "size").read_text().strip()[-1] == "K"
        assert not (cpu / "cpu0/online").exists()
        offline = parse_cpulist((cpu / "offline").read_text())
        for c in offline:
            assert (cpu / f"cpu{c}/online").read_text().strip() == "0"
            assert not (cpu / f"cpu{c}/topology").exists()
    assert checked > 100


def test_parse_and_format_cpulist():
    assert parse_cpulist("0-3,8-11") == [0, 1, 2, 3, 8, 9, 10, 11]
    assert parse_cpulist("") == [] and parse_cpulist("\n") == []
    assert parse_cpulist("0-7:2") == [0, 2, 4, 6]
    assert parse_cpulist("0-15:2/8") == [0, 1, 8, 9]
    assert parse_cpulist("8-11,0-3") == [8, 9, 10, 11, 0, 1, 2, 3]  # order kept
    assert parse_cpulist("3,3,1") == [3, 1]
    assert format_cpulist([11, 10, 9, 8, 3, 2, 1, 0, 5]) == "0-3,5,8-11"
    assert format_cpulist([]) == ""
    for bad in ("a", "3-1", "1,,x", "0-7:0", "-1"):
        with pytest.raises(CoresweepError):
            parse_cpulist(bad)


def test_not_a_tree(tmp_path):
    with pytest.raises(CoresweepError, match="sys/devices/system/cpu"):
        read_topology(tmp_path)


# ---- the live machine -----------------------------------------------------------------------
def test_live_machine_is_sane():
    t = read_topology("/")
    assert set(t.allowed) <= set(t.online)
    assert t.logical_count() == os.cpu_count()
    assert set(t.allowed) <= os.sched_getaffinity(0)
    assert len(t.allowed) >= 1 and t.physical_core_count() >= 1
    assert t.physical_core_count() <= t.logical_count()
    assert 0 < t.cgroup.budget <= len(t.allowed)
    assert t.model_name and t.kernel and t.mem_total_bytes > 0
    assert t.llc_domains() and describe(t)
    assert read_topology("/", pid=os.getpid()).allowed == t.allowed
    json.dumps(fingerprint(t))


def test_capture_round_trip(tmp_path):
    live = read_topology("/")
    files = capture_tree(tmp_path / "cap", "/")
    assert "sys/devices/system/cpu/online" in files
    cap = read_topology(tmp_path / "cap")
    assert cap.online == live.online and cap.allowed == live.allowed
    assert [k.cpus for k in cap.cores] == [k.cpus for k in live.cores]
    assert [(d.level, d.type, d.cpus) for d in cap.caches] == [
        (d.level, d.type, d.cpus) for d in live.caches
    ]
    assert cap.smt_control == live.smt_control and cap.model_name == live.model_name


def test_fingerprint_does_not_import_onnxruntime():
    code = (
        "import sys, json; from coresweep.machine.fingerprint import fingerprint; "
        "fp = fingerprint(); json.dumps(fp); "
        "assert 'onnxruntime' not in sys.modules, 'imported onnxruntime'; "
        "print(fp['versions'].get('onnxruntime'))"
    )
    env = dict(os.environ, OMP_NUM_THREADS="3", ORT_TEST_VAR="x")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    code2 = "from coresweep.machine.fingerprint import fingerprint; import json; print(json.dumps(fingerprint()['env']))"
    out2 = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, env=env)
    env_seen = json.loads(out2.stdout)
    assert env_seen["OMP_NUM_THREADS"] == "3" and env_seen["ORT_TEST_VAR"] == "x"
