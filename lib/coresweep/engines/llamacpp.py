"""The `llamacpp` engine: greedy generation on llama.cpp's C API (llama-cpp-python's ctypes
binding) on a GGUF of the same checkpoint the ONNX runtimes read (coresweep.models.gguf).

The loop is llama-bench's: one ``llama_decode`` of the prompt (chunks of ``n_batch`` tokens, as
llama-bench's prompt test), then one ``llama_decode`` of one token per step, each returning the
last position's logits; the token is the arg-max with every end-of-generation id masked (exactly
N tokens). Context parameters are llama.cpp's defaults (the same as llama-bench's: n_batch 2048,
n_ubatch 512, f16 KV cache, flash attention "auto") with n_ctx = prompt + N, made before the clock
starts and kept for the next generation that fits.

Threads: ``n_threads`` (decode: one token per llama_decode) = ``threads``, ``n_threads_batch``
(the prompt) = ``prompt_threads`` or ``threads``. llama-cpp-python's build uses OpenMP (ggml's
threads are libgomp's team, created by the thread that decodes and inheriting its CPU mask). The
engine attaches no ggml threadpool and calls no llama_numa_init, so llama.cpp sets no affinity of
its own: its cpu_mask / strict_cpu (a threadpool's per-thread masks, which in an OpenMP build each
team thread applies with pthread_setaffinity_np, overriding the process mask) and its numa modes
(distribute / isolate pin threads to whole nodes on a multi-node machine; numactl keeps the mask
the process started with) stay unused, and the worker's mask is the only one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from coresweep.engines.base import Engine, Generation, token_sink
from coresweep.engines.session import SessionConfig
from coresweep.errors import ModelError


class LlamaCppEngine(Engine):
    """Greedy generation on llama.cpp (llama_decode per step) on a GGUF."""

    name = "llamacpp"
    model_format = "gguf"
    package = "llama-cpp-python"

    @classmethod
    def check_session(cls, session: SessionConfig) -> None:
        """llama.cpp takes a thread count for decode and one for the prompt; onnxruntime's own
        options (spinning, pool-thread affinities, ...) have no counterpart here."""
        if session.threads is None:
            raise ModelError("runtime llamacpp has no 'ort-default' mode (that is onnxruntime's "
                             "own thread count): give an explicit thread count")
        changed = session.ort.changed()
        if changed:
            names = ", ".join(f"{k}={v!r}" for k, v in sorted(changed.items()))
            raise ModelError(f"runtime llamacpp cannot set {names}: these are onnxruntime's "
                             "session options (runtime ort); pin_threads sets "
                             "onnxruntime's pool-thread affinities")

    def __init__(self, model_dir, session: SessionConfig, *,
                 eos_token_ids: Sequence[int] | None = None):
        super().__init__(model_dir, session, eos_token_ids=eos_token_ids)
        if self.info.format != "gguf":
            raise ModelError(f"{self.info.dir!r} holds no GGUF model: runtime llamacpp runs "
                             "GGUF files (a preset is converted for it)")
        self.model = self.ctx = self.vocab = None
        self.n_vocab = 0
        self._n_ctx = 0
        self._eog: list[int] = []

    def version(self) -> str:
        import llama_cpp

        return f"{super().version()} (llama.cpp {llama_cpp.llama_version().decode()})"

    def loaded(self) -> bool:
        return self.model is not None

    def load(self) -> float:
        import logging

        import llama_cpp

        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # its stderr logger
        t0 = time.perf_counter()
        llama_cpp.llama_backend_init()
        self.model = llama_cpp.llama_model_load_from_file(
            self.info.onnx_path.encode(), llama_cpp.llama_model_default_params())
        if not self.model:
            raise ModelError(f"llama.cpp could not load {self.info.onnx_path!r}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.load_seconds = time.perf_counter() - t0
        # every end-of-generation id llama.cpp knows (eos, eot, <|im_end|>, ...), and the model's
        # own end-of-sequence ids: never chosen, so exactly N tokens come out
        eog = {t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, t)}
        self._eog = sorted(eog | {e for e in self.eos_token_ids if 0 <= e < self.n_vocab})
        return self.load_seconds

    def _context(self, n_ctx: int) -> Any:
        """A context of at least ``n_ctx`` positions with the session's thread counts (the last
        one when it is large enough), its KV cache cleared."""
        import llama_cpp

        if self.ctx is None or self._n_ctx < n_ctx:
            if self.ctx is not None:
                llama_cpp.llama_free(self.ctx)
            params = llama_cpp.llama_context_default_params()
            params.n_ctx = n_ctx
            params.n_threads = self.session_config.threads
            params.n_threads_batch = self.session_config.batch_threads
            self.ctx = llama_cpp.llama_init_from_model(self.model, params)
            if not self.ctx:
                raise ModelError(f"llama.cpp could not make a context of {n_ctx} positions")
            self._n_ctx = int(llama_cpp.llama_n_ctx(self.ctx))
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)
        return self.ctx

    def _argmax(self, ctx: Any) -> int:
        """The last position's most likely token, end-of-generation ids masked."""
        import llama_cpp
        import numpy as np

        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1),
                                    shape=(self.n_vocab,))
        if self._eog:
            row[self._eog] = -np.inf  # llama.cpp's output buffer, rewritten by the next decode
        return int(row.argmax())

    def _prompt_batches(self, ids: list[int], n_batch: int) -> tuple[Any, list[Any]]:
        """The prompt as llama_batch views of at most ``n_batch`` tokens (llama_batch_get_one:
        positions follow the KV cache, logits for each view's last token), and the array they
        point into (keep it alive while they are used)."""
        import ctypes

        import llama_cpp

        arr = (llama_cpp.llama_token * len(ids))(*ids)
        size = ctypes.sizeof(llama_cpp.llama_token)
        views = []
        for i in range(0, len(ids), n_batch):
            ptr = ctypes.cast(ctypes.addressof(arr) + i * size,
                              ctypes.POINTER(llama_cpp.llama_token))
            views.append(llama_cpp.llama_batch_get_one(ptr, min(n_batch, len(ids) - i)))
        return arr, views

    def generate(self, prompt_ids: Sequence[int], gen_tokens: int, *,
                 on_token: Callable[[int], None] | None = None) -> Generation:
        import llama_cpp

        ids = self._ready(prompt_ids, gen_tokens)
        p = len(ids)
        ctx = self._context(p + gen_tokens)
        arr, prompt = self._prompt_batches(ids, int(llama_cpp.llama_n_batch(ctx)))  # noqa: F841
        step = (llama_cpp.llama_token * 1)()
        one = llama_cpp.llama_batch_get_one(step, 1)
        decode, argmax = llama_cpp.llama_decode, self._argmax
        tokens: list[int] = []
        token_ns: list[int] = []
        keep = token_sink(tokens, on_token)

        start = time.perf_counter_ns()
        for batch in prompt:
            _decoded(decode(ctx, batch))
        tok = argmax(ctx)
        token_ns.append(time.perf_counter_ns())
        keep(tok)
        for _ in range(gen_tokens - 1):
            step[0] = tok
            _decoded(decode(ctx, one))
            tok = argmax(ctx)
            token_ns.append(time.perf_counter_ns())
            keep(tok)
        return Generation(tokens=tokens, start_ns=start, token_ns=token_ns, prompt_tokens=p,
                          engine=self.name, extra={"n_ctx": self._n_ctx})


def _decoded(rc: int) -> None:
    """llama_decode's status: 0 is success, anything else stops the generation."""
    if rc != 0:
        raise ModelError(f"llama_decode returned {rc} (1: no KV cache slot; < 0: error)")
