"""The run's time budget: an estimate of every study from the calibration, trimmed in a fixed order
until the whole run fits, printed before any trial as the plan.

``budget`` (e.g. "10m") is the whole run's wall time, counted from when it started (``make
report`` passes the moment make began, so the venv and the model build count). Only what the
parameter file and the command line left unset — or set to ``auto`` — is sized; anything given
explicitly is kept, and a plan that cannot fit then is refused before any trial with what it
needs. The trims are :data:`TRIMS` (greedy, the largest saving first) then :data:`FALLBACKS` (in order);
docs/protocol.md ("The time budget") explains them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from coresweep.errors import ParamsError

NOTEBOOK_S = 10.0  # papermill kernel start, the notebook's own work and its HTML
NOTEBOOK_NO_TRIALS_S = 5.0  # one that only reads the run folder (measured: 2-7 s on 2 vCPUs)
# one placement's read bandwidth: a likwid-bench run takes ~2.5 s per GiB (start, first touch of
# the buffer, 20 passes; 2-vCPU EPYC), the portable ORT method ~5 s for its runs
BANDWIDTH_S_PER_GIB_RUN, BANDWIDTH_ORT_S = 3.0, 5.0
SERVER_START_S = 4.0  # gunicorn master and workers up, beyond the model load
REFINE_SHARE = 0.15  # of the trial studies' estimate kept for refining unsettled decisions
OFF = ("off", "none", "0")


def parse_budget(text: str) -> float | None:
    """Seconds of a budget ("10m", "90s", "1h30m", "600"), None for "off"; ParamsError naming
    the parameter otherwise."""
    t = str(text).strip().lower()
    if t in OFF:
        return None
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?", t)
    if not t or m is None or not any(m.groups()):
        raise ParamsError(f"parameter 'budget': {text!r} is not a duration; valid: a number of "
                          "seconds, or hours/minutes/seconds such as 10m, 90s, 1h30m, or off")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    seconds = 3600 * h + 60 * mi + s
    if seconds <= 0:
        raise ParamsError(f"parameter 'budget': {text!r} is no time at all; valid: a positive "
                          "duration such as 10m, or off")
    return seconds


@dataclass
class StudyEstimate:
    """One study's planned work and its estimated seconds."""

    study: str  # id
    what: str  # "3 points × 2 processes", "4 plans × 2 levels × 20 requests", ...
    units: dict[str, float]  # work item (config key / serving unit) -> seconds
    fixed_s: float  # notebook, bandwidth, server starts
    refines: bool = False  # the study may refine its decision (a share of the reserve)

    @property
    def seconds(self) -> float:
        return self.fixed_s + sum(self.units.values())


@dataclass
class BatchPlan:
    """What the run will do and how long each part should take."""

    budget_s: float | None
    spent_s: float  # before the plan: venv, model build, calibration
    values: dict[str, Any]  # the parameters, trimmed
    estimates: list[StudyEstimate]
    trims: list[str] = field(default_factory=list)  # what was trimmed to fit, in order
    skipped: list[str] = field(default_factory=list)  # studies left out to fit
    overrun: str = ""  # the default budget could not be met: why, and that it runs anyway

    @property
    def studies_s(self) -> float:
        return sum(e.seconds for e in self.estimates)

    @property
    def reserve_s(self) -> float:
        """The refinement reserve (inside the refining studies' fixed parts)."""
        return REFINE_SHARE * sum(sum(e.units.values()) for e in self.estimates if e.refines)

    @property
    def total_s(self) -> float:
        return self.spent_s + self.studies_s

    @property
    def fits(self) -> bool:
        return self.budget_s is None or self.total_s <= self.budget_s

    def lines(self) -> list[str]:
        """The plan as printed before any trial."""
        from coresweep.report.paths import fmt_s

        head = ("no budget" if self.budget_s is None
                else f"budget {fmt_s(self.budget_s)}")
        out = [f"plan ({head}; spent so far {fmt_s(self.spent_s)}: venv, model, calibration):"]
        out += [f"  {e.study:14} {e.what:48} ≈ {fmt_s(e.seconds)}" for e in self.estimates]
        out.append(f"  {'(included)':14} {'reserve for refining unsettled decisions':48} ≈ "
                   f"{fmt_s(self.reserve_s)}")
        out.append(f"  {'total':14} {'':48} ≈ {fmt_s(self.total_s)}")
        if self.values.get("adaptive"):
            out.append("  adaptive stopping: a point clearly slower than the best after one "
                       "process gets no more (estimates assume every process runs)")
        out += [f"  trimmed to fit: {t}" for t in self.trims]
        out += [f"  left out to fit: {s}" for s in self.skipped]
        return out + ([f"  WARNING: {self.overrun}"] if self.overrun else [])

    def to_dict(self) -> dict[str, Any]:
        return {"budget_s": self.budget_s, "spent_s": round(self.spent_s, 1),
                "total_s": round(self.total_s, 1), "reserve_s": round(self.reserve_s, 1),
                "studies": {e.study: {"what": e.what, "estimate_s": round(e.seconds, 1)}
                            for e in self.estimates},
                "trims": self.trims, "skipped": self.skipped, "overrun": self.overrun}


