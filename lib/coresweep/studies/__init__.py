"""The studies: one module per study plus this registry.

Everything that lists studies — `coresweep run`, the report index, the parameter reference, the
CLI help — comes from here. Adding a study: a module in this package defining ``STUDY`` (a
:class:`~coresweep.studies.base.Study`), its name in ``_MODULES``, and its notebook.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from coresweep.errors import ParamsError
from coresweep.parameters import OUTPUT, RUN, Param, check_all, parse_override, read_yaml, unknown
from coresweep.studies.base import Resolved, Study
from coresweep.studies.common import describe_configs

_MODULES = ("machine", "threads", "affinity", "smt", "serving", "recommend", "knobs", "batching")

__all__ = ["Resolved", "Study", "all_studies", "defaults", "describe_configs", "get", "load",
           "parameters_cell", "schema", "select", "validate"]


def all_studies() -> list[Study]:
    """Every study, by number."""
    found = [importlib.import_module(f"coresweep.studies.{m}").STUDY for m in _MODULES]
    return sorted(found, key=lambda s: s.number)


def get(name: str) -> Study:
    """A study by name, id or number: "threads", "01_threads", "01", "1" or "01_threads.ipynb"."""
    stem = Path(str(name)).stem
    for s in all_studies():
        if stem in (s.name, s.id, f"{s.number:02d}", str(s.number)):
            return s
    raise ParamsError(f"unknown study {name!r}; valid choices: "
                      f"{', '.join(s.id for s in all_studies())}")


def select(names: Sequence[str] | None = None) -> list[Study]:
    """The studies named (all when none), in number order."""
    if not names:
        return all_studies()
    chosen = {get(n).id for n in names}
    return [s for s in all_studies() if s.id in chosen]


def schema() -> dict[str, Param]:
    """Every parameter of every study, each defined once (a parameter file's keys)."""
    out: dict[str, Param] = {}
    for s in all_studies():
        for k, p in s.schema().items():
            if k in out and out[k] is not p:
                raise AssertionError(f"parameter {k!r} is defined twice (study {s.id})")
            out[k] = p
    return {**{k: p for k, p in out.items() if k not in OUTPUT}, **RUN, **OUTPUT}


def defaults() -> dict[str, Any]:
    return {k: p.default_value() for k, p in schema().items()}


def load(path: str | Path | None = None,
         overrides: Sequence[str] | Mapping[str, Any] = ()) -> dict[str, Any]:
    """Read a YAML parameter file (or the defaults when ``path`` is None), apply overrides
    (``["key=value", ...]`` or a mapping) and check keys and types."""
    full = schema()
    data = read_yaml(path) if path is not None else {}
    out = check_all(full, data, source=str(path) if path else "defaults")
    out.update(_checked_overrides(full, overrides))
    return out


def _checked_overrides(full: Mapping[str, Param],
                       overrides: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(overrides, Mapping):
        return dict(parse_override(full, o) for o in overrides)
    for k in overrides:
        if k not in full:
            raise unknown(str(k), full)
    return {k: full[k].check(v) for k, v in overrides.items()}


def validate(values: Mapping[str, Any], *, topo: Any = None, names: Sequence[str] | None = None,
             model: bool = True) -> Resolved:
    """Check the parameters of the studies named (all when none) against the machine; one
    Resolved holding every parameter, "auto" resolved."""
    from coresweep.studies.common import live_topology

    topo = topo if topo is not None else live_topology()
    merged: dict[str, Any] = dict(check_all(schema(), dict(values)))
    notes: list[str] = []
    for s in select(names):
        r = s.validate(merged, topo=topo, model=False)
        merged.update(r.values)
    if model and any(s.runs_trials for s in select(names)):
        from coresweep.studies.common import check_model

        notes.append(check_model(merged["model"], merged["precision"],
                                 runtime=merged["runtime"]))
    return Resolved(values=merged, topology=topo, notes=notes)


def _reference_rows(params: Mapping[str, Param]) -> list[str]:
    rows = ["| parameter | type | default | meaning |", "|---|---|---|---|"]
    for k, p in params.items():
        default = ", ".join(map(str, p.default)) if isinstance(p.default, list) else repr(p.default)
        choices = f" Choices: {', '.join(f'`{c}`' for c in p.choices)}." if p.choices else ""
        rows.append(f"| `{k}` | {p.type_name()} | `{default}` | {p.help}.{choices} |")
    return rows


_SHORT_KIND = {"int": "int", "float": "float", "bool": "bool", "str": "str", "int_list": "int list",
               "float_list": "float list", "str_list": "str list", "bool_list": "bool list"}


def parameters_cell(study: Study) -> str:
    """The source of a study's notebook ``parameters`` cell: one typed literal per parameter, the
    study's default, with its type, choices and help as the comment (papermill overrides it)."""
    lines = []
    for k, p in study.schema().items():
        kind = _SHORT_KIND[p.kind] + (f" or {p.kind} list" if p.listable else "")
        choices = f"; one of {', '.join(map(str, p.choices))}" if p.choices else ""
        lines.append(f"{k} = {p.default_value()!r}  # {kind}{choices}: {p.help}")
    return "\n".join(lines)


def reference_markdown() -> str:
    """The parameter reference (docs/parameters.md), from the studies' own declarations."""
    every = all_studies()
    own = {k for s in every for k in s.params}
    lines = ["# Parameters", "",
             "Generated by `coresweep params --markdown` from the studies' declarations (a test "
             "keeps this file equal to its output). Every key is optional in a YAML file and any "
             "key can be overridden with `-p key=value` (lists as `1,2,4` or `[1, 2, 4]`).", "",
             "## Shared by the studies", "",
             "`run_dir` belongs to every study; `budget` to `coresweep run` (no notebook reads "
             "it); the others to every study that runs trials.", "",
             *_reference_rows({k: p for k, p in schema().items() if k not in own})]
    for s in every:
        lines += ["", f"## {s.id} · {s.title}", "", s.question, ""]
        lines += _reference_rows(s.params) if s.params else ["No parameters of its own."]
    return "\n".join(lines) + "\n"
