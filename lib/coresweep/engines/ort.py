"""The `ort` engine: greedy generation on plain onnxruntime with IOBinding."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from coresweep.engines.base import Engine, Generation, token_sink
from coresweep.engines.session import ORT_GRAPH_LEVELS, SessionConfig
from coresweep.errors import ModelError


class OrtEngine(Engine):
    """Greedy generation on plain onnxruntime with IOBinding."""

    name = "ort"
    batches = True
    serves_batches = True

    def __init__(self, model_dir, session: SessionConfig, *, kv_mode: str = "auto",
                 eos_token_ids: Sequence[int] | None = None):
        super().__init__(model_dir, session, eos_token_ids=eos_token_ids)
        if kv_mode not in ("auto", "shared", "concat"):
            raise ModelError(f"kv_mode={kv_mode!r}; valid: auto, shared, concat")
        self.kv_mode = ("shared" if self.info.shares_kv_buffer else "concat") if kv_mode == "auto" \
            else kv_mode
        self.session = None
        self._kv_alloc = "ort"
        self._buffers: dict = {}  # one shape's reusable buffers (see _generate_*)
        vocab = self.info.vocab_size or 0
        self._eos = [e for e in self.eos_token_ids if 0 <= e < vocab]

    def loaded(self) -> bool:
        return self.session is not None

    def load(self) -> float:
        import onnxruntime as ort

        t0 = time.perf_counter()
        self.session = ort.InferenceSession(self.info.onnx_path,
                                            session_options(self.session_config),
                                            providers=["CPUExecutionProvider"])
        self.load_seconds = time.perf_counter() - t0
        return self.load_seconds

    def generate(self, prompt_ids: Sequence[int], gen_tokens: int, *,
                 on_token: Callable[[int], None] | None = None) -> Generation:
        ids = self._ready(prompt_ids, gen_tokens)
        if self.kv_mode == "shared":
            return self._generate_shared(ids, gen_tokens, on_token)
        return self._generate_concat(ids, gen_tokens, on_token)

    # -- helpers
    @staticmethod
    def _bind_tokens(io, input_ids, mask, positions) -> None:
        """Bind one forward pass's token inputs (positions None: the graph takes none)."""
        io.bind_cpu_input("input_ids", input_ids)
        io.bind_cpu_input("attention_mask", mask)
        if positions is not None:
            io.bind_cpu_input("position_ids", positions)

    def _argmax(self, row) -> int:
        if self._eos:
            row[self._eos] = -float("inf")
        return int(row.argmax())

    def _np_dtype(self, name: str):
        import numpy as np

        return {"float32": np.float32, "float16": np.float16}.get(name, np.float32)

    def _logit_buffers(self, prompt_len: int, batch: int = 1):
        import onnxruntime as ort

        info = self.info
        dt = self._np_dtype(info.logits_dtype)
        vocab = info.vocab_size
        rows = 1 if info.logits_last_only else prompt_len
        pre = aligned_empty((batch, rows, vocab), dt)
        dec = aligned_empty((batch, 1, vocab), dt)
        for buf in (pre, dec):  # page-fault them here, not inside the timed prefill (39 MB at
            buf.fill(0)         # 64 prompt tokens x 151936 logits)
        return (pre, ort.OrtValue.ortvalue_from_numpy(pre),
                dec, ort.OrtValue.ortvalue_from_numpy(dec))

    def _shared_buffers(self, p: int, max_len: int, batch: int = 1):
        """Per layer one (key, value) buffer of `max_len` positions, bound as both the past input
        and the present output (GroupQueryAttention reads only the valid positions), and the
        logits buffers.

        Buffers are kept per shape and reused by the next generation of the same shape: fresh
        ones would be first touched (page-faulted) inside the timed prefill of every repetition
        (~3 % of TTFT measured on the 0.5B shape). The warm-up generation touches them once.
        """
        import numpy as np
        import onnxruntime as ort

        info = self.info
        key = (p, max_len, self._kv_alloc, batch)
        cached = self._buffers.get(key)
        if cached is None:
            kv_dt = self._np_dtype(info.kv_dtype)
            shape = (batch, info.kv_heads, max_len, info.head_dim)
            if self._kv_alloc == "numpy":  # kept for A/B tests: numpy's 16-byte aligned buffers
                kv_np = [(np.zeros(shape, kv_dt), np.zeros(shape, kv_dt))
                         for _ in range(info.num_layers)]
                kv = [(ort.OrtValue.ortvalue_from_numpy(k), ort.OrtValue.ortvalue_from_numpy(v))
                      for k, v in kv_np]
            else:  # onnxruntime's allocator (aligned), written once so that its pages are
                # mapped before the clock starts (the allocator hands out untouched memory)
                zeros = np.zeros(shape, kv_dt)
                kv = [(ort.OrtValue.ortvalue_from_shape_and_type(shape, kv_dt, "cpu", 0),
                       ort.OrtValue.ortvalue_from_shape_and_type(shape, kv_dt, "cpu", 0))
                      for _ in range(info.num_layers)]
                for pair in kv:
                    for ov in pair:
                        ov.update_inplace(zeros)
            self._buffers = {key: (kv, self._logit_buffers(p, batch))}
            cached = self._buffers[key]
        return cached

    def _token_inputs(self, ids: list[int], max_len: int, batch: int = 1):
        """Every token input of one generation, made before the clock starts: the prompt and its
        positions, one attention mask of `max_len` ones (each step binds a slice of it), and the
        1x1 token id and position that each decode step overwrites (one row per sequence of a
        batch). The positions are None when the graph takes none (``pos`` is still written each
        step: the loop stays branch-free)."""
        import numpy as np

        has_pos = self.info.has_position_ids
        prompt = np.asarray([ids] * batch, dtype=np.int64)
        mask = np.ones((batch, max_len), dtype=np.int64)
        prompt_pos = np.tile(np.arange(len(ids), dtype=np.int64), (batch, 1)) if has_pos else None
        step_ids = np.zeros((batch, 1), dtype=np.int64)
        pos = np.zeros((batch, 1), dtype=np.int64)
        return prompt, mask, prompt_pos, step_ids, pos, (pos if has_pos else None)

    def _bind_shared_kv(self, io, kv) -> None:
        """Bind each layer's one KV buffer as both its past and its present (written in place)."""
        for (pk, pv), (ok, ov), (k, v) in zip(self.info.past_names, self.info.present_names, kv,
                                               strict=True):
            io.bind_ortvalue_input(pk, k)
            io.bind_ortvalue_input(pv, v)
            io.bind_ortvalue_output(ok, k)
            io.bind_ortvalue_output(ov, v)

    def _bind_empty_past(self, io):
        """Bind a zero-length past to every layer (the prompt's pass starts from nothing). Returns
        the OrtValue: it holds the numpy array the binding points at, so keep it until the end."""
        import numpy as np
        import onnxruntime as ort

        info = self.info
        empty = np.zeros((1, info.kv_heads, 0, info.head_dim), dtype=self._np_dtype(info.kv_dtype))
        empty_ov = ort.OrtValue.ortvalue_from_numpy(empty)
        for pk, pv in info.past_names:
            io.bind_ortvalue_input(pk, empty_ov)
            io.bind_ortvalue_input(pv, empty_ov)
        return empty_ov

    # The two generation loops below are timed. Everything that can be bound or allocated is done
    # before `start`; the prefill and the decode loop are written out in each path on purpose (a
    # shared helper would add Python calls between the clock readings).
    def _generate_shared(self, ids: list[int], n: int, on_token: Any = None) -> Generation:
        sess = self.session
        p = len(ids)
        kv, (pre_np, pre_ov, dec_np, dec_ov) = self._shared_buffers(p, p + n)
        prompt, mask, prompt_pos, step_ids, pos, step_pos = self._token_inputs(ids, p + n)
        io = sess.io_binding()
        self._bind_shared_kv(io, kv)
        io.bind_ortvalue_output("logits", pre_ov)
        tokens: list[int] = []
        token_ns: list[int] = []
        keep = token_sink(tokens, on_token)

        start = time.perf_counter_ns()
        self._bind_tokens(io, prompt, mask[:, :p], prompt_pos)
        sess.run_with_iobinding(io)
        tok = self._argmax(pre_np[0, -1])
        token_ns.append(time.perf_counter_ns())
        keep(tok)
        io.bind_ortvalue_output("logits", dec_ov)
        for t in range(p, p + n - 1):
            step_ids[0, 0] = tok
            pos[0, 0] = t
            self._bind_tokens(io, step_ids, mask[:, : t + 1], step_pos)
            sess.run_with_iobinding(io)
            tok = self._argmax(dec_np[0, -1])
            token_ns.append(time.perf_counter_ns())
            keep(tok)
        return Generation(tokens=tokens, start_ns=start, token_ns=token_ns, prompt_tokens=p,
                          engine=self.name, extra={"kv_mode": "shared"})

    def _argmax_rows(self, rows):
        """The greedy token of every row of a (batch, vocab) logits view (EOS masked)."""
        if self._eos:
            rows[:, self._eos] = -float("inf")
        return rows.argmax(axis=1)

    def _generate_batch(self, ids: list[int], n: int, batch: int) -> Generation:
        """``batch`` copies of the prompt through the graph's batch dimension: one prefill of
        shape (batch, prompt), then one (batch, 1) step per token, every row at the same
        position (one attention mask for all). Timed like :meth:`_generate_shared`."""
        import numpy as np

        if self.kv_mode != "shared":
            raise ModelError("batch > 1 needs a GroupQueryAttention graph with one shared KV "
                             "buffer (the onnxruntime-genai builder's); this model concatenates "
                             "its KV cache: use batch=1")
        if not self.loaded():
            self.load()
        sess, p = self.session, len(ids)
        kv, (pre_np, pre_ov, dec_np, dec_ov) = self._shared_buffers(p, p + n, batch)
        prompt, mask, prompt_pos, step_ids, pos, step_pos = self._token_inputs(ids, p + n, batch)
        io = sess.io_binding()
        self._bind_shared_kv(io, kv)
        io.bind_ortvalue_output("logits", pre_ov)
        out = np.zeros((n, batch), dtype=np.int64)  # step x sequence
        token_ns: list[int] = []
        ones = mask.reshape(-1)  # every row's mask is all ones: a contiguous (batch, t) view

        start = time.perf_counter_ns()
        self._bind_tokens(io, prompt, ones[: batch * p].reshape(batch, p), prompt_pos)
        sess.run_with_iobinding(io)
        out[0] = self._argmax_rows(pre_np[:, -1])
        token_ns.append(time.perf_counter_ns())
        io.bind_ortvalue_output("logits", dec_ov)
        for i, t in enumerate(range(p, p + n - 1), start=1):
            step_ids[:, 0] = out[i - 1]
            pos[:, 0] = t
            self._bind_tokens(io, step_ids, ones[: batch * (t + 1)].reshape(batch, t + 1),
                              step_pos)
            sess.run_with_iobinding(io)
            out[i] = self._argmax_rows(dec_np[:, -1])
            token_ns.append(time.perf_counter_ns())
        seqs = out.T.tolist()
        return Generation(tokens=seqs[0], start_ns=start, token_ns=token_ns, prompt_tokens=p,
                          engine=self.name, extra={"kv_mode": "shared"}, sequences=seqs)

    def batch_decoder(self, slots: int):
        """A server's decoder of up to ``slots`` sequences (engines.ort_batch.OrtBatchDecoder)."""
        from coresweep.engines.ort_batch import OrtBatchDecoder

        if not self.loaded():
            self.load()
        return OrtBatchDecoder(self, slots)

    def _generate_concat(self, ids: list[int], n: int, on_token: Any = None) -> Generation:
        info, sess = self.info, self.session
        p = len(ids)
        # logits buffers reused per prompt length, as in the shared path (no page faults in TTFT)
        key = ("concat", p)
        if key not in self._buffers:
            self._buffers = {key: self._logit_buffers(p)}
        pre_np, pre_ov, dec_np, dec_ov = self._buffers[key]
        prompt, mask, prompt_pos, step_ids, pos, step_pos = self._token_inputs(ids, p + n)
        present_flat = [name for pair in info.present_names for name in pair]
        io = sess.io_binding()
        empty_past = self._bind_empty_past(io)  # noqa: F841 - keeps the bound array alive
        io.bind_ortvalue_output("logits", pre_ov)
        for name in present_flat:
            io.bind_output(name, "cpu")
        tokens: list[int] = []
        token_ns: list[int] = []
        keep = token_sink(tokens, on_token)

        start = time.perf_counter_ns()
        self._bind_tokens(io, prompt, mask[:, :p], prompt_pos)
        sess.run_with_iobinding(io)
        tok = self._argmax(pre_np[0, -1])
        token_ns.append(time.perf_counter_ns())
        keep(tok)
        io.bind_ortvalue_output("logits", dec_ov)
        for t in range(p, p + n - 1):
            outs = io.get_outputs()  # binding order: logits, then the presents
            presents = outs[1:]
            for i, (pk, pv) in enumerate(info.past_names):
                io.bind_ortvalue_input(pk, presents[2 * i])
                io.bind_ortvalue_input(pv, presents[2 * i + 1])
            for name in present_flat:
                io.bind_output(name, "cpu")
            step_ids[0, 0] = tok
            pos[0, 0] = t
            self._bind_tokens(io, step_ids, mask[:, : t + 1], step_pos)
            sess.run_with_iobinding(io)
            tok = self._argmax(dec_np[0, -1])
            token_ns.append(time.perf_counter_ns())
            keep(tok)
        return Generation(tokens=tokens, start_ns=start, token_ns=token_ns, prompt_tokens=p,
                          engine=self.name, extra={"kv_mode": "concat"})


def session_options(s: SessionConfig) -> Any:
    """The onnxruntime SessionOptions of a SessionConfig (imports onnxruntime)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = s.intra_op_num_threads
    so.inter_op_num_threads = s.ort.inter_op_threads
    so.execution_mode = (ort.ExecutionMode.ORT_SEQUENTIAL if s.ort.execution_mode == "sequential"
                         else ort.ExecutionMode.ORT_PARALLEL)
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                          ORT_GRAPH_LEVELS[s.ort.graph_optimization])
    so.enable_cpu_mem_arena = s.ort.memory_arena
    so.log_severity_level = 3
    for k, v in s.ort.config_entries().items():
        so.add_session_config_entry(k, v)
    return so


def aligned_empty(shape, dtype, align: int = 64):
    """An uninitialised numpy array whose data starts on a cache-line boundary (numpy only
    guarantees 16 bytes; ORT's kernels write logits through wide vector stores)."""
    import numpy as np

    dt = np.dtype(dtype)
    n = int(np.prod(shape)) * dt.itemsize
    raw = np.empty(n + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off:off + n].view(dt).reshape(shape)
