"""Parameter sets for the notebooks and `coresweep run`: YAML files, `-p key=value` overrides and a
typed schema. Every error is a :class:`~coresweep.errors.ParamsError` that names the parameter and
the valid choices, raised before any trial runs.

Values may be ``"auto"`` where the schema allows it (thread counts derived from the machine); the
file keeps ``"auto"`` and :func:`resolve` turns it into numbers for the machine at hand.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from coresweep.errors import CoresweepError, ParamsError

# Notebook names, in the order `coresweep run` executes them.
NOTEBOOKS: tuple[str, ...] = ("00_machine", "01_threads", "02_affinity", "03_smt")

# Placement "strategies" that are not placements but controls, understood by the affinity study:
#   ort-default: ORT's own default (intra_op_num_threads=0, ORT pins one thread per physical core)
#   omp-only:    only OMP_NUM_THREADS is set, intra_op_num_threads left at ORT's default; the value
#                differs from ORT's own thread count (see omp_control_value) so that a knob that
#                acted would show up in the busy-thread count
CONTROLS: tuple[str, ...] = ("ort-default", "omp-only")

_ALL = NOTEBOOKS[1:]  # the notebooks that run trials


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "int", "float", "bool", "str", "int_list", "str_list"
    default: Any
    help: str
    choices: tuple | None = None
    auto: bool = False  # the literal "auto" is accepted (resolved against the machine)
    minimum: float | None = None
    notebooks: tuple[str, ...] = _ALL

    def type_name(self) -> str:
        base = {
            "int": "an integer",
            "float": "a number",
            "bool": "true/false",
            "str": "a string",
            "int_list": "a list of integers",
            "str_list": "a list of strings",
        }[self.kind]
        return base + (' or "auto"' if self.auto else "")


def _p(*args, **kw) -> Param:
    return Param(*args, **kw)


_SCHEMA_LIST: list[Param] = [
    # --- the model and the workload -------------------------------------------------------------
    _p("model", "str", "qwen2.5-0.5b",
       "synthetic preset name (built on demand and cached) or a path to an ONNX model folder/file"),
    _p("precision", "str", "int4", "weight precision of a synthetic preset",
       choices=("int4", "int8", "fp32")),
    _p("engine", "str", "ort", "generation engine: onnxruntime loop or onnxruntime-genai",
       choices=("ort", "genai")),
    _p("prompt_tokens", "int", 64, "prompt length in tokens", minimum=1),
    _p("gen_tokens", "int", 32, "tokens generated per repetition (greedy)", minimum=2),
    _p("prompt_text", "str", "",
       "prompt text for a real model with its own tokenizer (chat template); synthetic presets "
       "use prompt_tokens ids; empty means prompt_tokens ids"),
    # --- repetition -------------------------------------------------------------------------------
    _p("processes", "int", 2, "fresh worker processes per configuration (the spread is between "
       "processes, so more than one)", minimum=1),
    _p("reps", "int", 2, "timed generations per worker process", minimum=1),
    _p("warmup", "int", 1, "untimed warm-up generations per worker process", minimum=0),
    _p("timeout_s", "float", 600.0, "time-out of one worker process, seconds", minimum=1),
    _p("sample_interval_s", "float", 0.05, "per-CPU utilisation sampling interval, seconds",
       minimum=0.005),
    # --- 01 threads -------------------------------------------------------------------------------
    _p("threads", "int_list", "auto", "thread counts for the core-count sweep; auto means 1..logical "
       "CPUs (thinned past 8) plus one oversubscribed point (2 x CPUs)", auto=True, minimum=1,
       notebooks=("01_threads",)),
    _p("placement", "str", "cores-first", "placement strategy of the core-count sweep: "
       "cores-first fills one CPU per physical core, then the SMT siblings (see "
       "coresweep.machine.placement.STRATEGIES, or a CPU list such as 0-3)",
       notebooks=("01_threads",)),
    _p("oversubscribe", "bool", True, "allow thread counts past the CPUs the strategy gives "
       "(threads then share CPUs)", notebooks=("01_threads",)),
    # --- 02 affinity ------------------------------------------------------------------------------
    _p("affinity_threads", "int_list", "auto", "thread counts at which the strategies are "
       "compared; auto means the number of physical cores", auto=True, minimum=1,
       notebooks=("02_affinity",)),
    _p("strategies", "str_list", ["physical", "compact", "scatter", "none", "ort-default",
                                  "omp-only"],
       "placement strategies compared (plus the controls ort-default and omp-only)",
       notebooks=("02_affinity",)),
    _p("heatmaps", "str_list", ["physical", "ort-default"],
       "strategies whose per-core utilisation heatmap (cores x time) is drawn",
       notebooks=("02_affinity",)),
    # --- 03 SMT -----------------------------------------------------------------------------------
    _p("smt_cores", "int_list", "auto", "physical core counts at which SMT on/off is compared; "
       "auto means 1 and all physical cores", auto=True, minimum=1, notebooks=("03_smt",)),
    _p("smt_mode", "str", "placement", "how SMT is switched off: placement (use one CPU per core) "
       "or sysfs (write /sys/devices/system/cpu/smt/control; needs root)",
       choices=("placement", "sysfs"), notebooks=("03_smt",)),
    # --- where results go ---------------------------------------------------------------------------
    _p("run_dir", "str", "", "run folder for data/ and run.json; empty means "
       "reports/<machine>-notebook (the batch runner sets it)",
       notebooks=NOTEBOOKS),
]

SCHEMA: dict[str, Param] = {p.name: p for p in _SCHEMA_LIST}


def defaults(notebook: str | None = None) -> dict[str, Any]:
    """The schema's default value of every parameter (of one notebook when given)."""
    return {
        k: (list(p.default) if isinstance(p.default, list) else p.default)
        for k, p in SCHEMA.items()
        if notebook is None or notebook in p.notebooks
    }


