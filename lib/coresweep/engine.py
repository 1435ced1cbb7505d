"""Greedy generation of exactly N tokens with per-token timestamps.

Two engines on the same model directory:

- ``OrtEngine`` ("ort"): plain onnxruntime with IOBinding. For GroupQueryAttention graphs (the genai
  builder's output) one preallocated past/present buffer of length prompt+N per layer is bound as both
  the past input and the present output (genai's ``past_present_share_buffer``); for models that
  concatenate, the present OrtValues of step t are bound as the past of step t+1 (no copies). Logits
  go into a preallocated buffer and only the last row is arg-maxed.
- ``GenaiEngine`` ("genai"): onnxruntime-genai's og.Generator with the same session options through
  the config overlay and max_length = prompt + N.

onnxruntime / onnxruntime_genai are imported inside the engines only: a worker process sets its CPU
affinity and environment first, then creates an engine.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError

ENGINES = ("ort", "genai")
EXECUTION_MODES = ("sequential", "parallel")
GRAPH_OPTIMIZATIONS = ("disabled", "basic", "extended", "all")
_GRAPH_OPT_ORT = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                  "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def token_checksum(tokens: Sequence[int]) -> str:
    """sha256 of the token ids (comma-joined decimal), first 16 hex digits."""
    return hashlib.sha256(",".join(str(int(t)) for t in tokens).encode()).hexdigest()[:16]


@dataclass
class SessionConfig:
    """Every onnxruntime session option coresweep sets, recorded with each result."""

    threads: int | None                 # None = the named "ort-default" mode (intra_op_num_threads=0)
    inter_op_threads: int = 1
    execution_mode: str = "sequential"
    spinning: bool = True
    affinities: str | None = None       # session.intra_op_thread_affinities (threads-1 entries)
    dynamic_block_base: int = 0
    graph_optimization: str = "all"
    memory_arena: bool = True

    def __post_init__(self) -> None:
        if self.affinities is not None and not str(self.affinities).strip():
            self.affinities = None  # "" (1 thread / unpinned plan) means: leave the option unset
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ModelError(f"threads={self.threads!r}: expected a positive integer, or None for "
                             "the 'ort-default' mode")
        if not isinstance(self.inter_op_threads, int) or self.inter_op_threads < 0:
            raise ModelError(f"inter_op_threads={self.inter_op_threads!r}: expected an integer >= 0")
        if self.execution_mode not in EXECUTION_MODES:
            raise ModelError(f"execution_mode={self.execution_mode!r}; valid: "
                             f"{', '.join(EXECUTION_MODES)}")
        if self.graph_optimization not in GRAPH_OPTIMIZATIONS:
            raise ModelError(f"graph_optimization={self.graph_optimization!r}; valid: "
                             f"{', '.join(GRAPH_OPTIMIZATIONS)}")
        if not isinstance(self.dynamic_block_base, int) or self.dynamic_block_base < 0:
            raise ModelError(f"dynamic_block_base={self.dynamic_block_base!r}: expected an integer >= 0")
        if self.affinities is not None:
            if self.threads is None:
                raise ModelError("affinities need an explicit thread count (not 'ort-default')")
            entries = [e for e in self.affinities.split(";")]
            if len(entries) != self.threads - 1 or any(not e.strip() for e in entries):
                raise ModelError(
                    f"affinities={self.affinities!r}: expected exactly threads-1={self.threads - 1} "
                    "';'-separated entries of 1-based CPU ids (the calling thread is not pinned)")

    @property
    def mode(self) -> str:
        return "ort-default" if self.threads is None else "explicit"

    @property
    def intra_op_num_threads(self) -> int:
        return 0 if self.threads is None else self.threads

    def config_entries(self) -> dict[str, str]:
        entries = {
            "session.intra_op.allow_spinning": "1" if self.spinning else "0",
            "session.inter_op.allow_spinning": "1" if self.spinning else "0",
            "session.dynamic_block_base": str(self.dynamic_block_base),
        }
        if self.affinities:
            entries["session.intra_op_thread_affinities"] = self.affinities
        return entries

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mode"] = self.mode
        d["intra_op_num_threads"] = self.intra_op_num_threads
        d["config_entries"] = self.config_entries()
        return d

    def ort_session_options(self):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.intra_op_num_threads
        so.inter_op_num_threads = self.inter_op_threads
        so.execution_mode = (ort.ExecutionMode.ORT_SEQUENTIAL if self.execution_mode == "sequential"
                             else ort.ExecutionMode.ORT_PARALLEL)
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                              _GRAPH_OPT_ORT[self.graph_optimization])
        so.enable_cpu_mem_arena = self.memory_arena
        so.log_severity_level = 3
        for k, v in self.config_entries().items():
            so.add_session_config_entry(k, v)
        return so


@dataclass
class Generation:
    tokens: list[int]
    start_ns: int
    token_ns: list[int]                 # perf_counter_ns when token i was ready
    prompt_tokens: int
    engine: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ttft_s(self) -> float:
        return (self.token_ns[0] - self.start_ns) / 1e9

    @property
    def prefill_tok_s(self) -> float:
        return self.prompt_tokens / self.ttft_s if self.ttft_s > 0 else float("inf")

    @property
    def decode_tok_s(self) -> float:
        if len(self.token_ns) < 2:
            return float("nan")
        return (len(self.token_ns) - 1) / ((self.token_ns[-1] - self.token_ns[0]) / 1e9)

    @property
    def e2e_s(self) -> float:
        return (self.token_ns[-1] - self.start_ns) / 1e9

    @property
    def token_latencies_s(self) -> list[float]:
        """Latency of each token: token 0 from start (TTFT), then the gap to the previous token."""
        marks = [self.start_ns, *self.token_ns]
        return [(b - a) / 1e9 for a, b in zip(marks, marks[1:], strict=False)]

    @property
    def checksum(self) -> str:
        return token_checksum(self.tokens)

    def to_dict(self) -> dict:
        return {
            "engine": self.engine, "prompt_tokens": self.prompt_tokens, "tokens": list(self.tokens),
            "start_ns": self.start_ns, "token_ns": list(self.token_ns), "ttft_s": self.ttft_s,
            "prefill_tok_s": self.prefill_tok_s, "decode_tok_s": self.decode_tok_s,
            "e2e_s": self.e2e_s, "checksum": self.checksum, **self.extra,
        }


def _aligned_empty(shape, dtype, align: int = 64):
    """An uninitialised numpy array whose data starts on a cache-line boundary (numpy only
    guarantees 16 bytes; ORT's kernels write logits through wide vector stores)."""
    import numpy as np

    dt = np.dtype(dtype)
    n = int(np.prod(shape)) * dt.itemsize
    raw = np.empty(n + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off:off + n].view(dt).reshape(shape)


class Engine:
    name = ""

    def __init__(self, model_dir, session: SessionConfig, *,
                 eos_token_ids: Sequence[int] | None = None):
        from .models import inspect_model

        if not isinstance(session, SessionConfig):
            raise ModelError(f"session must be a SessionConfig, got {type(session).__name__}")
        self.info = inspect_model(model_dir)
        self.model_dir = Path(model_dir)
        self.session_config = session
        self.load_seconds = float("nan")
        # End-of-sequence ids are never chosen (min_length = max_length semantics): exactly N tokens.
        self.eos_token_ids = [int(e) for e in (eos_token_ids if eos_token_ids is not None
                                                else self.info.eos_token_ids)]

    def _check(self, prompt_ids: Sequence[int], gen_tokens: int) -> list[int]:
        ids = [int(t) for t in prompt_ids]
        if not ids:
            raise ModelError("the prompt is empty; give at least one token")
        if not isinstance(gen_tokens, int) or gen_tokens < 1:
            raise ModelError(f"gen_tokens={gen_tokens!r}: expected an integer >= 1")
        ctx = self.info.max_context
        if ctx and len(ids) + gen_tokens > ctx:
            raise ModelError(f"prompt of {len(ids)} tokens + {gen_tokens} generated exceeds the "
                             f"model's context of {ctx} tokens")
        vocab = self.info.vocab_size
        if vocab:
            bad = [t for t in ids if t < 0 or t >= vocab]
            if bad:
                raise ModelError(f"prompt token ids {bad[:5]} outside the vocabulary [0, {vocab})")
        return ids

    def load(self) -> float:
        raise NotImplementedError

    def generate(self, prompt_ids: Sequence[int], gen_tokens: int) -> Generation:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"engine": self.name, "model": str(self.info.onnx_path),
                "session": self.session_config.to_dict()}


