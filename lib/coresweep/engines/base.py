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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coresweep.errors import ModelError
from coresweep.parameters import SESSION

ENGINES = ("ort", "genai")
EXECUTION_MODES = SESSION["execution_mode"].choices
GRAPH_OPTIMIZATIONS = SESSION["graph_optimization"].choices
_GRAPH_OPT_ORT = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                  "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def token_checksum(tokens: Sequence[int]) -> str:
    """sha256 of the token ids (comma-joined decimal), first 16 hex digits."""
    return hashlib.sha256(",".join(str(int(t)) for t in tokens).encode()).hexdigest()[:16]


@dataclass
class SessionConfig:
    """Every onnxruntime session option coresweep sets, recorded with each result."""

    threads: int | None                 # None = the named "ort-default" mode (intra_op_num_threads=0)
    inter_op_threads: int = SESSION["inter_op_threads"].default
    execution_mode: str = SESSION["execution_mode"].default
    spinning: bool = SESSION["spinning"].default
    affinities: str | None = None       # session.intra_op_thread_affinities (threads-1 entries)
    dynamic_block_base: int = SESSION["dynamic_block_base"].default
    graph_optimization: str = SESSION["graph_optimization"].default
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


def token_sink(tokens: list[int], on_token: Any = None) -> Any:
    """What the generation loops call with each token: ``tokens.append`` itself when nobody
    listens (the timed loop costs the same as before), else append and tell ``on_token`` (the
    server streams from it; raising there stops the generation)."""
    if on_token is None:
        return tokens.append

    def keep(tok: int) -> None:
        tokens.append(tok)
        on_token(tok)

    return keep


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
        from coresweep.models import inspect_model

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

    def generate(self, prompt_ids: Sequence[int], gen_tokens: int, *,
                 on_token: Any = None) -> Generation:
        """Exactly ``gen_tokens`` greedy tokens; ``on_token(tok)`` is called as each is ready."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"engine": self.name, "model": str(self.info.onnx_path),
                "session": self.session_config.to_dict()}


def make_engine(name: str, model_dir, session: SessionConfig, **kwargs) -> Engine:
    """An engine by name ("ort" or "genai") on a model dir or .onnx file."""
    if name not in ENGINES:
        raise ModelError(f"unknown engine {name!r}; valid engines: {', '.join(ENGINES)}")
    if name == "ort":
        from coresweep.engines.ort import OrtEngine as cls
    else:
        from coresweep.engines.genai import GenaiEngine as cls
    return cls(model_dir, session, **kwargs)


def make_prompt(model_dir, prompt_tokens: int, text: str | None = None, seed: int = 0) -> list[int]:
    """Prompt token ids: `text` through the model's tokenizer (chat template when it has one),
    else a deterministic sequence of `prompt_tokens` ids (valid ids, no special tokens)."""
    from coresweep.models import inspect_model

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