def keys_for(notebook: str) -> list[str]:
    _check_notebook(notebook)
    return [k for k, p in SCHEMA.items() if notebook in p.notebooks]


def _check_notebook(notebook: str) -> None:
    if notebook not in NOTEBOOKS:
        raise ParamsError(f"unknown notebook {notebook!r}; valid choices: {', '.join(NOTEBOOKS)}")


# ------------------------------------------------------------------------------------------------
# type checking


def _unknown(key: str) -> ParamsError:
    near = difflib.get_close_matches(key, SCHEMA, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return ParamsError(
        f"unknown parameter {key!r}{hint}; valid parameters: {', '.join(SCHEMA)}"
    )


def _bad(p: Param, value: Any, why: str = "") -> ParamsError:
    msg = f"parameter {p.name!r}: {value!r} is not {p.type_name()}"
    if why:
        msg = f"parameter {p.name!r}: {why}"
    if p.choices:
        msg += f"; valid choices: {', '.join(map(str, p.choices))}"
    return ParamsError(msg)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_value(p: Param, value: Any) -> Any:
    """Type-check one value against its schema entry; returns the (normalised) value."""
    if p.auto and value == "auto":
        return "auto"
    if p.kind == "int":
        if not _is_int(value):
            raise _bad(p, value)
    elif p.kind == "float":
        if not (_is_int(value) or isinstance(value, float)):
            raise _bad(p, value)
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise _bad(p, value, f"{value!r} is not a finite number")
    elif p.kind == "bool":
        if not isinstance(value, bool):
            raise _bad(p, value)
    elif p.kind == "str":
        if not isinstance(value, str):
            raise _bad(p, value)
    elif p.kind == "int_list":
        if not isinstance(value, (list, tuple)) or not value or not all(map(_is_int, value)):
            raise _bad(p, value, f"{value!r} is not a non-empty {p.type_name()}")
        value = list(value)
    elif p.kind == "str_list":
        if (not isinstance(value, (list, tuple)) or not value
                or not all(isinstance(v, str) for v in value)):
            raise _bad(p, value, f"{value!r} is not a non-empty {p.type_name()}")
        value = list(value)
    else:  # pragma: no cover - schema error
        raise AssertionError(p.kind)
    if p.minimum is not None:
        items = value if isinstance(value, list) else [value]
        for v in items:
            if isinstance(v, (int, float)) and v < p.minimum:
                raise _bad(p, value, f"{v!r} is below the minimum {p.minimum:g}")
    if p.choices and value not in p.choices:
        raise _bad(p, value, f"{value!r} is not a valid choice")
    return value


def _coerce_override(p: Param, raw: str) -> Any:
    """Interpret the text of a `-p key=value` override for parameter ``p``."""
    text = raw.strip()
    if p.kind == "str":
        return raw  # never reinterpret strings ("0-3" stays a string)
    if p.kind in ("int_list", "str_list") and not text.startswith("["):
        if p.auto and text == "auto":
            return "auto"
        parts = [s.strip() for s in text.split(",") if s.strip()]
        if p.kind == "str_list":
            return parts
        try:
            return [yaml.safe_load(s) for s in parts]
        except yaml.YAMLError as exc:
            raise _bad(p, raw, f"cannot parse {raw!r}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _bad(p, raw, f"cannot parse {raw!r}: {exc}") from None


def parse_override(item: str) -> tuple[str, Any]:
    """``"key=value"`` → ``(key, value)`` with the value typed as the schema wants."""
    if "=" not in item:
        raise ParamsError(f"override {item!r} is not of the form key=value; valid keys: "
                          f"{', '.join(SCHEMA)}")
    key, raw = item.split("=", 1)
    key = key.strip()
    if key not in SCHEMA:
        raise _unknown(key)
    p = SCHEMA[key]
    return key, check_value(p, _coerce_override(p, raw))


def check(params: Mapping[str, Any], *, source: str = "parameters") -> dict[str, Any]:
    """Check keys and types (no machine or model needed). Missing keys take their defaults."""
    if not isinstance(params, Mapping):
        raise ParamsError(f"{source}: expected a mapping of parameter: value, got "
                          f"{type(params).__name__}")
    out = defaults()
    for key, value in params.items():
        if key not in SCHEMA:
            raise _unknown(str(key))
        out[key] = check_value(SCHEMA[key], value)
    return out


def load(path: str | Path | None = None,
         overrides: Sequence[str] | Mapping[str, Any] = ()) -> dict[str, Any]:
    """Read a YAML parameter file (or the defaults when ``path`` is None), apply overrides
    (``["key=value", ...]`` or a mapping) and check keys and types."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ParamsError(f"parameter file {str(path)!r} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ParamsError(f"{path}: not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ParamsError(f"{path}: expected a mapping of parameter: value")
        data.update(loaded)
    out = check(data, source=source)
    if isinstance(overrides, Mapping):
        for k, v in overrides.items():
            if k not in SCHEMA:
                raise _unknown(str(k))
            out[k] = check_value(SCHEMA[k], v)
    else:
        for item in overrides:
            k, v = parse_override(item)
            out[k] = v
    return out


# ------------------------------------------------------------------------------------------------
# machine-dependent resolution and validation


@dataclass
class Resolved:
    """Parameters checked against the machine: ``values`` has no "auto" left."""

    values: dict[str, Any]
    topology: Any = None
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)


def _logical(topo) -> int:
    return len(topo.allowed)


def _physical(topo) -> int:
    allowed = set(topo.allowed)
    return sum(1 for c in topo.cores if allowed.intersection(c.cpus)) or _logical(topo)


def sweep_cpus(values: Mapping[str, Any], topo) -> int:
    """How many CPUs the core-count sweep's placement can use on this machine (its strategy's
    capacity; all usable CPUs when the placement is not valid here — validation says why)."""
    from coresweep.machine.placement import parse_cpulist, strategy_order

    placement = str(values.get("placement") or "cores-first")
    try:
        if placement[:1].isdigit():
            return len(set(parse_cpulist(placement)) & set(topo.allowed)) or _logical(topo)
        return len(strategy_order(topo, placement)[0]) or _logical(topo)
    except CoresweepError:
        return _logical(topo)


def smt_pair_cores(topo) -> int:
    """Usable physical cores with two or more usable SMT siblings (what an SMT pair needs)."""
    allowed = set(topo.allowed)
    return sum(1 for c in topo.cores if len(allowed.intersection(c.cpus)) > 1)


def auto_threads(logical: int, physical: int | None = None) -> list[int]:
    """The "auto" thread counts: 1..logical CPUs (every count up to 8 CPUs; beyond, 1, 2, 4 and
    steps of logical/8, plus the physical core count), then one oversubscribed point at
    2 x logical CPUs."""
    if logical <= 8:
        pts = set(range(1, logical + 1))
    else:
        step = max(2, logical // 8)
        pts = {1, 2, 4, logical, *range(step, logical + 1, step)}
        if physical:
            pts.add(physical)
    return sorted(pts) + [2 * logical]


def resolve(params: Mapping[str, Any], topo=None) -> dict[str, Any]:
    """Replace every "auto" with the value derived from the machine's topology."""
    if topo is None:
        from coresweep.machine.topology import read_topology

        topo = read_topology()
    out = dict(params)
    phys = _physical(topo)
    if out.get("threads") == "auto":
        cap = sweep_cpus(out, topo)
        pts = auto_threads(cap, min(phys, cap))
        if not out.get("oversubscribe", True):
            pts = pts[:-1]  # the point past the strategy's CPUs needs oversubscribe
        out["threads"] = pts
    if out.get("affinity_threads") == "auto":
        out["affinity_threads"] = [phys]
    if out.get("smt_cores") == "auto":
        pairs = smt_pair_cores(topo)
        out["smt_cores"] = sorted({1, pairs}) if pairs else [1]
    if "run_dir" in out:
        out["run_dir"] = str(default_run_dir(topo) if not out["run_dir"]
                             else Path(out["run_dir"]).expanduser().resolve())
    return out


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder (from ``start`` or the working directory up) holding pyproject.toml or
    a reports/ folder; the working directory when there is none."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() or (d / "reports").is_dir():
            return d
    return here


def default_run_dir(topo=None) -> Path:
    """Where an interactive notebook run stores its results: reports/<machine>-notebook."""
    from coresweep.machine.topology import machine_name

    return project_root() / "reports" / f"{machine_name(topo)}-notebook"


_STRATEGY_PARAM = re.compile(r"^(numa|llc):\d+$")


def _check_strategy(name: str, value: str, topo, threads: Iterable[int], *,
                    oversubscribe: bool, controls: bool) -> None:
    from coresweep.machine.placement import STRATEGIES, make_plan

    if controls and value in CONTROLS:
        return
    for t in threads:
        try:
            make_plan(topo, t, value, oversubscribe=oversubscribe)
        except CoresweepError as exc:
            valid = ", ".join(list(STRATEGIES) + (list(CONTROLS) if controls else []))
            raise ParamsError(
                f"parameter {name!r}: {value!r} cannot place {t} thread(s) on this machine: "
                f"{exc} (valid strategies: {valid}, or a CPU list such as 0-3)"
            ) from None


def check_model(value: str, precision: str = "int4", *, build: bool = False) -> str:
    """The model parameter names a preset or an existing ONNX model; returns a description.

    Presets are built on demand by the workers (and cached), so a preset that is not built yet is
    valid unless ``build`` is asked for here.
    """
    from coresweep import models

    if value in models.PRESETS:
        if build:
            models.resolve_model(value, precision, build=True)
        return f"preset {value} ({precision})"
    path = Path(value).expanduser()
    if not path.exists():
        raise ParamsError(
            f"parameter 'model': {value!r} is neither a preset nor an existing path; valid "
            f"presets: {', '.join(models.PRESETS)}, or a path to an ONNX model folder or .onnx file"
        )
    try:
        info = models.inspect_model(path)
    except CoresweepError as exc:
        raise ParamsError(f"parameter 'model': {value!r} is not a usable model: {exc}") from None
    return f"{info.onnx_path}"


def validate(params: Mapping[str, Any] | None = None, *, notebook: str | None = None, topo=None,
             model: bool = True) -> Resolved:
    """Check everything that can be checked before a trial: keys, types, choices, placements
    against this machine's topology, and that the model exists. Raises ParamsError.

    ``notebook`` restricts the checks to that notebook's parameters (the notebooks call
    ``validate(globals-subset, notebook="01_threads")`` in their first code cell).
    """
    if notebook is not None:
        _check_notebook(notebook)
        wanted = set(keys_for(notebook))
        given = {k: v for k, v in (params or {}).items() if k in wanted}
    else:
        given = dict(params or {})
    checked = check(given)
    if topo is None:
        from coresweep.machine.topology import read_topology

        topo = read_topology()
    values = resolve(checked, topo)
    active = NOTEBOOKS if notebook is None else (notebook,)
    notes: list[str] = []

    if "01_threads" in active:
        _check_strategy("placement", values["placement"], topo, values["threads"],
                        oversubscribe=values["oversubscribe"], controls=False)
    if "02_affinity" in active:
        for s in values["strategies"]:
            _check_strategy("strategies", s, topo, values["affinity_threads"],
                            oversubscribe=True, controls=True)
        for s in values["heatmaps"]:
            if s not in values["strategies"]:
                raise ParamsError(
                    f"parameter 'heatmaps': {s!r} is not one of the compared strategies; valid "
                    f"choices: {', '.join(values['strategies'])}"
                )
    if "03_smt" in active:
        # SMT pairs need cores with usable siblings; without SMT the notebook skips, but a count
        # past the physical cores is still a mistake worth naming
        limit = smt_pair_cores(topo) if topo.has_smt() else _physical(topo)
        what = "usable core(s) with SMT siblings" if topo.has_smt() else "physical core(s)"
        for c in values["smt_cores"]:
            if c > limit:
                raise ParamsError(
                    f"parameter 'smt_cores': {c} physical cores asked but this machine has "
                    f"{limit} {what}; valid choices: 1..{limit}"
                )
    if active != ("00_machine",) and model:
        notes.append(check_model(values["model"], values["precision"]))
    if notebook is not None:
        values = {k: values[k] for k in keys_for(notebook)}
    return Resolved(values=values, topology=topo, notes=notes)


# ------------------------------------------------------------------------------------------------
# parameters -> trial configs (one list per notebook)


def _base(values: Mapping[str, Any]) -> dict[str, Any]:
    from coresweep.measurement.trial import TrialConfig

    base = {
        "model": values["model"],
        "precision": values["precision"],
        "engine": values["engine"],
        "prompt_tokens": values["prompt_tokens"],
        "gen_tokens": values["gen_tokens"],
        "warmup": values["warmup"],
        "reps": values["reps"],
    }
    fields = TrialConfig.__dataclass_fields__
    if values.get("prompt_text") and "prompt_text" in fields and not uses_synthetic_prompt(values):
        base["prompt_text"] = values["prompt_text"]
    return base


def uses_synthetic_prompt(values: Mapping[str, Any]) -> bool:
    """True when the prompt is `prompt_tokens` synthetic ids: no prompt_text, or a synthetic
    preset (its offline tokenizer would give the text a length unlike the real model's)."""
    from coresweep.models import PRESETS

    return not values.get("prompt_text") or str(values.get("model")) in PRESETS


def omp_control_value(threads: int, topo) -> int:
    """OMP_NUM_THREADS for the omp-only control at `threads`: the thread count itself, unless that
    equals what ORT's default mode starts anyway (one thread per physical core), where the control
    could not tell; then 1 (or 2 on a one-core machine)."""
    ort_default = topo.physical_core_count()
    if threads != ort_default:
        return threads
    return 1 if ort_default > 1 else 2


def _dedupe(configs: list) -> list:
    seen: set[str] = set()
    out = []
    for c in configs:
        if c.key() not in seen:
            seen.add(c.key())
            out.append(c)
    return out


def same_placements(params: Resolved | Mapping[str, Any], topo) -> dict[tuple[str, int], str]:
    """(strategy, threads) → the earlier strategy that gives the very same plan (same CPUs in the
    same order) on this machine; such points are measured once (e.g. compact = scatter =
    physical on a machine with one LLC domain and no SMT)."""
    from coresweep.machine.placement import make_plan

    values = params.values if isinstance(params, Resolved) else params
    out: dict[tuple[str, int], str] = {}
    for t in values["affinity_threads"]:
        seen: dict[tuple, str] = {}
        for s in values["strategies"]:
            if s in CONTROLS:
                continue
            plan = make_plan(topo, t, s, oversubscribe=True)
            sig = (tuple(plan.cpus), plan.pinned if hasattr(plan, "pinned") else True)
            if sig in seen and seen[sig] != s:  # a strategy listed twice is still measured
                out[(s, t)] = seen[sig]
            else:
                seen[sig] = s
    return out


def configs_for(notebook: str, params: Resolved | Mapping[str, Any], topo=None) -> list:
    """The trial configs a notebook runs with these (resolved) parameters; [] when it runs none
    (00_machine, or 03_smt on a machine without SMT)."""
    from coresweep.measurement.trial import TrialConfig

    _check_notebook(notebook)
    if isinstance(params, Resolved):
        topo = topo if topo is not None else params.topology
        values = params.values
    else:
        values = params
    base = _base(values)
    out: list = []
    if notebook == "01_threads":
        for t in values["threads"]:
            out.append(TrialConfig(**base, threads=t, placement=values["placement"],
                                   oversubscribe=bool(values["oversubscribe"]),
                                   label=f"{t} thread{'s' * (t != 1)}"))
    elif notebook == "02_affinity":
        if topo is None:
            from coresweep.machine.topology import read_topology

            topo = read_topology()
        same = same_placements(values, topo)
        for t in values["affinity_threads"]:
            for s in values["strategies"]:
                if (s, t) in same:
                    continue  # the same CPUs in the same order as an earlier strategy
                if s == "ort-default":
                    out.append(TrialConfig(**base, threads=None, placement="none",
                                           label="ort-default"))
                elif s == "omp-only":
                    v = omp_control_value(t, topo)
                    out.append(TrialConfig(**base, threads=None, placement="none",
                                           env={"OMP_NUM_THREADS": str(v)},
                                           label=f"omp-only OMP_NUM_THREADS={v}"))
                else:  # validated with oversubscribe allowed: the same here
                    out.append(TrialConfig(**base, threads=t, placement=s, oversubscribe=True,
                                           label=f"{s} {t}t"))
    elif notebook == "03_smt":
        if topo is None:
            from coresweep.machine.topology import read_topology

            topo = read_topology()
        if not topo.has_smt():
            return []
        from coresweep.machine.placement import plan_for_smt

        mode = values["smt_mode"]

        def cpus(plan) -> str:  # the plan's CPUs, in its order, as an explicit placement
            return ",".join(str(c) for c in plan.cpus)

        for c in values["smt_cores"]:
            # the same c physical cores (those with usable siblings): one CPU each vs all siblings
            off = plan_for_smt(topo, c, False)
            on = plan_for_smt(topo, c, True)
            out.append(TrialConfig(**base, threads=c, placement=cpus(off), smt="off",
                                   smt_mode=mode, label=f"SMT off {c}c/{c}t"))
            out.append(TrialConfig(**base, threads=on.threads, placement=cpus(on), smt="on",
                                   smt_mode=mode, label=f"SMT on {c}c/{on.threads}t"))
            # equal thread counts: c threads as siblings on fewer cores (when c fills whole cores)
            for k in range(1, c):
                half = plan_for_smt(topo, k, True)
                if half.threads == c:
                    out.append(TrialConfig(**base, threads=c, placement=cpus(half), smt="on",
                                           smt_mode=mode, label=f"SMT on {k}c/{c}t"))
                    break
    return _dedupe(out)


@dataclass
class Results:
    """The part of a run folder that belongs to a list of configs (a run folder is shared by the
    notebooks of one batch run): summary (one row per config, in config order, labelled as the
    configs are) and the long-form tables restricted to those configs."""

    summary: Any
    trials: Any
    tokens: Any
    samples: Any
    threads: Any
    failures: Any
    labels: dict[str, str]
    run: Any = None


def select(run: Any, configs: Sequence[Any]) -> Results:
    """Restrict a :class:`coresweep.measurement.sweep.Run` to ``configs`` (TrialConfig objects)."""
    import pandas as pd

    labels = {c.key(): c.display for c in configs}
    keys = list(labels)

    def part(df):
        if df is None or len(df) == 0 or "config_key" not in df:
            return pd.DataFrame(columns=["config_key"])
        return df[df["config_key"].isin(keys)].reset_index(drop=True)

    summary = part(run.summary)
    if len(summary):
        summary = summary.assign(label=summary["config_key"].map(labels))
        order = {k: i for i, k in enumerate(keys)}
        summary = summary.sort_values("config_key", key=lambda s: s.map(order))
        summary = summary.reset_index(drop=True)
    return Results(summary=summary, trials=part(run.trials), tokens=part(run.tokens),
                   samples=part(run.samples), threads=part(run.threads),
                   failures=part(run.failures), labels=labels, run=run)


def describe_configs(configs: Sequence[Any], topo=None) -> Any:
    """One row per config: label, threads, strategy, the CPUs its plan pins to, key."""
    import pandas as pd

    from coresweep.machine.placement import make_plan

    if topo is None:
        from coresweep.machine.topology import read_topology

        topo = read_topology()
    rows = []
    for c in configs:
        t = c.threads if c.threads is not None else len(topo.allowed)
        plan = make_plan(topo, t, c.plan_strategy(), oversubscribe=c.oversubscribe)
        rows.append({
            "label": c.display,
            "threads": "ORT default" if c.threads is None else c.threads,
            "strategy": c.plan_strategy(),
            "cpus": plan.cpulist,
            "oversubscribed": plan.oversubscribed,
            "smt": c.smt or "as is",
            "env": ", ".join(f"{k}={v}" for k, v in sorted(c.env.items())) or "-",
            "key": c.key(),
        })
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------
# small helpers the notebooks call (kept here so the notebooks stay thin)


def capabilities(topo) -> Any:
    """What the sweeps can test on this machine, one row per question."""
    import pandas as pd

    n, phys = _logical(topo), _physical(topo)
    smt = topo.has_smt()
    nodes = [k for k, v in topo.numa_nodes.items() if set(v.cpus) & set(topo.allowed)]
    llc = topo.llc_domains()
    cg = topo.cgroup
    budget = getattr(cg, "budget", None)
    rows = [
        ("thread counts (01)", "yes", f"1..{n} threads on {n} usable CPUs; points past {n} "
         "show oversubscription"),
        ("placement strategies (02)", "yes" if n > 1 else "partly",
         f"{n} CPUs on {phys} physical cores; compact/scatter differ only with several LLC or "
         "NUMA domains"),
        ("SMT on vs off (03)", "yes" if smt else "no",
         (f"{max(len(c.cpus) for c in topo.cores)} threads per core" if smt else
          f"no SMT on this machine: the SMT notebook will explain and skip ({topo.smt_note()})")),
        ("NUMA placement (numa:N)", "yes" if len(nodes) > 1 else "no",
         f"{len(nodes)} NUMA node(s) with usable CPUs"),
        ("LLC placement (llc:N)", "yes" if len(llc) > 1 else "no",
         f"{len(llc)} last-level cache domain(s)"),
        ("hybrid P/E cores (pcore/ecore)", "yes" if topo.hybrid else "no",
         "hybrid CPU" if topo.hybrid else "all cores of one kind"),
        ("cgroup CPU budget", "limited" if budget and budget < n else "none",
         f"budget {budget:g} CPUs" if budget else "no quota"),
    ]
    return pd.DataFrame(rows, columns=["question", "testable here", "why"])


def write_fingerprint(run_dir: str | Path, topo=None) -> dict:
    """Write <run_dir>/machine.json (the fingerprint) and return it."""
    import json

    from coresweep.machine.topology import fingerprint

    fp = fingerprint(topo)
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / "machine.json").write_text(json.dumps(fp, indent=1, sort_keys=True, default=str))
    return fp


