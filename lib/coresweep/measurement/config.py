"""`TrialConfig`: the JSON-able description of one measurement point, and its resume key.

Field defaults come from :mod:`coresweep.parameters` (one definition per parameter). `key()`
hashes an explicit, versioned set of fields so that adding a field never changes the keys of run
folders written before it: the fields of key version 1 are always hashed (under their version-1
names); a field added later is hashed only when it differs from its default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from coresweep.errors import CoresweepError
from coresweep.parameters import SESSION, SESSION_OPTIONS, SMT_MODE, WORKLOAD

# The fields that say what a trial generates — the work: configs that differ only elsewhere
# (threads, placement, knobs) must generate the same tokens, and are raced and compared within
# the same work. A new axis that changes what is generated is added here.
WORK_FIELDS = ("model", "precision", "runtime", "prompt_tokens", "gen_tokens", "prompt_text",
               "seed", "batch")
SMT_STATES = (None, "on", "off")
SMT_MODES = SMT_MODE.choices
# Environment knobs people set for CPU inference. They are set when a config names them and always
# recorded (effective values in the worker) so the suite can show which ones the runtime honours.
ENV_KNOBS = (
    "OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "OMP_WAIT_POLICY", "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS", "KMP_AFFINITY", "GOMP_CPU_AFFINITY", "ORT_DISABLE_SPINNING",
    "GLIBC_TUNABLES",
)
SESSION_KEYS = (*SESSION_OPTIONS, "memory_arena")
NUMA_MEMORY = SESSION["numa_memory"].choices
HUGE_PAGES = SESSION["huge_pages"].choices

KEY_VERSION = 1
# field -> its name in the key-version-1 hash (release 0.1 called `warmup` "warmups", and
# `runtime` "engine": the hash keeps the old names, so no run folder's keys change)
_KEY_FIELDS_V1 = {
    "model": "model", "threads": "threads", "placement": "placement", "runtime": "engine",
    "precision": "precision", "prompt_tokens": "prompt_tokens", "gen_tokens": "gen_tokens",
    "warmup": "warmups", "reps": "reps", "smt": "smt", "smt_mode": "smt_mode", "env": "env",
    "session": "session", "pin_threads": "pin_threads", "oversubscribe": "oversubscribe",
    "seed": "seed",
}
# fields that describe a config for people and studies but never change the measurement
_NOT_KEYED = ("label", "role")
# old name -> field (configs stored by earlier releases: run.json "configs")
_RENAMED = {"warmups": "warmup", "engine": "runtime"}


def _default(name: str) -> Any:
    return WORKLOAD[name].default


@dataclass(frozen=True)
class TrialConfig:
    """One measurement point. Every field that changes the measurement is part of `key()`.

    ``role`` is structured data saying what the point is for in its study (e.g.
    ``{"strategy": "physical"}`` or ``{"control": "omp-only", "omp_num_threads": 3}``); code reads
    it, never the label.
    """

    model: str = _default("model")  # preset name or path to a model dir / .onnx file
    threads: int | None = 1  # intra-op threads; None = ORT's own default ("ort-default" mode)
    placement: str = "auto"  # strategy or CPU list "0-3,8"; auto: see plan_strategy
    runtime: str = _default("runtime")  # ort | genai | llamacpp (engines.RUNTIMES)
    precision: str = _default("precision")
    prompt_tokens: int = _default("prompt_tokens")
    gen_tokens: int = _default("gen_tokens")
    warmup: int = _default("warmup")  # discarded generations after load
    reps: int = _default("reps")  # timed generations per process
    smt: str | None = None  # None: leave as is; "on"/"off"
    smt_mode: str = SMT_MODE.default  # "placement": by the plan; "sysfs": smt/control (root)
    env: dict[str, str] = field(default_factory=dict)  # environment knobs set in the worker
    session: dict[str, Any] = field(default_factory=dict)  # extra engines.SessionConfig fields
    pin_threads: bool = SESSION["pin_threads"].default  # also pin each ORT pool thread
    oversubscribe: bool = False  # allow more threads than CPUs in the plan
    seed: int = 0  # prompt seed
    numa_memory: str = SESSION["numa_memory"].default  # memory policy set before the model loads
    huge_pages: str = SESSION["huge_pages"].default  # THP for the worker (machine.hugepages)
    prompt_text: str | None = None  # text through the model's tokenizer instead of ids
    batch: int = _default("batch")  # sequences of the prompt decoded together in one session
    label: str | None = None  # display name only (not part of the key)
    role: dict[str, Any] = field(default_factory=dict)  # what the point is for (not keyed)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["env"] = {str(k): str(v) for k, v in sorted(self.env.items())}
        d["session"] = dict(sorted(self.session.items()))
        d["role"] = dict(sorted(self.role.items()))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialConfig:
        d = {_RENAMED.get(k, k): v for k, v in d.items()}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise CoresweepError(
                f"unknown trial config field(s) {unknown}; valid fields: {sorted(names)}"
            )
        return cls(**d)

    def key(self) -> str:
        """Stable 12-hex hash of what defines the measurement (see the module docstring)."""
        d = self.to_dict()
        keyed = {old: d[f] for f, old in _KEY_FIELDS_V1.items()}
        defaults = type(self)().to_dict()
        for f, v in d.items():  # fields added after version 1: hashed only when set
            if f not in _KEY_FIELDS_V1 and f not in _NOT_KEYED and v != defaults[f]:
                keyed[f] = v
        blob = json.dumps(keyed, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def display(self) -> str:
        if self.label:
            return self.label
        t = "ort-default" if self.threads is None else f"{self.threads}t"
        parts = [t, self.placement]
        if self.smt:
            parts.append(f"smt-{self.smt}")
        if self.pin_threads:
            parts.append("pinned-threads")
        if self.numa_memory != "default":
            parts.append(f"numa-{self.numa_memory}")
        if self.huge_pages != "default":
            parts.append(f"huge-pages-{self.huge_pages}")
        for knobs in (self.env, self.session):
            if knobs:
                parts.append(",".join(f"{k}={v}" for k, v in sorted(knobs.items())))
        parts.append(f"p{self.prompt_tokens}g{self.gen_tokens}"
                     + (f"b{self.batch}" if self.batch != 1 else ""))
        if self.runtime != _default("runtime"):
            parts.append(self.runtime)
        return " ".join(parts)

    @staticmethod
    def session_knobs(values: dict[str, Any]) -> dict[str, Any]:
        """The session options among ``values`` that differ from onnxruntime's defaults here (a
        default left out keeps the config's key: it measures the same thing)."""
        return {k: values[k] for k in SESSION_OPTIONS
                if k in values and values[k] != SESSION[k].default}

    @property
    def plan_threads(self) -> int | None:
        """The threads the plan must hold CPUs for: ``threads``, or the prompt's own count when
        it is larger (llama.cpp's n_threads_batch, ``session["prompt_threads"]``)."""
        if self.threads is None:
            return None
        return max(self.threads, int(self.session.get("prompt_threads") or 0))

    def plan_strategy(self) -> str:
        """The placement strategy handed to make_plan ("auto" resolved)."""
        if self.placement != "auto":
            return self.placement
        if self.threads is None:
            return "none"
        if self.smt == "on":  # siblings of a core before the next core (both SMT modes)
            return "smt"
        return "physical"