class OrtEngine(Engine):
    """Greedy generation on plain onnxruntime with IOBinding."""

    name = "ort"

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

    def load(self) -> float:
        import onnxruntime as ort

        t0 = time.perf_counter()
        self.session = ort.InferenceSession(self.info.onnx_path,
                                            self.session_config.ort_session_options(),
                                            providers=["CPUExecutionProvider"])
        self.load_seconds = time.perf_counter() - t0
        return self.load_seconds

    def generate(self, prompt_ids: Sequence[int], gen_tokens: int) -> Generation:
        ids = self._check(prompt_ids, gen_tokens)
        if self.session is None:
            self.load()
        if self.kv_mode == "shared":
            return self._generate_shared(ids, gen_tokens)
        return self._generate_concat(ids, gen_tokens)

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

    def _logit_buffers(self, prompt_len: int):
        import onnxruntime as ort

        info = self.info
        dt = self._np_dtype(info.logits_dtype)
        vocab = info.vocab_size
        rows = 1 if info.logits_last_only else prompt_len
        pre = _aligned_empty((1, rows, vocab), dt)
        dec = _aligned_empty((1, 1, vocab), dt)
        return (pre, ort.OrtValue.ortvalue_from_numpy(pre),
                dec, ort.OrtValue.ortvalue_from_numpy(dec))

    def _generate_shared(self, ids: list[int], n: int) -> Generation:
        import numpy as np
        import onnxruntime as ort

        info, sess = self.info, self.session
        p = len(ids)
        max_len = p + n
        # Buffers are kept per shape and reused by the next generation of the same shape: fresh
        # ones would be first touched (page-faulted) inside the timed prefill of every repetition
        # (~3 % of TTFT measured on the 0.5B shape). The warm-up generation touches them once.
        cached = self._buffers.get((p, max_len, self._kv_alloc))
        if cached is None:
            kv_dt = self._np_dtype(info.kv_dtype)
            shape = (1, info.kv_heads, max_len, info.head_dim)
            if self._kv_alloc == "numpy":  # kept for A/B tests: numpy's 16-byte aligned buffers
                kv_np = [(np.zeros(shape, kv_dt), np.zeros(shape, kv_dt))
                         for _ in range(info.num_layers)]
                kv = [(ort.OrtValue.ortvalue_from_numpy(k), ort.OrtValue.ortvalue_from_numpy(v))
                      for k, v in kv_np]
            else:  # onnxruntime's allocator (aligned); GQA reads only the valid positions
                kv = [(ort.OrtValue.ortvalue_from_shape_and_type(shape, kv_dt, "cpu", 0),
                       ort.OrtValue.ortvalue_from_shape_and_type(shape, kv_dt, "cpu", 0))
                      for _ in range(info.num_layers)]
            self._buffers = {(p, max_len, self._kv_alloc): (kv, self._logit_buffers(p))}
            cached = self._buffers[(p, max_len, self._kv_alloc)]
        kv, (pre_np, pre_ov, dec_np, dec_ov) = cached
        mask = np.ones((1, max_len), dtype=np.int64)
        prompt = np.asarray([ids], dtype=np.int64)
        step_ids = np.zeros((1, 1), dtype=np.int64)
        has_pos = info.has_position_ids
        io = sess.io_binding()
        for (pk, pv), (ok, ov), (k, v) in zip(info.past_names, info.present_names, kv, strict=True):
            io.bind_ortvalue_input(pk, k)
            io.bind_ortvalue_input(pv, v)
            io.bind_ortvalue_output(ok, k)
            io.bind_ortvalue_output(ov, v)
        tokens: list[int] = []
        token_ns: list[int] = []
        prompt_pos = np.arange(p, dtype=np.int64)[None, :] if has_pos else None
        pos = np.zeros((1, 1), dtype=np.int64)
        step_pos = pos if has_pos else None
        io.bind_ortvalue_output("logits", pre_ov)

        start = time.perf_counter_ns()
        self._bind_tokens(io, prompt, mask[:, :p], prompt_pos)
        sess.run_with_iobinding(io)
        tok = self._argmax(pre_np[0, -1])
        token_ns.append(time.perf_counter_ns())
        tokens.append(tok)
        io.bind_ortvalue_output("logits", dec_ov)
        for t in range(p, p + n - 1):
            step_ids[0, 0] = tok
            pos[0, 0] = t
            self._bind_tokens(io, step_ids, mask[:, : t + 1], step_pos)
            sess.run_with_iobinding(io)
            tok = self._argmax(dec_np[0, -1])
            token_ns.append(time.perf_counter_ns())
            tokens.append(tok)
        return Generation(tokens=tokens, start_ns=start, token_ns=token_ns, prompt_tokens=p,
                          engine=self.name, extra={"kv_mode": "shared"})

    def _generate_concat(self, ids: list[int], n: int) -> Generation:
        import numpy as np
        import onnxruntime as ort

        info, sess = self.info, self.session
        p = len(ids)
        kv_dt = self._np_dtype(info.kv_dtype)
        empty = np.zeros((1, info.kv_heads, 0, info.head_dim), dtype=kv_dt)
        # logits buffers reused per prompt length, as in the shared path (no page faults in TTFT)
        key = ("concat", p)
        if key not in self._buffers:
            self._buffers = {key: self._logit_buffers(p)}
        pre_np, pre_ov, dec_np, dec_ov = self._buffers[key]
        mask = np.ones((1, p + n), dtype=np.int64)
        prompt = np.asarray([ids], dtype=np.int64)
        step_ids = np.zeros((1, 1), dtype=np.int64)
        has_pos = info.has_position_ids
        present_flat = [name for pair in info.present_names for name in pair]
        io = sess.io_binding()
        tokens: list[int] = []
        token_ns: list[int] = []

        # the empty past and the outputs are bound before the clock starts, as in the shared path
        empty_ov = ort.OrtValue.ortvalue_from_numpy(empty)
        for pk, pv in info.past_names:
            io.bind_ortvalue_input(pk, empty_ov)
            io.bind_ortvalue_input(pv, empty_ov)
        io.bind_ortvalue_output("logits", pre_ov)
        for name in present_flat:
            io.bind_output(name, "cpu")

        prompt_pos = np.arange(p, dtype=np.int64)[None, :] if has_pos else None
        pos = np.zeros((1, 1), dtype=np.int64)
        step_pos = pos if has_pos else None

        start = time.perf_counter_ns()
        self._bind_tokens(io, prompt, mask[:, :p], prompt_pos)
        sess.run_with_iobinding(io)
        tok = self._argmax(pre_np[0, -1])
        token_ns.append(time.perf_counter_ns())
        tokens.append(tok)
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
            tokens.append(tok)
        return Generation(tokens=tokens, start_ns=start, token_ns=token_ns, prompt_tokens=p,
                          engine=self.name, extra={"kv_mode": "concat"})