def fingerprint_table(fp: Mapping[str, Any]) -> Any:
    """The fingerprint flattened to key | value rows (nested keys joined with dots)."""
    import json

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
    return pd.DataFrame(rows, columns=["key", "value"])


def smt_explanation(topo, mode: str = "placement") -> str:
    """Markdown: whether SMT on/off can be compared here, and how."""
    if not topo.has_smt():
        return (f"**No SMT on this machine** ({topo.smt_note()}). Every physical core has one "
                "logical CPU, so there is no sibling to switch on or off: this notebook runs no "
                "trial and draws an empty comparison. Run it on a machine with Hyper-Threading / "
                "SMT to answer the question.")
    tpc = max(len(c.cpus) for c in topo.cores)
    how = ("SMT off is emulated by pinning one thread per physical core (`placement` mode)"
           if mode == "placement" else
           "SMT is switched with `/sys/devices/system/cpu/smt/control` (`sysfs` mode; needs "
           "root, restored afterwards; points that cannot switch are recorded as skipped)")
    return (f"**SMT is available**: {tpc} logical CPUs per core ({topo.smt_note()}). {how}.")


def heatmap_keys(configs: Sequence[Any], strategies: Sequence[str]) -> dict[str, str]:
    """config key → label of the configs whose strategy (or control) is in ``strategies``."""
    out: dict[str, str] = {}
    for c in configs:
        name = c.label.split(" ")[0] if c.label else c.plan_strategy()
        if name in strategies:
            out[c.key()] = c.display
    return out


def same_placements_note(params: Resolved | Mapping[str, Any], topo) -> str:
    """Markdown naming the strategies measured once because they place identically here."""
    same = same_placements(params, topo)
    if not same:
        return "Every strategy gives a different placement here: all are measured."
    parts = [f"`{s}` = `{first}` at {t} thread(s)" for (s, t), first in same.items()]
    return ("Measured once because they give the very same CPUs in the same order on this "
            "machine: " + "; ".join(parts) + ".")