# -- estimates ------------------------------------------------------------------------------------

def _trial_estimate(study: Any, resolved: Any, cal: Any) -> StudyEstimate:
    from coresweep.measurement.trial import plan_for

    v, topo = resolved.values, resolved.topology
    units: dict[str, float] = {}
    physical = topo.physical_core_count()
    configs = study.configs(resolved)
    for c in configs:
        plan = plan_for(c, topo)
        threads = c.threads if c.threads is not None else physical
        one = cal.of(c.runtime).unit_s(threads, len(set(plan.cpus)), reps=v["reps"],
                                       warmup=v["warmup"], gen_tokens=c.gen_tokens,
                                       prompt_tokens=c.prompt_tokens, batch=c.batch)
        for p in range(v["processes"]):
            units[f"{c.key()}__p{p}"] = one
    fixed = NOTEBOOK_S + (REFINE_SHARE * sum(units.values()) if study.refines else 0.0)
    if study.name == "threads" and v.get("bandwidth", "off") != "off":
        fixed += bandwidth_s(study.main_configs(resolved), topo, v["bandwidth"])
    what = f"{len(configs)} points × {v['processes']} processes × {v['reps']} reps"
    return StudyEstimate(study.id, what, units, fixed, study.refines)


def bandwidth_s(configs: Sequence[Any], topo: Any, method: str) -> float:
    """The read-bandwidth measurements of the thread sweep's placements (the roofline)."""
    import shutil

    from coresweep.measurement.bandwidth_probe import DEFAULT_REPS, default_size_bytes
    from coresweep.measurement.bandwidth_table import placements

    gib = default_size_bytes(topo) / 2**30
    likwid = method in ("both", "likwid") and shutil.which("likwid-bench") is not None
    one = (DEFAULT_REPS * gib * BANDWIDTH_S_PER_GIB_RUN if likwid else 0.0) + \
        (BANDWIDTH_ORT_S if method in ("both", "ort") else 0.0)
    return one * len(placements(configs, topo))


def request_s(cal: Any, workers: int, threads: int, cores: int, gen_tokens: int) -> float:
    """One streamed request while ``workers`` workers of ``threads`` threads generate at once.
    They share the memory bandwidth: a worker decodes between its rate alone and a W-th of one
    process at all their threads (separate processes scale better than threads of one: two
    1-thread workers made 0.95 of two lone 1-thread generations, bench/serving_dispatch.py);
    the geometric mean of the two bounds."""
    p_one = cal.at(threads, cores)
    together = cal.at(workers * threads, cores).decode_tok_s / workers
    per_worker = (p_one.decode_tok_s * together) ** 0.5 if workers > 1 else p_one.decode_tok_s
    return p_one.ttft_s + (gen_tokens - 1) / max(per_worker, 1e-9)


def batched_request_s(cal: Any, active: int, threads: int, cores: int, gen_tokens: int) -> float:
    """One streamed request of a batched worker while ``active`` requests share its batch: the
    prompts run one at a time (it may wait for the others'), then every step decodes all of
    them (the calibration's batch growth; without a batch point, no gain: the safe side)."""
    ttft_one = cal.at(threads, cores).ttft_s
    _, step = cal.batch_times(threads, cores, active)
    return active * ttft_one + (gen_tokens - 1) * step


def _level_request_s(cal: Any, plan: Any, threads: int, cores: int, mode: str, level: float,
                     gen_tokens: int) -> float:
    """One request of ``plan`` at a load level: its workers share the memory bandwidth; a
    batched worker decodes as many of the level's users as its batch holds together."""
    if plan.batch > 1:
        active = min(int(level), plan.batch) if mode == "closed" else plan.batch
        return batched_request_s(cal, max(1, active), threads, cores, gen_tokens)
    active = min(int(level), plan.workers) if mode == "closed" else plan.workers
    return request_s(cal, active, threads, cores, gen_tokens)


