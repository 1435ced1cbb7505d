"""Trimmed real run folders (tests/fixtures/runs, see its README) copied into a temporary reports
folder for the comparison and archive tests. There is no second machine: `second_machine` gives
a copy the fingerprint of a captured 16-core topology (synthetic, and said so in the README)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "tests" / "fixtures" / "runs"
SECOND_MACHINE = REPO / "tests" / "fixtures" / "server-epyc-7313p"  # a captured sysfs/procfs tree


def synthetic_fingerprint(tree: Path = SECOND_MACHINE) -> dict:
    from coresweep.machine.fingerprint import fingerprint
    from coresweep.machine.topology import read_topology

    return fingerprint(read_topology(str(tree)))


def copy_run(name: str, root: Path, *, second_machine: bool = False) -> Path:
    """A copy of fixture run ``name`` under ``root``; with ``second_machine`` its run.json carries
    the synthetic fingerprint (its numbers stay this machine's)."""
    dest = root / name
    shutil.copytree(RUNS / name, dest)
    if second_machine:
        meta = json.loads((dest / "run.json").read_text())
        fp = synthetic_fingerprint()
        meta.update(fingerprint=fp, machine=fp["machine"])
        (dest / "run.json").write_text(json.dumps(meta, indent=1))
        batch = json.loads((dest / "batch.json").read_text())
        batch.update(machine=fp["machine"], cpu=fp["topology"]["model_name"])
        (dest / "batch.json").write_text(json.dumps(batch, indent=1))
    return dest
