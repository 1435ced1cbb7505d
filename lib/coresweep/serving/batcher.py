"""One worker decoding several requests together: the engine's BatchDecoder driven by one thread.

Requests wait in a queue. When the batch is empty, the first request opens it and the batcher
gathers what else arrives within ``window_s`` (up to ``slots``); each request's prompt runs on its
own (its first token streams at once), then every step decodes all of them together, one token
each. ``policy``:

- ``static`` — requests that arrive while a batch runs wait until it has finished (what
  onnxruntime-genai's og.Engine does on CPU);
- ``continuous`` — they join at the next step while a slot is free (their prompt runs between two
  steps of the others), and a finished request's slot is free at once.

A request leaves its batch when it has its tokens, when its client went away (``stop``) or when
its deadline passed (waiting included); the others go on. An error inside the engine fails the
requests of that batch and starts a fresh decoder: the worker keeps serving.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

POLICIES = ("continuous", "static")


class Stopped(Exception):
    """A request left its batch before its last token: its client went away, or time ran out."""


@dataclass
class Job:
    """One request: its prompt, how many tokens, where they go and when it must be done."""

    ids: list[int]
    n: int
    emit: Callable[[int], None]  # called with each token, in the batcher's thread
    stop: threading.Event
    deadline: float  # time.monotonic()
    timing: dict[str, Any]
    future: Future = field(default_factory=Future)
    tokens: list[int] = field(default_factory=list)
    seq: int | None = None


@dataclass
class Done:
    """What a finished job's future holds (the app reads ``tokens``, as of a Generation)."""

    tokens: list[int]


class Batcher:
    """The batch loop of one worker (see the module docstring); ``on_change(active, waiting)``
    is called when a request joins or leaves (the worker's /health report)."""

    def __init__(self, make_decoder: Callable[[], Any], slots: int, *, policy: str = "continuous",
                 window_s: float = 0.02, on_change: Callable[[int, int], None] | None = None):
        if policy not in POLICIES:
            raise ValueError(f"batching policy {policy!r}; valid: {', '.join(POLICIES)}")
        self.make_decoder, self.slots, self.policy = make_decoder, slots, policy
        self.window_s = window_s
        self.on_change = on_change or (lambda active, waiting: None)
        self.decoder = make_decoder()
        self.jobs: dict[int, Job] = {}  # sequence id -> job
        self.queue: queue.Queue[Job] = queue.Queue()
        self.served = 0
        self._closing = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="coresweep-batch", daemon=True)
        self.thread.start()

    @property
    def active(self) -> int:
        return len(self.jobs)

    def submit(self, job: Job) -> Future:
        self.queue.put(job)
        self.on_change(self.active, self.queue.qsize())
        return job.future

    def close(self) -> None:
        self._closing.set()
        self.thread.join(timeout=5)

    # -- the loop -------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._closing.is_set():
            try:
                if not self.jobs:
                    self._open()
                elif self.policy == "continuous":
                    self._admit_waiting()
                if self.jobs:
                    self._step()
            except Exception as exc:  # the engine failed: this batch fails, the worker serves on
                self._fail_all(exc)

    def _open(self) -> None:
        """Wait for a first request, then gather what arrives within the window."""
        try:
            first = self.queue.get(timeout=0.2)
        except queue.Empty:
            return
        batch, until = [first], time.monotonic() + self.window_s
        while len(batch) < self.slots and (left := until - time.monotonic()) > 0:
            try:
                batch.append(self.queue.get(timeout=left))
            except queue.Empty:
                break
        for job in batch:
            self._admit(job)

    def _admit_waiting(self) -> None:
        while self.active < self.slots:
            try:
                self._admit(self.queue.get_nowait())
            except queue.Empty:
                return

    def _admit(self, job: Job) -> None:
        """Run the job's prompt on a free slot and send its first token (or drop it: gone,
        or out of time while it waited)."""
        why = self._why_stop(job)
        if why:
            job.future.set_exception(Stopped(f"{why} before a batch slot was free"))
            return
        job.timing["t_start"] = time.time()
        job.seq, tok = self.decoder.admit(job.ids, job.n)
        self.jobs[job.seq] = job
        job.timing["batch"] = self.active
        self.on_change(self.active, self.queue.qsize())
        self._deliver(job, tok)

    def _step(self) -> None:
        for seq, tok in self.decoder.step().items():
            self._deliver(self.jobs[seq], tok)

    def _deliver(self, job: Job, tok: int) -> None:
        """Hand the job its token; finish it when it has them all or must stop."""
        why = self._why_stop(job)
        if why:
            return self._leave(job, Stopped(why))
        job.tokens.append(tok)
        try:
            job.emit(tok)
        except Exception as exc:  # its stream is gone (the event loop closed): it alone stops
            return self._leave(job, Stopped(f"its stream failed: {exc}"))
        if len(job.tokens) >= job.n:
            self._leave(job, None)
        return None

    @staticmethod
    def _why_stop(job: Job) -> str:
        if job.stop.is_set():
            return "the client disconnected"
        if time.monotonic() > job.deadline:
            return "request_timeout_s ran out"
        return ""

    def _leave(self, job: Job, error: BaseException | None) -> None:
        self.decoder.release(job.seq)
        self.jobs.pop(job.seq, None)
        job.timing["t_end"] = time.time()
        self.served += error is None
        if error is None:
            job.future.set_result(Done(list(job.tokens)))
        else:
            job.future.set_exception(error)
        self.on_change(self.active, self.queue.qsize())

    def _fail_all(self, exc: Exception) -> None:
        for job in list(self.jobs.values()):
            job.timing["t_end"] = time.time()
            if not job.future.done():
                job.future.set_exception(exc)
        self.jobs.clear()
        self.decoder = self.make_decoder()
        self.on_change(0, self.queue.qsize())