class GenaiEngine(Engine):
    """Greedy generation on onnxruntime-genai (og.Generator), session options via the overlay."""

    name = "genai"

    def __init__(self, model_dir, session: SessionConfig, *,
                 eos_token_ids: Sequence[int] | None = None):
        super().__init__(model_dir, session, eos_token_ids=eos_token_ids)
        if not self.info.is_genai:
            raise ModelError(f"{self.info.dir!r} has no genai_config.json: the 'genai' engine needs "
                             "an onnxruntime-genai model folder (use engine 'ort' for other exports)")
        self.model = None

    def overlay(self) -> dict:
        s = self.session_config
        opts: dict[str, Any] = {
            "intra_op_num_threads": s.intra_op_num_threads,
            "inter_op_num_threads": s.inter_op_threads,
            "enable_cpu_mem_arena": s.memory_arena,
            "graph_optimization_level": _GRAPH_OPT_ORT[s.graph_optimization],
            "execution_mode": "ORT_SEQUENTIAL" if s.execution_mode == "sequential"
            else "ORT_PARALLEL",
        }
        model: dict[str, Any] = {"decoder": {"session_options": opts}}
        if self.eos_token_ids != self.info.eos_token_ids:
            model["eos_token_id"] = self.eos_token_ids
        return {"model": model}

    def load(self) -> float:
        import onnxruntime  # noqa: F401  (genai dlopens the onnxruntime library of this package)
        import onnxruntime_genai as og

        s = self.session_config
        unsupported = []
        if not s.spinning:
            unsupported.append("spinning=False")
        if s.affinities:
            unsupported.append("affinities")
        if s.dynamic_block_base:
            unsupported.append(f"dynamic_block_base={s.dynamic_block_base}")
        if unsupported:
            raise ModelError(
                f"the 'genai' engine cannot set {', '.join(unsupported)}: onnxruntime-genai's "
                "session_options accept no ORT config entries (use engine 'ort' for these)")
        t0 = time.perf_counter()
        config = og.Config(str(self.info.dir))
        config.overlay(json.dumps(self.overlay()))
        self.model = og.Model(config)
        self.load_seconds = time.perf_counter() - t0
        return self.load_seconds

    def generate(self, prompt_ids: Sequence[int], gen_tokens: int) -> Generation:
        import onnxruntime_genai as og

        ids = self._check(prompt_ids, gen_tokens)
        if self.model is None:
            self.load()
        p = len(ids)
        params = og.GeneratorParams(self.model)
        # exactly N tokens: max_length = min_length = prompt + N (EOS is masked until then, as
        # OrtEngine._argmax does), and past_present_share_buffer as the builder's config says.
        params.set_search_options(max_length=p + gen_tokens, min_length=p + gen_tokens,
                                  do_sample=False,
                                  num_beams=1, past_present_share_buffer=True)
        tokens: list[int] = []
        token_ns: list[int] = []
        # The generator allocates the KV cache; OrtEngine allocates its buffers before `start`
        # too, so TTFT is the prompt's forward pass (+ arg-max) in both engines.
        gen = og.Generator(self.model, params)
        start = time.perf_counter_ns()
        gen.append_tokens(ids)
        for _ in range(gen_tokens):
            gen.generate_next_token()
            tok = int(gen.get_next_tokens()[0])
            token_ns.append(time.perf_counter_ns())
            tokens.append(tok)
        return Generation(tokens=tokens, start_ns=start, token_ns=token_ns, prompt_tokens=p,
                          engine=self.name)