def _serving_estimate(study: Any, resolved: Any, cal: Any) -> StudyEstimate:
    """Each plan's server start (its workers load the model, warm up) and every level at its
    request cap (serving.sweep.estimate_level_s), a request taking what the calibration says
    while as many workers generate as the level keeps busy."""
    from coresweep.serving.sweep import estimate_level_s

    v, topo = resolved.values, resolved.topology
    cores = topo.physical_core_count()
    units: dict[str, float] = {}
    fixed = NOTEBOOK_S
    plans, load = study.plans(resolved), study.sizing(resolved)
    shape = study.load_shape(resolved)
    for plan in plans:
        t = plan.threads if plan.threads is not None else max(1, cores // plan.workers)
        fixed += SERVER_START_S + cal.at(t, cores).load_s + v["warmup"] * request_s(
            cal, plan.workers, t, cores, 8)
        opened = 0
        for mode, level, _ in shape:
            one = _level_request_s(cal, plan, t, cores, mode, level, v["gen_tokens"])
            opened += mode == "open"  # named as progress finds it: by its order, not its rate
            name = f"{plan.key()}__closed{level:g}" if mode == "closed" \
                else f"{plan.key()}__open#{opened}"
            units[name] = estimate_level_s(load, plan, mode, level, one)
    what = f"{len(plans)} plans × {len(shape)} levels × ≥{min((n for *_, n in shape), default=0)} req"
    return StudyEstimate(study.id, what, units, fixed)


def estimate(resolved: Any, chosen: Sequence[Any], cal: Any) -> list[StudyEstimate]:
    """Every chosen study's estimate on the calibration."""
    out = []
    for s in chosen:
        if s.name == "serving":
            out.append(_serving_estimate(s, resolved, cal))
        elif s.runs_trials and s.configs(resolved):
            out.append(_trial_estimate(s, resolved, cal))
        else:
            what = "no trials (reads the run folder)" if not s.runs_trials else \
                "no trials on this machine"
            out.append(StudyEstimate(s.id, what, {}, NOTEBOOK_NO_TRIALS_S))
    return out


# -- trims ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Trim:
    """One step that makes the run shorter: the parameter it sets (skipped when the user set that
    parameter), a function of the values giving the new value (None: nothing to trim), and what
    it says."""

    param: str
    apply: Callable[[Mapping[str, Any], Any], Any]
    says: str
    skip_study: str | None = None  # the name of a study left out instead


def _knob_values(*knobs: str) -> Callable[[Mapping[str, Any], Any], Any]:
    def apply(values: Mapping[str, Any], topo: Any) -> Any:
        changed = {k: values[k][:1] for k in knobs if len(values.get(k, [])) > 1}
        return changed or None
    return apply


def _ladder(kind: str) -> Callable[[Mapping[str, Any], Any], Any]:
    def apply(values: Mapping[str, Any], topo: Any) -> Any:
        from coresweep.studies.threads import usable_cpus

        cap = usable_cpus(values, topo)
        physical = min(topo.physical_core_count(), cap)
        if kind == "powers":
            pts = {1, physical, cap} | {2 ** i for i in range(1, cap.bit_length()) if 2 ** i < cap}
        else:
            pts = {1, physical, cap} if kind == "ends" else {1, physical}
        over = [2 * cap] if values.get("oversubscribe") and kind != "minimal" else []
        new = sorted(pts) + over
        return new if new != list(values["threads"]) else None
    return apply


def _first_of(param: str, keep: Callable[[Any], bool]) -> Callable[[Mapping[str, Any], Any], Any]:
    def apply(values: Mapping[str, Any], topo: Any) -> Any:
        cur = list(values.get(param) or [])
        new = [x for x in cur if keep(x)]
        return new if new and new != cur else None
    return apply


def _serving_levels(values: Mapping[str, Any], topo: Any) -> Any:
    cores = topo.physical_core_count()
    new = [cores]
    return new if list(values.get("concurrency") or []) != new else None


def _batch_ends(values: Mapping[str, Any], topo: Any) -> Any:
    """07: batch 1 (the baseline) and the one nearest 4 (past genai's static batch, where the
    2-vCPU machines measured most of the gain)."""
    sizes = list(values.get("batch_sizes") or [])
    big = [b for b in sizes if b > 1]
    new = [1] + ([min(big, key=lambda b: (abs(b - 4), b))] if big else [])
    return new if new != sizes else None


def _serving_splits(values: Mapping[str, Any], topo: Any) -> Any:
    cores = topo.physical_core_count()
    new = sorted({1, cores})
    return new if list(values.get("serve_workers") or []) != new else None


# Trims that make the run smaller without losing an answer: taken greedily, the one that saves
# the most time first, until the run fits.
TRIMS: tuple[Trim, ...] = (
    Trim("graph_optimization", _knob_values("graph_optimization", "dynamic_block_base"),
         "06: graph optimisation and dynamic block base kept at their defaults"),
    Trim("execution_mode", _knob_values("execution_mode", "inter_op_threads", "numa_memory"),
         "06: execution mode, inter-op threads and NUMA policy kept at their defaults"),
    Trim("pin_threads", _knob_values("pin_threads"), "06: per-thread pinning not compared"),
    Trim("huge_pages", _knob_values("huge_pages"), "06: transparent huge pages not compared"),
    Trim("poisson_load", lambda v, t: [] if v.get("poisson_load") else None,
         "04: no open-loop (Poisson) levels"),
    Trim("concurrency", _serving_levels, "04: one closed-loop level, as many users as cores"),
    Trim("serve_workers", _serving_splits, "04: plans 1 × all cores and all cores × 1 only"),
    Trim("batch_threads", _first_of("batch_threads", lambda t: t != 1),
         "07: batch sizes at the recommended thread count only (not at 1 thread)"),
    Trim("batch_sizes", _batch_ends, "07: batch 1 and 4 only"),
    Trim("threads", _ladder("powers"), "01: threads 1, 2, 4, … the physical cores, the CPUs"),
    Trim("strategies", _first_of("strategies", lambda s: s not in ("compact", "scatter")),
         "02: compact and scatter left out (they differ only across LLC/NUMA domains)"),
    Trim("bandwidth", lambda v, t: "ort" if v.get("bandwidth") in ("both", "likwid") else None,
         "01: the roofline's ceiling from the portable onnxruntime measurement only "
         "(likwid-bench's runs take seconds per GiB at every placement)"),
)
# Then, in this order, trims that cost answers: fewer thread counts, fewer repetitions, whole
# studies left out — the thread question last.
FALLBACKS: tuple[Trim, ...] = (
    Trim("threads", _ladder("ends"), "01: threads 1, the physical cores, the CPUs"),
    Trim("reps", lambda v, t: 2 if v["reps"] > 2 else None, "2 timed generations per process"),
    Trim("processes", lambda v, t: 2 if v["processes"] > 2 else None, "2 processes per point"),
    Trim("spinning", lambda v, t: None, "06 left out", skip_study="knobs"),
    Trim("batch_sizes", lambda v, t: None, "07 left out", skip_study="batching"),
    Trim("serve_batch", lambda v, t: [] if any(b > 1 for b in v.get("serve_batch") or [])
         else None, "04: no batched plan"),
    Trim("serve_workers", lambda v, t: None, "04 left out", skip_study="serving"),
    Trim("threads", _ladder("minimal"), "01: threads 1 and the physical cores only"),
)


# -- the plan ---------------------------------------------------------------------------------------

def plan_batch(values: Mapping[str, Any], topo: Any, chosen: Sequence[Any], cal: Any, *,
               budget_s: float | None, spent_s: float, explicit: set[str],
               validate: Callable[[dict[str, Any], Sequence[Any]], Any]) -> BatchPlan:
    """Trim until the estimate fits the budget: :data:`TRIMS` greedily (the largest saving
    first), then :data:`FALLBACKS` in order, then give back every trim the room left allows
    (the thread ladder first); only trims of parameters the user did not set; adaptive stopping
    on unless the user set ``adaptive``. A default budget that even the smallest plan overruns
    (a slow or busy machine) runs that plan with a warning (``overrun``); a budget the user set
    is refused with ParamsError,
    any trial, when even the last does not fit. ``values``: the checked parameters ("auto" kept:
    notebooks resolve it themselves); ``validate(values, studies)`` resolves them."""
    if budget_s is not None and "adaptive" not in explicit:
        values = {**values, "adaptive": True}  # racing: a clearly slower point stops early

    def make(applied: Sequence[Trim]) -> BatchPlan | None:
        return _replay(values, chosen, applied, topo, cal, validate, budget_s, spent_s)

    applied: list[Trim] = []
    plan = make(applied)
    todo = [t for t in TRIMS if t.param not in explicit]
    while not plan.fits and todo:
        tries = [(t, p) for t in todo if (p := make([*applied, t])) is not None]
        if not tries:
            break
        trim, plan = min(tries, key=lambda tp: tp[1].total_s)
        applied.append(trim)
        todo.remove(trim)
    for trim in (t for t in FALLBACKS if t.param not in explicit):
        if plan.fits:
            break
        if (p := make([*applied, trim])) is not None:
            applied, plan = [*applied, trim], p
    if not plan.fits and "budget" in explicit:
        raise ParamsError(_does_not_fit(plan, explicit))
    if not plan.fits:  # the default budget on a slow or busy machine: the least, said so
        plan.overrun = _does_not_fit(plan, explicit).replace(
            "parameter 'budget': ", "", 1) + " — running the smallest plan anyway"
        return plan
    for trim in sorted(applied[:-1], key=_give_back_order):  # room left: give trims back
        p = make([t for t in applied if t is not trim])
        if p is not None and p.fits:
            applied, plan = [t for t in applied if t is not trim], p
    return plan


def _give_back_order(trim: Trim) -> tuple[int, int]:
    """The thread ladder first, then the trims that cost answers (repetitions, whole studies),
    then the others from the most valuable (02's strategies) to the least (06's knob values)."""
    every = (*TRIMS, *FALLBACKS)
    group = 0 if trim.param == "threads" else 1 if trim in FALLBACKS else 2
    return group, -every.index(trim)


def _replay(values: Mapping[str, Any], chosen: Sequence[Any], applied: Sequence[Trim],
            topo: Any, cal: Any, validate: Callable, budget_s: float | None,
            spent_s: float) -> BatchPlan | None:
    """The plan after applying ``applied`` in order to the original values; None when the last
    one changes nothing here (so it is no trim at all)."""
    vals, kept = dict(values), list(chosen)
    trims: list[str] = []
    skipped: list[str] = []
    resolved = validate(vals, kept)
    for trim in applied:
        if not _sizes_any(trim.param, kept):
            changed = None
        elif trim.skip_study:
            changed = [s for s in kept if s.name != trim.skip_study]
            changed = changed if len(changed) < len(kept) else None
        else:
            changed = trim.apply(resolved.values, topo)
        if changed is None:
            if trim is applied[-1]:
                return None
            continue
        if trim.skip_study:
            kept, skipped = changed, [*skipped, trim.says]
        else:
            vals.update(changed if isinstance(changed, dict) else {trim.param: changed})
            trims.append(trim.says)
        resolved = validate(vals, kept)
    return BatchPlan(budget_s, spent_s, vals, estimate(resolved, kept, cal), trims, skipped)


def kept_studies(plan: BatchPlan, chosen: Sequence[Any]) -> list[Any]:
    """The chosen studies the plan did not leave out."""
    ids = {e.study for e in plan.estimates}
    return [s for s in chosen if s.id in ids]


def needed_threads(resolved: Any, chosen: Sequence[Any]) -> list[int]:
    """The thread counts worth calibrating: every explicit count a chosen study's configs use,
    the physical cores (ORT's default mode, the serving plans) and 1."""
    out = {1, resolved.topology.physical_core_count()}
    for s in chosen:
        if s.runs_trials and s.name != "serving":
            out |= {c.threads for c in s.configs(resolved) if c.threads}
    return sorted(out)


def needed_batch(resolved: Any, chosen: Sequence[Any]) -> int:
    """The largest batch a chosen study decodes (its trials' batch, 04's batched plans): the
    calibration measures one batch when it is above 1."""
    out = 1
    for s in chosen:
        if s.name == "serving":
            out = max([out, *(p.batch for p in s.plans(resolved))])
        elif s.runs_trials:
            out = max([out, *(c.batch for c in s.configs(resolved))])
    return out


def _sizes_any(param: str, studies: Sequence[Any]) -> bool:
    """Some chosen study has ``param`` in its notebook's parameters (a trim can act)."""
    return any(param in s.schema() for s in studies)


def _does_not_fit(plan: BatchPlan, explicit: set[str]) -> str:
    from coresweep.report.paths import fmt_s

    kept = sorted(explicit & {t.param for t in (*TRIMS, *FALLBACKS)})
    why = f"; these parameters were set and are kept: {', '.join(kept)}" if kept else ""
    return (f"parameter 'budget': the run needs about {fmt_s(plan.total_s)} even trimmed "
            f"({fmt_s(plan.spent_s)} already spent), more than the budget of "
            f"{fmt_s(plan.budget_s or 0)}{why}; raise budget (e.g. -p budget=30m), leave "
            "parameters unset so the budget can size them, or set budget=off")
