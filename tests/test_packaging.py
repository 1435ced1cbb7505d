"""The project's packaging stays consistent: environment.yml mirrors pyproject, notebooks are clean."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
_REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(.*)$")


def _split(req: str) -> tuple[str, str]:
    m = _REQ.match(req)
    assert m, f"unparseable requirement {req!r}"
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    spec = ",".join(sorted(s.strip() for s in m.group(3).replace(" ", "").split(",") if s.strip()))
    return name, spec


def _pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(data["dependencies"])
    for extra in data.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    out: dict[str, str] = {}
    for r in reqs:
        name, spec = _split(r)
        assert name not in out, f"{name} is listed twice in pyproject.toml"
        out[name] = spec
    return out


def _environment_requirements() -> tuple[dict[str, str], list[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out: dict[str, str] = {}
    pip_items: list[str] = []
    for item in env["dependencies"]:
        if isinstance(item, dict):
            pip_items = list(item["pip"])
            continue
        name, spec = _split(item)
        if name in {"python", "pip"}:
            continue
        assert name not in out, f"{name} is listed twice in environment.yml"
        out[name] = spec
    for item in pip_items:
        if item.startswith("-e"):
            continue
        name, spec = _split(item)
        assert name not in out, f"{name} is listed twice in environment.yml"
        out[name] = spec
    return out, pip_items


def test_environment_yml_mirrors_pyproject():
    py = _pyproject_requirements()
    env, pip_items = _environment_requirements()
    missing = sorted(set(py) - set(env))
    extra = sorted(set(env) - set(py))
    assert not missing, f"in pyproject.toml but not environment.yml: {missing}"
    assert not extra, f"in environment.yml but not pyproject.toml: {extra}"
    differ = {n: (py[n], env[n]) for n in py if py[n] != env[n]}
    assert not differ, f"version ranges differ (pyproject, environment.yml): {differ}"
    assert pip_items and pip_items[-1].startswith("-e ."), "environment.yml must end in an editable install"


def test_every_dependency_has_a_bounded_range():
    for name, spec in _pyproject_requirements().items():
        assert ">=" in spec and "<" in spec.replace("<=", ""), f"{name} needs a compatible range, got {spec!r}"


def test_notebooks_are_committed_without_outputs():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in notebooks:
        nb = json.loads(path.read_text())
        for i, cell in enumerate(nb["cells"]):
            assert not cell.get("outputs"), f"{path.name} cell {i} has outputs: strip them"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"


def test_generated_artefacts_are_ignored():
    ignore = (ROOT / ".gitignore").read_text()
    for pattern in (".venv/", "reports/*", "*.onnx"):
        assert pattern in ignore, f".gitignore must ignore {pattern}"
