"""The batch loop (serving.batcher) on a fake decoder, no model: who joins when (static against
continuous), each request its own tokens in order, a stopped or late request leaving alone, and
an engine error failing its batch while the worker serves on."""

from __future__ import annotations

import threading
import time

import pytest
from coresweep.serving.batcher import Batcher, Job, Stopped


class FakeDecoder:
    """Each sequence's tokens are 1000 * (its prompt's first id) + its position; a step takes
    ``step_s``; every admit and step is logged as (what, active rows)."""

    def __init__(self, slots: int, step_s: float = 0.005, fail_at: int | None = None):
        self.slots, self.step_s, self.fail_at = slots, step_s, fail_at
        self.seqs: dict[int, list] = {}
        self.log: list[tuple[str, int]] = []
        self.steps = 0
        self._next = 0

    @property
    def active(self) -> int:
        return len(self.seqs)

    def admit(self, ids, n):
        assert self.active < self.slots
        seq, self._next = self._next, self._next + 1
        self.seqs[seq] = [ids[0], 0]
        self.log.append(("admit", self.active))
        return seq, 1000 * ids[0]

    def step(self):
        self.steps += 1
        if self.fail_at is not None and self.steps == self.fail_at:
            raise RuntimeError("engine failed")
        time.sleep(self.step_s)
        self.log.append(("step", self.active))
        out = {}
        for seq, st in self.seqs.items():
            st[1] += 1
            out[seq] = 1000 * st[0] + st[1]
        return out

    def release(self, seq):
        self.seqs.pop(seq, None)


def job(first: int, n: int, *, timeout_s: float = 30.0, stop=None):
    got: list[int] = []
    return Job([first, 7, 7], n, got.append, stop or threading.Event(),
               time.monotonic() + timeout_s, {}), got


def run(policy: str, slots: int, jobs, gap_s: float = 0.0, **kw):
    decoders = []

    def make():
        decoders.append(FakeDecoder(slots, **kw))
        return decoders[-1]

    b = Batcher(make, slots, policy=policy, window_s=0.05)
    futs = []
    for j, _ in jobs:
        futs.append(b.submit(j))
        time.sleep(gap_s)
    for f in futs:
        f.exception(timeout=10)
    b.close()
    return futs, decoders


@pytest.mark.parametrize("policy", ["static", "continuous"])
def test_every_request_gets_its_own_tokens_in_order(policy):
    jobs = [job(i, 5 + i) for i in range(1, 6)]
    futs, _ = run(policy, 3, jobs)
    for i, ((j, got), f) in enumerate(zip(jobs, futs, strict=True), start=1):
        expect = [1000 * i + k for k in range(5 + i)]
        assert got == expect and f.result().tokens == expect
        assert j.timing["t_start"] <= j.timing["t_end"] and 1 <= j.timing["batch"] <= 3


def test_static_waits_for_the_batch_continuous_joins_at_the_next_step():
    late = 0.05  # the third request arrives while the first two decode
    for policy in ("static", "continuous"):
        jobs = [job(1, 30), job(2, 30), job(3, 5)]
        b = Batcher(lambda: FakeDecoder(3, step_s=0.005), 3, policy=policy, window_s=0.0)
        f1, f2 = b.submit(jobs[0][0]), b.submit(jobs[1][0])
        time.sleep(late)
        f3 = b.submit(jobs[2][0])
        for f in (f1, f2, f3):
            f.result(timeout=10)
        b.close()
        t3, t1 = jobs[2][0].timing, jobs[0][0].timing
        if policy == "static":
            assert t3["t_start"] >= t1["t_end"] and t3["batch"] == 1
        else:
            assert t3["t_start"] < t1["t_end"] and t3["batch"] == 3


def test_a_stopped_request_leaves_alone_and_a_late_one_is_refused():
    stop = threading.Event()
    keep, kept = job(1, 40)
    gone, got = job(2, 1000, stop=stop)
    b = Batcher(lambda: FakeDecoder(3), 3, window_s=0.05)
    f_keep, f_gone = b.submit(keep), b.submit(gone)
    while len(got) < 3:
        time.sleep(0.001)
    stop.set()
    with pytest.raises(Stopped, match="client disconnected"):
        f_gone.result(timeout=5)
    assert f_keep.result(timeout=5).tokens == [1000 + k for k in range(40)]
    assert len(got) < 40 and b.active == 0
    late, _ = job(3, 4, timeout_s=-1)  # its deadline passed before a slot was free
    with pytest.raises(Stopped, match="request_timeout_s ran out before a batch slot"):
        b.submit(late).result(timeout=5)
    b.close()


def test_an_engine_error_fails_its_batch_and_the_worker_serves_on():
    made = []

    def make():
        made.append(FakeDecoder(2, fail_at=3 if not made else None))
        return made[-1]

    b = Batcher(make, 2, window_s=0.05)
    a, b_ = job(1, 10), job(2, 10)
    fa, fb = b.submit(a[0]), b.submit(b_[0])
    for f in (fa, fb):
        with pytest.raises(RuntimeError, match="engine failed"):
            f.result(timeout=5)
    after, got = job(3, 4)
    assert b.submit(after).result(timeout=5).tokens == [3000, 3001, 3002, 3003]
    assert len(made) == 2 and b.active == 0
    b.close()


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="valid: continuous, static"):
        Batcher(lambda: FakeDecoder(2), 2, policy="dynamic")
