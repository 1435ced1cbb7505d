"""One definition per parameter.

A :class:`Param` is a parameter's name, type, default, help and valid choices. The tables here are
the only place where the workload and protocol parameters are defined: `TrialConfig` takes its
field defaults from them, the YAML schema of `coresweep run` is built from them plus each study's
own parameters (see :mod:`coresweep.studies`), and the `coresweep trial` flags are generated from
them. Every error is a :class:`~coresweep.errors.ParamsError` that names the parameter and the
valid choices.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from coresweep.engines import ENGINES
from coresweep.errors import ParamsError

_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "bool": "true/false",
    "str": "a string",
    "int_list": "a list of integers",
    "float_list": "a list of numbers",
    "str_list": "a list of strings",
    "bool_list": "a list of true/false",
}
_LIST_OF = {"int": "int_list", "float": "float_list", "str": "str_list", "bool": "bool_list"}


@dataclass(frozen=True)
class Param:
    """One parameter. ``auto``: the literal "auto" is accepted (resolved against the machine)."""

    name: str
    kind: str  # a key of _TYPE_NAMES
    default: Any
    help: str
    choices: tuple | None = None
    auto: bool = False
    minimum: float | None = None
    maximum: float | None = None  # where a larger value would break the runtime (a time-out)
    allow_empty: bool = False  # lists only: [] is a valid value
    listable: bool = False  # a scalar that also takes a list (an axis where a study sweeps it)

    def type_name(self) -> str:
        listed = f" or {_TYPE_NAMES[_LIST_OF[self.kind]]}" if self.listable else ""
        return _TYPE_NAMES[self.kind] + listed + (' or "auto"' if self.auto else "")

    def default_value(self) -> Any:
        return list(self.default) if isinstance(self.default, list) else self.default

    def error(self, value: Any, why: str = "") -> ParamsError:
        msg = f"parameter {self.name!r}: " + (why or f"{value!r} is not {self.type_name()}")
        if self.choices:
            msg += f"; valid choices: {', '.join(map(str, self.choices))}"
        return ParamsError(msg)

    def check(self, value: Any) -> Any:
        """Type-check one value; returns it normalised (lists as lists, floats as float)."""
        if self.auto and value == "auto":
            return "auto"
        if self.listable and isinstance(value, (list, tuple)):
            if not value:
                raise self.error(value, f"{value!r} is an empty list")
            return [self.check(v) for v in value]
        value = _CHECKS[self.kind](self, value)
        items = value if isinstance(value, list) else [value]
        for v in items:
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if self.minimum is not None and v < self.minimum:
                raise self.error(value, f"{v!r} is below the minimum {self.minimum:g}")
            if self.maximum is not None and v > self.maximum:
                raise self.error(value, f"{v!r} is above the maximum {self.maximum:g}")
        if self.choices:
            for v in items:
                if v not in self.choices:
                    raise self.error(value, f"{v!r} is not a valid choice")
        return value

    def parse_text(self, raw: str) -> Any:
        """The text of a ``-p key=value`` override (or a command-line flag), typed and checked."""
        text = raw.strip()
        if self.listable and "," in text and not text.startswith("["):  # ort,llamacpp / 64,512
            return self.check([scalar_param(self).parse_text(t.strip()) for t in text.split(",")])
        if self.kind == "str" and not (self.listable and text.startswith("[")):
            return self.check(raw)  # never reinterpret strings ("0-3" stays a string)
        if self.auto and text == "auto":
            return "auto"
        try:
            if self.kind.endswith("_list") and not text.startswith("["):
                parts = [s.strip() for s in text.split(",") if s.strip()]
                value = parts if self.kind == "str_list" else [yaml.safe_load(s) for s in parts]
            else:
                value = yaml.safe_load(text)
            if self.kind == "float" and isinstance(value, str):
                value = _as_float(value)  # YAML 1.1 reads "1e3" as text; a number flag means 1000
        except yaml.YAMLError as exc:
            raise self.error(raw, f"cannot parse {raw!r}: {exc}") from None
        return self.check(value)


def _as_float(text: str) -> float | str:
    """The number a text spells (1e3, -2.5E-1), else the text (check() then names the type)."""
    try:
        return float(text)
    except ValueError:
        return text


def scalar_param(p: Param) -> Param:
    """The one-value form of a listable parameter (a command that measures one config)."""
    from dataclasses import replace

    return replace(p, listable=False)


def axis(p: Param, default: list | None = None, help: str | None = None) -> Param:
    """The list form of a one-value parameter: a study's axis over it (same name, choices and
    minimum; every value is checked as the one-value parameter would be)."""
    return Param(p.name, _LIST_OF[p.kind], [p.default] if default is None else default,
                 help or f"values to compare of: {p.help}", choices=p.choices, minimum=p.minimum,
                 maximum=p.maximum)


def first(value: Any) -> Any:
    """The first value of a listable parameter (the one studies that do not sweep it use)."""
    return value[0] if isinstance(value, list) else value


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_int(p: Param, v: Any) -> Any:
    if not _is_int(v):
        raise p.error(v)
    return v


def _check_float(p: Param, v: Any) -> float:
    if not (_is_int(v) or isinstance(v, float)):
        raise p.error(v)
    v = float(v)
    if v != v or v in (float("inf"), float("-inf")):
        raise p.error(v, f"{v!r} is not a finite number")
    return v


def _check_type(types: tuple) -> Any:
    def check(p: Param, v: Any) -> Any:
        if not isinstance(v, types):
            raise p.error(v)
        return v
    return check


def _check_list(item_ok: Any, convert: Any = None) -> Any:
    def check(p: Param, v: Any) -> list:
        if (not isinstance(v, (list, tuple)) or (not v and not p.allow_empty)
                or not all(map(item_ok, v))):
            what = "" if p.allow_empty else "non-empty "
            raise p.error(v, f"{v!r} is not a {what}{p.type_name()}")
        return [convert(x) for x in v] if convert else list(v)
    return check


_CHECKS = {
    "int": _check_int,
    "float": _check_float,
    "bool": _check_type((bool,)),
    "str": _check_type((str,)),
    "int_list": _check_list(_is_int),
    "float_list": _check_list(lambda x: _is_int(x) or isinstance(x, float), float),
    "str_list": _check_list(lambda x: isinstance(x, str)),
    "bool_list": _check_list(lambda x: isinstance(x, bool)),
}


def table(*params: Param) -> dict[str, Param]:
    return {p.name: p for p in params}


# weight precisions of a synthetic preset (models: the ONNX builder takes the first three; the
# GGUF of runtime llamacpp takes all four, see models.gguf.GGUF_TYPES)
PRECISIONS = ("int4", "int8", "fp32", "q4_k_m")

# -- the workload: what one trial generates (TrialConfig fields; `coresweep trial` flags) --------
WORKLOAD = table(
    Param("model", "str", "qwen2.5-0.5b",
          "synthetic preset name (built on demand and cached) or a path to an ONNX model "
          "folder/file"),
    Param("precision", "str", "int4", "weight precision of a synthetic preset (ONNX for ort "
          "and genai: MatMulNBits 4/8-bit block 32, fp32; the GGUF of llamacpp: Q4_0, Q8_0, F32, "
          "and q4_k_m, llama.cpp's Q4_K_M, for llamacpp only)", choices=PRECISIONS),
    Param("runtime", "str", "ort", "inference runtime: ort (onnxruntime, IOBinding loop), genai "
          "(onnxruntime-genai) or llamacpp (llama.cpp through llama-cpp-python, on a GGUF of the "
          "same checkpoint); a list such as [ort, llamacpp] is an axis of the threads and "
          "affinity studies (side by side), other studies use the first",
          choices=ENGINES, listable=True),
    Param("prompt_tokens", "int", 64, "prompt length in tokens; a list such as [64, 512, 2048] "
          "is an axis of the threads study (per context length), other studies use the first",
          minimum=1, listable=True),
    Param("gen_tokens", "int", 32, "tokens generated per repetition (greedy)", minimum=2),
    Param("batch", "int", 1, "sequences of the same prompt decoded together in one session "
          "(one forward pass per step for all; exactly gen_tokens each): 1 is one user; rows "
          "give each sequence's decode tok/s and the aggregate (batch x it)", minimum=1,
          maximum=256),
    Param("prompt_text", "str", "",
          "prompt text for a real model with its own tokenizer (chat template); synthetic presets "
          "use prompt_tokens ids; empty means prompt_tokens ids"),
    Param("warmup", "int", 1, "untimed warm-up generations per worker process", minimum=0),
    Param("reps", "int", 3, "timed generations per worker process", minimum=1),
)

# -- the protocol: how trials are run (sweep() arguments; `coresweep trial` flags) ---------------
PROTOCOL = table(
    Param("processes", "int", 3, "fresh worker processes per configuration (the spread is "
          "between processes, so more than one)", minimum=1),
    Param("timeout_s", "float", 600.0, "time-out of one worker process, seconds",
          minimum=1, maximum=86400),
    Param("sample_interval_s", "float", 0.1, "per-CPU utilisation sampling interval, seconds",
          minimum=0.005, maximum=60),
    Param("adaptive", "bool", False, "adaptive sampling: one more process per configuration per "
          "round until its median decode tok/s is known within adaptive_target, it is clearly "
          "slower than the best (dropped; never a control or a point a figure needs) or it has "
          "`processes` processes (the cap)"),
    Param("adaptive_target", "float", 0.03, "adaptive: stop a configuration once the 95 % CI of "
          "its median decode tok/s is within ± this fraction of the median (2+ processes)",
          minimum=0.001),
    Param("refine_processes", "int", 6, "when a study's decision (TTFT or decode) is not settled "
          "— undecided, or tied among noisy points — only its contenders get more fresh "
          "processes, two at a time, up to this many each; at most `processes` turns it off",
          minimum=0),
    Param("study_budget_s", "float", 0.0, "seconds this notebook may spend measuring (coresweep "
          "run sets it from `budget`); refining stops once it is spent; 0 means no limit",
          minimum=0),
)

# -- the whole run (`coresweep run`; no notebook reads these) ----------------------------------------
RUN = table(
    Param("budget", "str", "10m", "wall time of the whole `coresweep run` (make report: venv and "
          "model build included), e.g. 10m, 90s, 1h30m, or off; the run calibrates, then sizes "
          "what was left unset or auto (thread ladder, serving levels, knob values) to fit and "
          "prints the plan before any trial; values given explicitly are kept"),
)

# -- where a notebook's results go ----------------------------------------------------------------
OUTPUT = table(
    Param("run_dir", "str", "", "run folder for data/ and run.json; empty means "
          "reports/<machine>-notebook (the batch runner sets it)"),
)

# -- single-config knobs of a trial (TrialConfig fields; `coresweep trial` flags) -----------------
SMT_MODE = Param("smt_mode", "str", "placement", "how SMT is switched off: placement (use one CPU "
                 "per core) or sysfs (write /sys/devices/system/cpu/smt/control; needs root)",
                 choices=("placement", "sysfs"))


# -- onnxruntime session knobs of a trial (TrialConfig.session / pin_threads / numa_memory;
#    `coresweep trial` flags; the knobs study compares lists of them) --------------------------------
SESSION = table(
    Param("spinning", "bool", True, "intra-/inter-op pool threads spin while waiting for work "
          "(session.intra_op.allow_spinning): faster hand-offs, CPU time burnt while idle"),
    Param("pin_threads", "bool", False, "pin each intra-op pool thread to one CPU of the plan "
          "(session.intra_op_thread_affinities), not only the process"),
    Param("inter_op_threads", "int", 1, "inter-op pool threads (used by the parallel execution "
          "mode)", minimum=0, maximum=1024),
    Param("execution_mode", "str", "sequential", "graph execution mode",
          choices=("sequential", "parallel")),
    Param("dynamic_block_base", "int", 0, "session.dynamic_block_base: 0 means a static partition of "
          "parallel loops, N > 0 dynamic blocks that shrink as work runs out", minimum=0,
          maximum=2**31 - 1),
    Param("graph_optimization", "str", "all", "graph optimisation level",
          choices=("disabled", "basic", "extended", "all")),
    Param("prompt_threads", "int", 0, "threads for the prompt (prefill) when they differ from "
          "`threads`: llama.cpp's n_threads_batch (runtime llamacpp); 0 means the same as "
          "threads. onnxruntime runs one thread pool per session, so runtimes ort and genai take "
          "only 0", minimum=0, maximum=1024),
    Param("numa_memory", "str", "default", "NUMA memory policy set in the worker before the "
          "model loads: default (first touch), local (the allocating CPU's node) or interleave "
          "(pages spread over every node with memory, like numactl --interleave all)", choices=("default", "local", "interleave")),
    Param("huge_pages", "str", "default", "transparent huge pages for the worker's memory: "
          "default (the system's THP setting as it is), malloc (glibc.malloc.hugetlb set to 1 in "
          "GLIBC_TUNABLES when the worker starts: glibc advises THP on what it maps) or madvise "
          "(after the model loads, MADV_HUGEPAGE + MADV_COLLAPSE on every large anonymous "
          "mapping); read back as AnonHugePages", choices=("default", "malloc", "madvise")),
)
# the session knobs a TrialConfig carries in ``session`` (onnxruntime's session options, and
# prompt_threads: llama.cpp's n_threads_batch)
SESSION_OPTIONS = ("spinning", "inter_op_threads", "execution_mode", "dynamic_block_base",
                   "graph_optimization", "prompt_threads")


# parameters an earlier release named differently: old -> new. Not an alias: a params file that
# still uses the old name is refused, with the new name in the message.
RENAMED = {"engine": "runtime"}


def current_names(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values a run folder stored (run.json, batch.json), under today's parameter names: what a
    folder of an earlier release resolved is read, never accepted as input."""
    return {RENAMED.get(k, k): v for k, v in values.items()}


