"""Helpers every study shares: the machine, the run folder, the model check, the workload part of a
TrialConfig and the placement check that names the parameter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from coresweep.errors import CoresweepError, ParamsError

# Placement "strategies" that are not placements but controls (the affinity study's):
#   ort-default: ORT's own default (intra_op_num_threads=0, ORT pins one thread per physical core)
#   omp-only:    only OMP_NUM_THREADS is set, intra_op_num_threads left at ORT's default
CONTROLS: tuple[str, ...] = ("ort-default", "omp-only")


def live_topology() -> Any:
    from coresweep.machine.topology import read_topology

    return read_topology()


def logical_count(topo: Any) -> int:
    return len(topo.allowed)


def quota_cap(topo: Any, cpus: int) -> int:
    """``cpus``, capped at the cgroup CPU quota rounded up (a quota of 2.5 CPUs keeps 3 threads
    busy at most: more only share the same CPU time)."""
    import math

    quota = topo.cgroup.quota_cpus
    return cpus if quota is None else max(1, min(cpus, math.ceil(quota - 1e-9)))


def prompt_lengths(values: Mapping[str, Any]) -> list[int]:
    """The prompt lengths of ``prompt_tokens`` (one value or a list), in order."""
    v = values["prompt_tokens"]
    return list(v) if isinstance(v, list) else [v]


def runtimes(values: Mapping[str, Any]) -> list[str]:
    """The runtimes of ``runtime`` (one value or a list), in order: 01 and 02 measure each side
    by side; the other studies use the first."""
    v = values["runtime"]
    return list(dict.fromkeys(v)) if isinstance(v, list) else [v]


def runtime_suffix(runtime: str, values: Mapping[str, Any]) -> str:
    """" · llamacpp" in a point's label when the study measures several runtimes, else ""."""
    return f" · {runtime}" if len(runtimes(values)) > 1 else ""


def physical_count(topo: Any) -> int:
    allowed = set(topo.allowed)
    return sum(1 for c in topo.cores if allowed.intersection(c.cpus)) or logical_count(topo)


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder (from ``start`` or the working directory up) holding pyproject.toml or
    a reports/ folder; the working directory when there is none."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() or (d / "reports").is_dir():
            return d
    return here


def default_run_dir(topo: Any = None) -> Path:
    """Where an interactive notebook run stores its results: reports/<machine>-notebook."""
    from coresweep.machine.fingerprint import machine_name

    return project_root() / "reports" / f"{machine_name(topo)}-notebook"


def resolve_run_dir(values: dict[str, Any], topo: Any) -> dict[str, Any]:
    out = dict(values)
    if "run_dir" in out:
        out["run_dir"] = str(default_run_dir(topo) if not out["run_dir"]
                             else Path(out["run_dir"]).expanduser().resolve())
    return out


def check_model(value: str, precision: str = "int4", *, build: bool = False,
                runtime: str | list[str] = "ort") -> str:
    """The model parameter names a preset or an existing model each runtime can read (ONNX for
    ort and genai, GGUF for llamacpp); returns a description. Presets are built on demand (and
    cached), so one not built yet is valid."""
    from coresweep import models
    from coresweep.engines import model_format

    formats = list(dict.fromkeys(model_format(r) for r in runtimes({"runtime": runtime})))
    if value in models.PRESETS:
        for fmt in formats:
            _check_preset(value, precision, fmt, build)
        return f"preset {value} ({precision}: {' and '.join(formats)})"
    path = Path(value).expanduser()
    if not path.exists():
        raise ParamsError(
            f"parameter 'model': {value!r} is neither a preset nor an existing path; valid "
            f"presets: {', '.join(models.PRESETS)}, or a path to an ONNX model folder or .onnx "
            "file, or a .gguf file (runtime llamacpp)")
    try:
        for fmt in formats:
            models.resolve_model(path, precision, build=False, fmt=fmt)
        info = models.inspect_model(path)
    except CoresweepError as exc:
        raise ParamsError(f"parameter 'model': {value!r} is not a usable model: {exc}") from None
    return f"{info.onnx_path}"


def _check_preset(preset: str, precision: str, fmt: str, build: bool) -> None:
    """The precision exists in the format (and llama-cpp-python is installed for a GGUF)."""
    from coresweep import models
    from coresweep.models import gguf

    try:
        if fmt == "gguf":
            gguf.gguf_type(precision)
            gguf.require_llamacpp()
        elif precision not in models.PRECISIONS:
            raise ParamsError(f"parameter 'precision': {precision!r} has no ONNX build; valid "
                              f"for runtimes ort and genai: {', '.join(models.PRECISIONS)} "
                              f"({precision} is llama.cpp's: runtime llamacpp)")
        if build:
            models.resolve_model(preset, precision, build=True, fmt=fmt)
    except ParamsError:
        raise
    except CoresweepError as exc:
        raise ParamsError(f"parameter 'runtime': {exc}") from None


def uses_synthetic_prompt(values: Mapping[str, Any]) -> bool:
    """True when the prompt is `prompt_tokens` synthetic ids: no prompt_text, or a synthetic
    preset (its offline tokenizer would give the text a length unlike the real model's)."""
    from coresweep.models import PRESETS

    return not values.get("prompt_text") or str(values.get("model")) in PRESETS


def workload(values: Mapping[str, Any]) -> dict[str, Any]:
    """The TrialConfig fields every trial of a study shares (from the WORKLOAD parameters)."""
    from coresweep.parameters import WORKLOAD, first

    out = {k: values[k] for k in WORKLOAD if k != "prompt_text" and k in values}
    out["prompt_tokens"] = first(values["prompt_tokens"])  # a study that sweeps it sets its own
    out["runtime"] = first(values["runtime"])  # 01 and 02 set each of theirs
    if not uses_synthetic_prompt(values):
        out["prompt_text"] = values["prompt_text"]
    return out


def check_strategy(name: str, value: str, topo: Any, threads: Iterable[int], *,
                   oversubscribe: bool, controls: bool = False) -> None:
    """ParamsError naming parameter ``name`` when strategy ``value`` cannot place ``threads``."""
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


def describe_configs(configs: Iterable[Any], topo: Any) -> Any:
    """One row per config: label, threads, strategy, the CPUs its plan pins to."""
    import pandas as pd

    from coresweep.measurement.trial import plan_for

    rows = []
    for c in configs:
        plan = plan_for(c, topo)
        rows.append({
            "label": c.display,
            "threads": "ORT default" if c.threads is None else c.threads,
            "strategy": c.plan_strategy(),
            "cpus": plan.cpulist,
            "oversubscribed": plan.oversubscribed,
            "smt": c.smt or "as is",
            "env": ", ".join(f"{k}={v}" for k, v in sorted(c.env.items())) or "-",
        })
    return pd.DataFrame(rows)
