"""The motivating study's eight claims, checked on this machine from a run's results: each gets a
verdict — holds / does not hold / inconclusive here (within noise) / cannot be tested here — the
numbers behind it, and the report that shows the evidence. Speeds are compared by their 95 %
intervals (analysis.decision.relation): clearly better or worse when the intervals do not overlap,
the same when both lie within 5 % of each other, inconclusive when they overlap but are wider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from coresweep.analysis.decision import BETTER, EQUIVALENT, INCONCLUSIVE, WORSE, relation

HOLDS, FAILS, UNTESTABLE = "holds", "does not hold", "cannot be tested here"
WITHIN_NOISE = "inconclusive here (within noise)"


@dataclass
class Evidence:
    """What the claims are judged on (each part may be empty)."""

    threads: pd.DataFrame  # the thread sweep's summary (with roofline columns when measured)
    affinity: pd.DataFrame  # the placement study's summary (role_* columns)
    smt: pd.DataFrame
    serving: pd.DataFrame  # serving level summary
    topo: Any
    links: dict[str, str]  # study name -> its report's file name
    decode: Any = None  # the run's decode decision (analysis.decision.Decision)


def _claim(n: int, text: str, verdict: str, why: str, link: str | None) -> dict[str, Any]:
    return {"claim": n, "the study says": text, "verdict": verdict, "why": why,
            "evidence": f"[{link.removesuffix('.html')}]({link})" if link else "–"}


def _judged(a: Any, b: Any, m: str = "decode_tok_s") -> str:
    """The verdict of "a beats b": holds when clearly better, does not hold when clearly worse
    or the same within 5 %, inconclusive when the intervals are too wide to say."""
    rel = relation(a, b, m)
    return {BETTER: HOLDS, WORSE: FAILS, EQUIVALENT: FAILS, INCONCLUSIVE: WITHIN_NOISE}[rel]


def _tok(r: Any, m: str = "decode_tok_s") -> str:
    from coresweep.analysis.decision import point_text

    return point_text(r, m)


def _two(s: pd.DataFrame | None, column: str, first: str,
         second: str) -> tuple[pd.Series, pd.Series] | None:
    """The first row whose ``column`` is ``first`` and the first whose is ``second``."""
    if s is None or not len(s) or column not in s:
        return None
    a, b = s[s[column] == first], s[s[column] == second]
    return (a.iloc[0], b.iloc[0]) if len(a) and len(b) else None


def best_threads_are_physical_cores(ev: Evidence) -> dict[str, Any]:
    """The threads = physical cores point against the decided best."""
    text, link = "best threads = physical cores", ev.links.get("threads")
    d, cores = ev.decode, ev.topo.physical_core_count()
    if d is None or d.pick is None:
        return _claim(1, text, UNTESTABLE, "no eligible thread-sweep point", link)
    s = ev.threads
    at = s[s["threads"].astype(int) == cores] if len(s) else s
    if not len(at):
        return _claim(1, text, UNTESTABLE, f"no point at {cores} threads (the physical cores)",
                      link)
    row, pick = at.iloc[0], d.pick
    why = (f"decided {d.status}: {pick.get('label')} {_tok(pick)}; {cores} physical core(s): "
           f"{_tok(row)}")
    if int(pick["threads"]) == cores:
        return _claim(1, text, HOLDS, why, link)
    rel = relation(row, d.best, "decode_tok_s")
    if rel == WORSE:
        return _claim(1, text, FAILS, why, link)
    if rel == EQUIVALENT:
        return _claim(1, text, HOLDS, why + " — as fast as the best within 5 %, though "
                      f"{pick['threads']} thread(s) do as well", link)
    return _claim(1, text, WITHIN_NOISE, why, link)


def oversubscription_hurts(ev: Evidence) -> dict[str, Any]:
    text, link = "more threads than cores hurts", ev.links.get("threads")
    s = ev.threads
    over = s[s["oversubscribed"].astype(bool)] if len(s) and "oversubscribed" in s else s
    fit = s[~s["oversubscribed"].astype(bool)] if len(over) else s
    if not len(over) or not len(fit):
        return _claim(2, text, UNTESTABLE, "no oversubscribed point was measured", link)
    best, worst = fit.loc[fit["decode_tok_s_median"].idxmax()], over.iloc[0]
    return _claim(2, text, _judged(best, worst), f"{int(worst['threads'])} threads: "
                  f"{_tok(worst)} against {_tok(best)} with {int(best['threads'])}", link)


def omp_num_threads_sets_threads(ev: Evidence) -> dict[str, Any]:
    text, link = "OMP_NUM_THREADS sets the thread count", ev.links.get("affinity")
    pair = _two(ev.affinity, "role_control", "omp-only", "ort-default")
    if pair is None:
        return _claim(3, text, UNTESTABLE, "the controls were not both run", link)
    omp, ort = pair
    asked, busy = int(omp["role_omp_num_threads"]), float(omp["busy_threads"])
    verdict = HOLDS if busy == asked else FAILS
    return _claim(3, text, verdict, f"asked for {asked}, {busy:g} busy thread(s) (ORT default: "
                  f"{float(ort['busy_threads']):g}); ORT's knob is intra_op_num_threads", link)


def pinning_helps(ev: Evidence) -> dict[str, Any]:
    text, link = "pinning with taskset helps", ev.links.get("affinity")
    pair = _two(ev.affinity, "role_strategy", "physical", "none")
    if pair is None:
        return _claim(4, text, UNTESTABLE, "needs the physical and none strategies", link)
    a, b = pair
    return _claim(4, text, _judged(a, b), f"pinned {_tok(a)}, unpinned {_tok(b)}", link)


def smt_off_helps(ev: Evidence) -> dict[str, Any]:
    text, link = "SMT off helps", ev.links.get("smt")
    if not ev.topo.has_smt():
        return _claim(5, text, UNTESTABLE, f"no SMT on this machine ({ev.topo.smt_note()})", link)
    s = ev.smt
    if not len(s) or "role_smt" not in s:
        return _claim(5, text, UNTESTABLE, "no SMT pair was measured", link)
    off, on = s[s["role_smt"] == "off"], s[s["role_smt"] == "on"]
    same = on[on["threads"].isin(off["threads"])]
    if not len(off) or not len(same):
        return _claim(5, text, UNTESTABLE, "no pair at equal thread counts", link)
    a, b = off.iloc[-1], same[same["threads"] == off.iloc[-1]["threads"]].iloc[0]
    return _claim(5, text, _judged(a, b), f"{int(a['threads'])} threads: SMT off {_tok(a)}, "
                  f"on {_tok(b)}", link)


def numa_local_helps(ev: Evidence) -> dict[str, Any]:
    nodes = [n for n, v in ev.topo.numa_nodes.items() if set(v.cpus) & set(ev.topo.allowed)]
    why = (f"{len(nodes)} NUMA node(s) with usable CPUs: nothing to compare"
           if len(nodes) < 2 else "run the affinity study with strategies numa:0 and scatter")
    return _claim(6, "NUMA-local placement helps", UNTESTABLE, why, ev.links.get("affinity"))


def pinned_workers_serve_better(ev: Evidence) -> dict[str, Any]:
    """Pinned plans behind HAProxy (each request to an idle worker): one worker against the best
    of several at the highest closed-loop concurrency, on aggregate tok/s intervals; one worker
    batching those users (when 04 measured it) and the study's own setup (one shared socket)
    beside it."""
    text, link = ("several pinned workers serve concurrent users better than one",
                  ev.links.get("serving"))
    s = ev.serving
    batch = s["batch"].fillna(1).astype(int) if len(s) and "batch" in s else 1
    closed = s[(s["mode"] == "closed") & s["pinned"].astype(bool) & (s["dispatch"] == "haproxy")
               & (s["errors"] == 0)] if len(s) and "dispatch" in s else s.iloc[0:0]
    batched = closed[batch[closed.index] > 1] if isinstance(batch, pd.Series) else closed[:0]
    cand = closed.drop(batched.index)
    if not len(cand) or cand["workers"].nunique() < 2:
        return _claim(7, text, UNTESTABLE, "needs pinned plans with 1 and several workers "
                      "behind load-aware dispatch", link)
    top = cand[cand["level"] == cand["level"].max()].assign(tok_s_median=lambda d: d["tok_s"])
    one, many = top[top["workers"] == 1], top[top["workers"] > 1]
    if not len(one) or not len(many):
        return _claim(7, text, UNTESTABLE, "needs both at the highest concurrency", link)
    a, b = many.loc[many["tok_s"].idxmax()], one.iloc[0]
    why = (f"{int(a['level'])} users, each request to an idle worker (HAProxy leastconn, one "
           f"request per worker): {a['plan']} {_tok(a, 'tok_s')}, {b['plan']} "
           f"{_tok(b, 'tok_s')}")
    return _claim(7, text, _judged(a, b, "tok_s"), why + _batched(batched, a)
                  + _study_setup(s, int(a["level"])), link)


def _batched(batched: pd.DataFrame, best: pd.Series) -> str:
    """One worker batching the same users against the best several-worker plan (relation())."""
    at = batched[batched["level"] == best["level"]]
    if not len(at):
        return ""
    r = at.loc[at["tok_s"].idxmax()].copy()
    r["tok_s_median"] = r["tok_s"]
    rel = relation(r, best.copy(), "tok_s")
    word = {BETTER: "more than", WORSE: "less than"}.get(rel, "tied within noise with")
    return (f"; one worker batching them instead ({r['plan']}, continuous batching): "
            f"{_tok(r, 'tok_s')}, {word} {best['plan']}")


def _study_setup(s: pd.DataFrame, level: int) -> str:
    """The motivating study's own setup at the same concurrency: its tok/s and the share of
    request time requests waited while one of its workers sat idle."""
    if "role_control" not in s:
        return ""
    c = s[(s["role_control"] == "study") & (s["mode"] == "closed") & (s["level"] == level)]
    if not len(c):
        return ""
    r = c.iloc[0].copy()
    r["tok_s_median"] = r["tok_s"]
    waited = f", requests waited {r['idle_wait_pct']:.0f} % of their time while a worker " \
        "idled" if "idle_wait_pct" in r and r["idle_wait_pct"] == r["idle_wait_pct"] else ""
    return (f"; the study's own setup (gunicorn, one shared socket, {r['plan']}): "
            f"{_tok(r, 'tok_s')}{waited}")


def decode_is_bandwidth_bound(ev: Evidence) -> dict[str, Any]:
    """At the decided decode point: its achieved bandwidth's interval against 70 % of the
    ceiling measured on the same CPUs."""
    from coresweep.analysis.roofline import BOUND_FRACTION

    text, link = "decode is limited by memory bandwidth", ev.links.get("threads")
    s = ev.threads
    if not len(s) or "pct_of_ceiling" not in s or s["pct_of_ceiling"].isna().all():
        return _claim(8, text, UNTESTABLE, "no bandwidth was measured at these placements", link)
    key = ev.decode.pick.get("config_key") if ev.decode is not None and ev.decode.pick else None
    rows = s[(s["config_key"] == key) & s["pct_of_ceiling"].notna()] if key else s.iloc[0:0]
    r = rows.iloc[0] if len(rows) else s.loc[s["decode_tok_s_median"].idxmax()]
    scale = r["pct_of_ceiling"] / r["decode_tok_s_median"]
    lo, hi = r["decode_tok_s_ci_lo"] * scale, r["decode_tok_s_ci_hi"] * scale
    bound = 100 * BOUND_FRACTION
    verdict = HOLDS if lo >= bound else FAILS if hi < bound else WITHIN_NOISE
    return _claim(8, text, verdict, f"{r.get('label')}: decode reads {r['decode_gb_s']:.1f} "
                  f"GB/s, {r['pct_of_ceiling']:.0f} % [{lo:.0f}–{hi:.0f} %] of the "
                  f"{r['ceiling_gb_s']:.1f} GB/s measured on the same CPUs (bound from "
                  f"{bound:.0f} %)", link)


CHECKS = (best_threads_are_physical_cores, oversubscription_hurts, omp_num_threads_sets_threads,
          pinning_helps, smt_off_helps, numa_local_helps, pinned_workers_serve_better,
          decode_is_bandwidth_bound)


def check_claims(ev: Evidence) -> pd.DataFrame:
    return pd.DataFrame([check(ev) for check in CHECKS])
