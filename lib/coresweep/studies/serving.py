"""04 · How to serve? Several pinned worker processes behind a real HTTP server under load: how to
split the cores between workers and threads for concurrent users — or one worker decoding
several users at once (batching)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coresweep.errors import CoresweepError, ParamsError
from coresweep.machine.cpulist import format_cpulist
from coresweep.parameters import Param, first, table
from coresweep.studies import common
from coresweep.studies.base import Resolved, Study

# Control plans: "study" is exactly the motivating study's deployment (gunicorn + UvicornWorker on
# one shared socket, workers = control_workers, OMP_NUM_THREADS = cores / workers, which leaves
# ORT at its default thread count, no pinning, max_requests 100 with jitter 10); "shared-socket"
# is the pinned W x T candidate on that shared socket (what the dispatch alone costs);
# "unpinned" the candidate behind HAProxy without pinning (what pinning alone gives).
CONTROLS = ("study", "shared-socket", "unpinned")


def divisors(n: int) -> list[int]:
    return [w for w in range(1, n + 1) if n % w == 0]


def auto_concurrency(cores: int) -> list[int]:
    """1, 2, 4, … up to twice the cores: past the knee of every plan."""
    out, c = [], 1
    while c <= 2 * cores:
        out.append(c)
        c *= 2
    return out


def _serves_batches(runtime: str) -> bool:
    from coresweep.engines.base import check_batch

    try:
        check_batch(runtime, 2, serving=True)
    except CoresweepError:
        return False
    return True


def auto_batch(concurrency: list[int]) -> list[int]:
    """The batched plans "auto" makes: one, batching as many users as the largest closed-loop
    level has (at least 2, at most 8: past that a batch's TTFT grows long on a CPU)."""
    return [min(8, max(2, max(concurrency, default=2)))]


def make_plans(values: Mapping[str, Any], topo: Any) -> list:
    """Every W × T with W·T = the physical cores, pinned, behind HAProxy (the candidates); one
    worker on every core decoding up to B users together per ``serve_batch`` (candidates too);
    then the controls (CONTROLS)."""
    from coresweep.serving.plan import ServePlan

    cores = common.physical_count(topo)
    plans = [ServePlan(w, cores // w, True, {"split": f"{w}x{cores // w}"})
             for w in values["serve_workers"]]
    batches = values.get("serve_batch")  # a run folder written before batched plans: none
    plans += [ServePlan(1, cores, True, {"split": f"1x{cores}", "batch": b}, batch=b)
              for b in (batches if isinstance(batches, list) else []) if b > 1]
    w = values["control_workers"]
    t = max(1, cores // w)
    controls = {
        "study": ServePlan(w, None, False, {"control": "study"}, "shared-socket",
                           {"OMP_NUM_THREADS": str(t)}, max_requests=100),
        "shared-socket": ServePlan(w, t, True, {"control": "shared-socket"}, "shared-socket"),
        "unpinned": ServePlan(w, t, False, {"control": "unpinned"}),
    }
    return plans + [controls[c] for c in CONTROLS if c in values["serve_controls"]]


def _check_runtime(plan: Any, runtime: str) -> None:
    """ParamsError when the serving runtime (the first of ``runtime``) cannot run ``plan``'s
    workers (llama.cpp has no ORT-default thread count, which the study's control uses)."""
    from coresweep.engines import SessionConfig, check_session

    try:
        check_session(runtime, SessionConfig(plan.threads))
    except CoresweepError as exc:
        raise ParamsError(f"parameter 'serve_controls': plan {plan.label} cannot run on runtime "
                          f"{runtime!r}: {exc}; leave the 'study' control out (serve_controls: "
                          "[shared-socket, unpinned] or []) to serve with it") from None


@dataclass
class ServingResults:
    """The serving tables of a run, and their per-level summary."""

    requests: Any
    itl: Any
    samples: Any
    workers: Any
    failures: Any
    summary: Any
    plans: list

    def failures_table(self) -> Any:
        return None if self.failures is None or not len(self.failures) else self.failures


class ServingStudy(Study):
    number = 4
    name = "serving"
    title = "How to serve? Pinned workers under load"
    question = ("With several users at once, how should the cores be split between worker "
                "processes and threads, and what latency does each split give?")
    capability = "serving plans (W workers x T threads, or one worker batching B users)"
    shared = ("model", "precision", "runtime", "prompt_tokens", "gen_tokens", "prompt_text",
              "warmup", "timeout_s", "sample_interval_s")
    params = table(
        Param("serve_workers", "int_list", "auto", "worker counts W of the W x T plans (T is "
              "the physical cores divided by W); auto means every divisor of the core count",
              auto=True, minimum=1),
        Param("serve_batch", "int_list", "auto", "batched plans: one worker on all physical "
              "cores decoding up to B users together (continuous batching; HAProxy sends it up "
              "to B), one plan per B > 1; auto means as many users as the largest closed-loop "
              "level (2..8); [] for none", auto=True, minimum=1, allow_empty=True),
        Param("serve_controls", "str_list", ["study"], "control plans: study (the motivating "
              "study's deployment: gunicorn + uvicorn workers on one shared socket, "
              "OMP_NUM_THREADS per worker, ORT's default threads, unpinned), shared-socket (the "
              "pinned W x T on that shared socket: what dispatch costs), unpinned (W x T behind "
              "HAProxy without pinning)", allow_empty=True),
        Param("control_workers", "int", 2, "workers W of the control plans (capped at the "
              "usable CPUs)", minimum=1),
        Param("concurrency", "int_list", "auto", "closed-loop concurrent users per level; auto "
              "means 1, 2, 4 ... up to twice the physical cores", auto=True, minimum=1),
        Param("poisson_load", "float_list", [0.5, 0.9], "open-loop Poisson arrival rates as "
              "fractions of each plan's peak closed-loop request rate", allow_empty=True),
        Param("requests_per_level", "int", 20, "fewest requests per load level (a p99 of fewer "
              "than 20 is the maximum of a handful)", minimum=1),
        Param("rounds_per_user", "int", 3, "fewest requests per user in a closed-loop level",
              minimum=1),
        Param("max_requests_per_level", "int", 0, "most requests per level: above "
              "requests_per_level, a level goes on until its p50 and p99 TTFT intervals are "
              "within ttft_ci_target (0 means exactly the fewest)", minimum=0),
        Param("ttft_ci_target", "float", 0.10, "relative half-width of the p50/p99 TTFT "
              "intervals at which a level stops adding requests", minimum=0.001),
        Param("level_timeout_s", "float", 300.0, "time bound of one load level (and of one "
              "request in the queue or generating), seconds", minimum=1),
        Param("latency_budgets_ms", "int_list", [1000, 2000, 5000, 10000], "p99 TTFT budgets of "
              "the best-plan table, milliseconds", minimum=1),
    )

    def resolve(self, values: dict[str, Any], topo: Any) -> dict[str, Any]:
        cores = common.physical_count(topo)
        out = dict(values)
        if out["serve_workers"] == "auto":
            out["serve_workers"] = divisors(cores)
        if out["concurrency"] == "auto":
            out["concurrency"] = auto_concurrency(cores)
        if out["serve_batch"] == "auto":  # none on a runtime that cannot serve batches
            batching = _serves_batches(common.runtimes(out)[0])
            out["serve_batch"] = auto_batch(out["concurrency"]) if batching else []
        out["control_workers"] = min(out["control_workers"], common.logical_count(topo))
        return out

    def check(self, values: Mapping[str, Any], topo: Any) -> None:
        from coresweep.engines.base import check_batch

        if any(b > 1 for b in values["serve_batch"]):
            try:
                check_batch(common.runtimes(values)[0], max(values["serve_batch"]),
                            serving=True)
            except CoresweepError as exc:
                raise ParamsError(f"parameter 'serve_batch': {exc}") from None
        for c in values["serve_controls"]:
            if c not in CONTROLS:
                raise ParamsError(f"parameter 'serve_controls': {c!r} is not a control; valid "
                                  f"choices: {', '.join(CONTROLS)}")
        for plan in make_plans(values, topo):
            try:
                plan.slices(topo)
            except CoresweepError as exc:
                raise ParamsError(f"parameter 'serve_workers': plan {plan.label} does not fit "
                                  f"this machine: {exc}") from None
            _check_runtime(plan, first(values["runtime"]))

    def capability_row(self, topo: Any) -> tuple[str, str]:
        cores = common.physical_count(topo)
        splits = ", ".join(f"{w}x{cores // w}" for w in divisors(cores))
        return "yes", (f"{cores} physical cores: plans {splits} behind HAProxy, one worker "
                       "batching several users, plus controls")

    def plans(self, resolved: Resolved) -> list:
        return make_plans(resolved.values, resolved.topology)

    def plan_table(self, plans: list, resolved: Resolved) -> Any:
        """One row per plan: workers, threads each, and every worker's CPUs (or unpinned)."""
        import pandas as pd

        rows = []
        for p in plans:
            slices = p.slices(resolved.topology)
            rows.append({"plan": p.label, "dispatch": p.dispatch, "workers": p.workers,
                         "threads each": "ORT default" if p.threads is None else p.threads,
                         "batch": p.batch,
                         "CPUs per worker": " | ".join(format_cpulist(s) for s in slices)
                         if slices else "unpinned", "key": p.key()})
        return pd.DataFrame(rows)

    def measure(self, resolved: Resolved, plans: list, **kw: Any) -> ServingResults:
        """Serve every plan under load into the run folder (resumable); the results."""
        from coresweep.serving.sweep import serve_sweep

        v = resolved.values
        model_dir = self.model_dir(resolved, build=True)
        store = serve_sweep(plans, self.load(resolved, model_dir), v["run_dir"],
                            model_dir=model_dir, runtime=first(v["runtime"]),
                            topo=resolved.topology, **kw)
        return self.results(store, plans)

    def model_dir(self, resolved: Resolved, *, build: bool) -> str:
        """The model the workers load: the serving runtime's format (the first of
        ``runtime``; llamacpp serves the GGUF)."""
        from coresweep.engines import model_format
        from coresweep.models import resolve_model

        v = resolved.values
        return str(resolve_model(v["model"], v["precision"], build=build,
                                 fmt=model_format(first(v["runtime"]))))

    def load(self, resolved: Resolved, model_dir: str) -> Any:
        from coresweep.engines import make_prompt

        v = resolved.values
        prompt = (v["prompt_text"] if not common.uses_synthetic_prompt(v)
                  else make_prompt(model_dir, first(v["prompt_tokens"])))
        return _load(v, prompt)

    def sizing(self, resolved: Resolved) -> Any:
        """The Load every plan runs, without its prompt: what the budget planner estimates."""
        return _load(resolved.values, prompt=[])

    def load_shape(self, resolved: Resolved) -> list[tuple[str, float, int]]:
        """(mode, level, requests) of every load level a plan runs: closed-loop users, then
        open-loop fractions of the plan's peak request rate (the budget planner sizes them);
        requests is the most the level may run (Load.cap)."""
        load = self.sizing(resolved)
        return [(m, lv, load.cap(m, lv)) for m, lv in
                [("closed", float(c)) for c in load.concurrency]
                + [("open", float(f)) for f in load.poisson_load]]

    def results(self, store: Any, plans: list) -> ServingResults:
        from coresweep.analysis.serving import level_summary, with_roles

        keys = {p.key() for p in plans}

        def part(table: str) -> Any:
            df = store.load(table)
            return df[df["plan_key"].isin(keys)].reset_index(drop=True) if len(df) else df

        req, itl, samples = part("serve_requests"), part("serve_itl"), part("serve_samples")
        return ServingResults(requests=req, itl=itl, samples=samples,
                              workers=part("serve_workers"), failures=part("serve_failures"),
                              summary=with_roles(level_summary(req, itl, samples), req),
                              plans=list(plans))

    def placement_table(self, res: ServingResults) -> Any:
        """Per plan and worker slot: the CPUs planned and read back from /proc, and the verdict
        (the last health reading of each plan)."""
        import pandas as pd

        w = res.workers
        if w is None or not len(w):
            return pd.DataFrame()
        last = w.drop_duplicates(["plan_key", "slot"], keep="last")
        cols = ["plan", "slot", "pid", "plan_cpus", "allowed_cpus", "os_threads", "alive",
                "placement_ok"]
        return last[[c for c in cols if c in last]].reset_index(drop=True)

    def worker_share(self, res: ServingResults) -> Any:
        """Per plan and level: the requests each worker slot served, the imbalance and the time
        requests waited while a worker was idle and another busy (flagged above 2 % of request
        time)."""
        from coresweep.analysis.serving import worker_requests

        r = res.requests
        if r is None or not len(r):
            return r
        counts = worker_requests(r).pivot_table(index=["plan", "mode", "level"],
                                                columns="worker", values="requests")
        counts = counts.rename(columns=lambda w: f"worker {w}").reset_index()
        spread = res.summary[["plan", "mode", "level", "imbalance", "idle_wait_pct",
                              "idle_wait_flag"]]
        return counts.merge(spread, on=["plan", "mode", "level"], how="left")

    def verified_plans(self, res: ServingResults) -> list[str]:
        """Keys of the plans whose every worker's placement was verified at every reading."""
        w = res.workers
        if w is None or not len(w):
            return []
        ok = w.groupby("plan_key")["placement_ok"].all()
        return [k for k, v in ok.items() if v]

    def deployment_files(self, plan: Any, resolved: Resolved) -> dict[str, str]:
        """File name → text of the deployment of ``plan`` (gunicorn.conf.py, haproxy.cfg when
        it dispatches with HAProxy, run.sh), exactly as `coresweep serve` runs it; the only path
        of this machine in it is the model's."""
        from coresweep.serving.deploy import deployment_files

        v = resolved.values
        model_dir = self.model_dir(resolved, build=False)
        return deployment_files(plan.config(model_dir, resolved.topology,
                                            runtime=first(v["runtime"]),
                                            model_name=str(v["model"])))

    def recommendation(self, res: ServingResults, resolved: Resolved) -> str:
        """Markdown: the one decision (analysis.decision) over every closed-loop level without
        errors of the verified plans — the most tok/s, tied levels by the lower p99 TTFT, the
        controls beside it — and the command that serves it."""
        from coresweep.analysis.decision import decide
        from coresweep.analysis.serving import budget_points, knees

        s = res.summary
        if not len(s):
            return "No serving level finished: no recommendation."
        d = decide(budget_points(s, float("inf"), self.verified_plans(res)), "tok_s",
                   cost=("ttft_p99_s",))
        controls = "".join(f"\n- {c}" for c in d.controls)
        if d.pick is None:
            return "No verified plan finished a load level without errors: no recommendation."
        best, v = d.pick, resolved.values
        k = knees(s).set_index("plan_key").loc[best["plan_key"]]
        batch = int(best.get("batch", 1) or 1)
        return (f"Most aggregate throughput ({d.status}): {d.sentence()} Its knee is at "
                f"{int(k['knee_concurrency'])} users.{controls}\n\nServe it with:\n\n"
                f"```\ncoresweep serve --model {v['model']} --precision {v['precision']} "
                f"--workers {int(best['workers'])} --threads {int(best['threads'])}"
                + (f" --batch {batch}" if batch > 1 else "") + "\n```\n"
                "(`--write-config DIR` writes the same deployment: gunicorn.conf.py, haproxy.cfg "
                "and run.sh.)")


def _load(v: Mapping[str, Any], prompt: list[int] | str) -> Any:
    """The Load of the study's values (what every level sends, and how many requests)."""
    from coresweep.serving.sweep import Load

    return Load(prompt=prompt, max_tokens=v["gen_tokens"], concurrency=v["concurrency"],
                poisson_load=v["poisson_load"], requests_per_level=v["requests_per_level"],
                rounds_per_user=v["rounds_per_user"],
                max_requests_per_level=v["max_requests_per_level"],
                ttft_ci_target=v["ttft_ci_target"], level_timeout_s=v["level_timeout_s"],
                max_queue=max(64, 4 * max(v["concurrency"])), warmup=v["warmup"],
                sample_interval_s=v["sample_interval_s"])


STUDY = ServingStudy()
