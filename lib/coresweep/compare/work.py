"""Is it the same work? Runs are compared only when their thread sweeps ran the same model graph
on the same prompt for the same number of generated tokens — which the token checksum proves:
greedy decoding of the same graph from the same prompt generates the same tokens. Runs that
differ are named with what differs, and left out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from coresweep.errors import CoresweepError


class IncomparableError(CoresweepError):
    """No two of the runs given did the same work."""


@dataclass(frozen=True)
class Work:
    """What a run's thread sweep computed (every field must agree for a comparison)."""

    model: str
    precision: str
    runtime: str  # the runtime of the curve compared (a run's first)
    prompt_tokens: int
    gen_tokens: int
    prompt_text: str
    checksums: tuple[str, ...]  # the generated tokens' checksums (one when the run agrees)

    def describe(self) -> str:
        text = f", prompt text {self.prompt_text[:40]!r}" if self.prompt_text else ""
        return (f"model {self.model} {self.precision} on {self.runtime}, prompt "
                f"{self.prompt_tokens} / gen "
                f"{self.gen_tokens} tokens{text}, token checksum {', '.join(self.checksums)}")


_FIELD_NAMES = {"model": "model", "precision": "precision", "runtime": "runtime",
                "prompt_tokens": "prompt tokens",
                "gen_tokens": "generated tokens", "prompt_text": "prompt text",
                "checksums": "token checksum"}


def work_of(run: Any) -> Work | None:
    """The work of a :class:`ComparedRun`'s thread sweep; None when it has no successful trial."""
    t = run.trials
    if t is None or not len(t) or "checksum" not in t:
        return None
    ok = t[t["ok"].astype(bool)] if "ok" in t else t
    if ok.empty:
        return None
    v = run.values
    runtime = str(ok["runtime"].iloc[0]) if "runtime" in ok else "ort"
    return Work(model=str(ok["model"].iloc[0]), precision=str(v.get("precision", "")),
                runtime=runtime,
                prompt_tokens=int(ok["prompt_tokens"].iloc[0]),
                gen_tokens=int(ok["gen_tokens"].iloc[0]),
                prompt_text=str(v.get("prompt_text") or ""),
                checksums=tuple(sorted(map(str, ok["checksum"].unique()))))


def differences(work: Work | None, reference: Work) -> list[str]:
    """What differs from the reference work, one "field: this vs reference" string each."""
    if work is None:
        return ["no successful thread-sweep trial (nothing measured to compare)"]
    a, b = asdict(work), asdict(reference)
    out = []
    for k, name in _FIELD_NAMES.items():
        if a[k] != b[k]:
            mine = ", ".join(a[k]) if k == "checksums" else a[k]
            theirs = ", ".join(b[k]) if k == "checksums" else b[k]
            out.append(f"{name} {mine!s} vs {theirs!s}")
    return out


def split_by_work(runs: Sequence[Any]) -> tuple[list[Any], list[tuple[Any, list[str]]], Work]:
    """(the runs compared, [(a run left out, what differs)], their work). The runs compared are
    the largest group doing the same work (ties: the group of the run given first);
    IncomparableError, naming each run's work, when no two runs did the same work."""
    works = [work_of(r) for r in runs]
    groups: dict[Work, list[int]] = {}
    for i, w in enumerate(works):
        if w is not None:
            groups.setdefault(w, []).append(i)
    best = max(groups.items(), key=lambda kv: (len(kv[1]), -kv[1][0]), default=None)
    if best is None or len(best[1]) < 2:
        lines = "; ".join(f"{r.name}: {w.describe() if w else 'no successful thread-sweep trial'}"
                          for r, w in zip(runs, works, strict=True))
        raise IncomparableError(
            "nothing to compare: no two runs did the same work (the same model graph, prompt "
            "and generated length, generating the same tokens) — " + lines)
    ref, members = best
    kept = [runs[i] for i in members]
    left = [(r, differences(w, ref)) for i, (r, w) in enumerate(zip(runs, works, strict=True))
            if i not in members]
    return kept, left, ref
