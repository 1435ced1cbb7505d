"""What decides how fast a CPU runs, beyond its topology: boost, the energy-performance preference,
a hypervisor, isolated CPUs, memory speed and channels, and the clock seen while a trial runs.

Every field is read from files (a captured tree works like the live machine) except the memory
modules, which only ``dmidecode`` reports (root); where a value cannot be had it is None and the
``notes`` say why.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_CMDLINE_ISOLATION = ("isolcpus", "nohz_full", "rcu_nocbs", "irqaffinity")


def _text(root: Path, rel: str) -> str | None:
    try:
        return (root / rel).read_text(errors="replace").strip()
    except OSError:
        return None


def boost_state(root: Path) -> tuple[bool | None, str | None]:
    """(turbo/boost enabled, the file that says so). intel_pstate/no_turbo is inverted."""
    no_turbo = _text(root, "sys/devices/system/cpu/intel_pstate/no_turbo")
    if no_turbo in ("0", "1"):
        return no_turbo == "0", "intel_pstate/no_turbo"
    boost = _text(root, "sys/devices/system/cpu/cpufreq/boost")
    if boost in ("0", "1"):
        return boost == "1", "cpufreq/boost"
    return None, None


def energy_preferences(root: Path) -> dict[str, list[int]]:
    """energy_performance_preference -> the CPUs that have it (intel_pstate / amd-pstate)."""
    out: dict[str, list[int]] = {}
    for d in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])):
        pref = _text(root, f"{d.relative_to(root)}/cpufreq/energy_performance_preference")
        if pref:
            out.setdefault(pref, []).append(int(d.name[3:]))
    return out


def kernel_isolation(cmdline: str | None) -> dict[str, str]:
    """The CPU-isolation options on the kernel command line (isolcpus, nohz_full, ...)."""
    out = {}
    for word in (cmdline or "").split():
        name, _, value = word.partition("=")
        if name in _CMDLINE_ISOLATION:
            out[name] = value
    return out


def hypervisor(cpuinfo: str | None) -> bool | None:
    """The x86 ``hypervisor`` CPU flag: the kernel runs as a guest (None: no flags line)."""
    for line in (cpuinfo or "").splitlines():
        key, _, val = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return "hypervisor" in val.split()
    return None


def parse_dmidecode_memory(text: str) -> dict[str, Any]:
    """Populated DIMMs, their configured speed (MT/s) and the channels they sit in, from
    ``dmidecode -t 17``."""
    dimms = []
    for block in text.split("\n\n"):
        if "Memory Device" not in block:
            continue
        fields = dict(re.findall(r"^\s*([^:\n]+):\s*(.+)$", block, re.M))
        size = fields.get("Size", "")
        if not size or size.startswith(("No Module", "Not Installed")):
            continue
        speed = fields.get("Configured Memory Speed") or fields.get("Configured Clock Speed") \
            or fields.get("Speed", "")
        m = re.match(r"(\d+)", speed)
        dimms.append({"locator": fields.get("Locator"), "bank": fields.get("Bank Locator"),
                      "size": size, "type": fields.get("Type"),
                      "speed_mts": int(m.group(1)) if m else None})
    channels = {d["bank"] or d["locator"] for d in dimms}
    speeds = [d["speed_mts"] for d in dimms if d["speed_mts"]]
    return {"dimms": len(dimms), "channels": len(channels) or None,
            "speed_mts": min(speeds) if speeds else None,
            "type": dimms[0]["type"] if dimms else None}


def memory_modules(live: bool) -> tuple[dict[str, Any] | None, str | None]:
    """(memory summary, None) from dmidecode, or (None, why not)."""
    if not live:
        return None, "captured tree: no dmidecode"
    exe = shutil.which("dmidecode")
    if exe is None:
        return None, "dmidecode not installed (apt-get install dmidecode)"
    try:
        out = subprocess.run([exe, "-t", "17"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"dmidecode failed: {exc}"
    if out.returncode != 0 or "Memory Device" not in out.stdout:
        why = (out.stderr.strip().splitlines() or ["no memory devices in the SMBIOS table"])[-1]
        return None, f"dmidecode: {why} (needs root and an SMBIOS table; VMs often have none)"
    return parse_dmidecode_memory(out.stdout), None


def speed_state(root: str | Path = "/", live: bool | None = None) -> dict[str, Any]:
    """The fingerprint's ``speed`` section."""
    rootp = Path(root)
    live = rootp.resolve() == Path("/") if live is None else live
    boost, boost_src = boost_state(rootp)
    memory, memory_note = memory_modules(live)
    return {"boost": boost, "boost_source": boost_src, "energy_performance_preference":
            energy_preferences(rootp) or None,
            "hypervisor": hypervisor(_text(rootp, "proc/cpuinfo")),
            "isolation": kernel_isolation(_text(rootp, "proc/cmdline")),
            "memory": memory, "memory_note": memory_note}


def cpu_mhz(cpus: Iterable[int], root: str | Path = "/") -> float | None:
    """The median current clock of ``cpus`` (scaling_cur_freq; /proc/cpuinfo's "cpu MHz" where
    there is no cpufreq, as in most VMs); None when neither is readable."""
    rootp = Path(root)
    cpus = list(cpus)
    khz = [_text(rootp, f"sys/devices/system/cpu/cpu{c}/cpufreq/scaling_cur_freq") for c in cpus]
    vals = [int(k) / 1000 for k in khz if k and k.isdigit()]
    if not vals:
        per_cpu = _cpuinfo_mhz(_text(rootp, "proc/cpuinfo"))
        vals = [per_cpu[c] for c in cpus if c in per_cpu]
    return statistics.median(vals) if vals else None


def _cpuinfo_mhz(text: str | None) -> dict[int, float]:
    out, cpu = {}, None
    for line in (text or "").splitlines():
        key, _, val = line.partition(":")
        key = key.strip()
        if key == "processor":
            cpu = int(val)
        elif key == "cpu MHz" and cpu is not None:
            out[cpu] = float(val)
    return out
