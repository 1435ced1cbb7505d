"""00 · The machine: what this computer is as the sweeps see it, its fingerprint, and which
questions the other studies can answer here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coresweep.studies import common
from coresweep.studies.base import Resolved, Study


def _machine_rows(topo: Any) -> list[tuple[str, str, str]]:
    """Capabilities that belong to the machine rather than to one study."""
    nodes = [k for k, v in topo.numa_nodes.items() if set(v.cpus) & set(topo.allowed)]
    llc = topo.llc_domains()
    budget = getattr(topo.cgroup, "budget", None)
    n = common.logical_count(topo)
    return [
        ("NUMA placement (numa:N)", "yes" if len(nodes) > 1 else "no",
         f"{len(nodes)} NUMA node(s) with usable CPUs"),
        ("LLC placement (llc:N)", "yes" if len(llc) > 1 else "no",
         f"{len(llc)} last-level cache domain(s)"),
        ("hybrid P/E cores (pcore/ecore)", "yes" if topo.hybrid else "no",
         "hybrid CPU" if topo.hybrid else "all cores of one kind"),
        ("cgroup CPU budget", "limited" if budget and budget < n else "none",
         f"budget {budget:g} CPUs" if budget else "no quota"),
    ]


class MachineStudy(Study):
    number = 0
    name = "machine"
    title = "The machine"
    question = "What is this machine, as the sweeps see it, and what can be tested on it?"
    runs_trials = False

    def capabilities(self, resolved: Resolved) -> Any:
        """What the studies can test on this machine, one row per question."""
        import pandas as pd

        from coresweep import studies

        topo = resolved.topology
        rows = []
        for s in studies.all_studies():
            row = s.capability_row(topo)
            if row is not None:
                rows.append((f"{s.capability} ({s.number:02d})", *row))
        rows += _machine_rows(topo)
        return pd.DataFrame(rows, columns=["question", "testable here", "why"])

    def write_fingerprint(self, resolved: Resolved) -> dict:
        """Write <run_dir>/machine.json (the fingerprint) and return it."""
        from coresweep.machine.fingerprint import fingerprint

        fp = fingerprint(resolved.topology)
        d = Path(resolved.values["run_dir"])
        d.mkdir(parents=True, exist_ok=True)
        (d / "machine.json").write_text(json.dumps(fp, indent=1, sort_keys=True, default=str))
        return fp


def fingerprint_table(fp: Mapping[str, Any]) -> Any:
    """The fingerprint flattened to field | value rows (nested names joined with dots)."""
    import pandas as pd

    rows: list[tuple[str, str]] = []

    def walk(prefix: str, v: Any, depth: int) -> None:
        if isinstance(v, Mapping) and depth < 2:
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x, depth + 1)
        else:
            text = v if isinstance(v, str) else json.dumps(v, default=str)
            rows.append((prefix, text if len(text) <= 160 else text[:157] + "..."))

    walk("", dict(fp), 0)
    return pd.DataFrame(rows, columns=["field", "value"])


STUDY = MachineStudy()