def make_engine(name: str, model_dir, session: SessionConfig, **kwargs) -> Engine:
    """An engine by name ("ort" or "genai") on a model dir or .onnx file."""
    if name not in ENGINES:
        raise ModelError(f"unknown engine {name!r}; valid engines: {', '.join(ENGINES)}")
    cls = OrtEngine if name == "ort" else GenaiEngine
    return cls(model_dir, session, **kwargs)


def make_prompt(model_dir, prompt_tokens: int, text: str | None = None, seed: int = 0) -> list[int]:
    """Prompt token ids: `text` through the model's tokenizer (chat template when it has one),
    else a deterministic sequence of `prompt_tokens` ids (valid ids, no special tokens)."""
    from .models import inspect_model

    info = inspect_model(model_dir)
    if text is not None:
        if not info.tokenizer_dir:
            raise ModelError(f"{info.dir!r} has no tokenizer; give the prompt as a token count")
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(info.tokenizer_dir, local_files_only=True)
        if getattr(tok, "chat_template", None):
            out = tok.apply_chat_template([{"role": "user", "content": text}],
                                          add_generation_prompt=True, tokenize=True)
            if isinstance(out, dict) or hasattr(out, "keys"):
                out = out["input_ids"]
            ids = [int(t) for t in out]
        else:
            ids = [int(t) for t in tok.encode(text)]
        if info.max_context and len(ids) > info.max_context:
            raise ModelError(f"text prompt of {len(ids)} tokens exceeds the model's context of "
                             f"{info.max_context} tokens")
        return ids
    if not isinstance(prompt_tokens, int) or prompt_tokens < 1:
        raise ModelError(f"prompt_tokens={prompt_tokens!r}: expected an integer >= 1")
    if info.max_context and prompt_tokens > info.max_context:
        raise ModelError(f"prompt of {prompt_tokens} tokens exceeds the model's context of "
                         f"{info.max_context} tokens")
    import numpy as np

    vocab = info.vocab_size or 32000
    # ids below every special token: Qwen2 specials start at 151643; small presets put them last.
    limit = min(vocab, 151643) if vocab > 151643 else vocab - 16
    special = set()
    m = info.manifest or {}
    special.update(int(i) for i in m.get("tokenizer", {}).get("special_tokens", {}).values())
    limit = max(2, min([limit, *special]) if special else limit)
    rng = np.random.default_rng(seed)
    return [int(x) for x in rng.integers(0, limit, size=prompt_tokens)]