def unknown(key: str, valid: Iterable[str]) -> ParamsError:
    valid = list(valid)
    new = RENAMED.get(key)
    if new in valid:
        hint = f" (it is now called {new!r}: did you mean {new!r}?)"
    else:
        near = difflib.get_close_matches(key, valid, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
    return ParamsError(f"unknown parameter {key!r}{hint}; valid parameters: {', '.join(valid)}")


def check_all(schema: Mapping[str, Param], values: Mapping[str, Any], *,
              source: str = "parameters") -> dict[str, Any]:
    """Check keys and types against ``schema``; missing keys take their defaults."""
    if not isinstance(values, Mapping):
        raise ParamsError(f"{source}: expected a mapping of parameter: value, got "
                          f"{type(values).__name__}")
    out = {k: p.default_value() for k, p in schema.items()}
    for key, value in values.items():
        if key not in schema:
            raise unknown(str(key), schema)
        out[key] = schema[key].check(value)
    return out


def parse_override(schema: Mapping[str, Param], item: str) -> tuple[str, Any]:
    """``"key=value"`` → ``(key, value)`` typed as the schema wants."""
    if "=" not in item:
        raise ParamsError(f"override {item!r} is not of the form key=value; valid keys: "
                          f"{', '.join(schema)}")
    key, raw = (s for s in item.split("=", 1))
    key = key.strip()
    if key not in schema:
        raise unknown(key, schema)
    return key, schema[key].parse_text(raw)


def read_yaml(path) -> dict[str, Any]:
    """A YAML parameter file as a mapping (ParamsError when missing or malformed)."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise ParamsError(f"parameter file {str(path)!r} is a folder; give a YAML file such as "
                          "params/quick.yaml")
    if not path.is_file():
        raise ParamsError(f"parameter file {str(path)!r} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ParamsError(f"{path}: expected a mapping of parameter: value")
    return loaded


# -- command-line flags from the same definitions ------------------------------------------------


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_argument(parser: argparse.ArgumentParser, p: Param, *aliases: str,
                 default: Any = None) -> None:
    """A flag for ``p``: typed and checked by the Param, default and help from it."""
    default = p.default_value() if default is None else default
    if p.kind == "bool":
        parser.add_argument(flag(p.name), *aliases, dest=p.name,
                            action=argparse.BooleanOptionalAction, default=default,
                            help=p.help)
        return

    def typed(raw: str) -> Any:
        try:
            return p.parse_text(raw)
        except ParamsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    choices = f" (one of {', '.join(map(str, p.choices))})" if p.choices else ""
    parser.add_argument(flag(p.name), *aliases, dest=p.name, type=typed, default=default,
                        metavar=p.name.upper(), help=f"{p.help}{choices} (default: {default!r})")


def describe(schema: Mapping[str, Param]) -> str:
    """Plain-text reference: name, type, default, choices, help (``coresweep params``)."""
    lines = []
    for k, p in schema.items():
        choices = f" [{', '.join(map(str, p.choices))}]" if p.choices else ""
        lines.append(f"{k:18} {p.type_name():28} default {p.default!r}{choices}\n{'':18} {p.help}")
    return "\n".join(lines)
