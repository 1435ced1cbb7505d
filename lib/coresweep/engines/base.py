"""The engine protocol: greedy generation of exactly N tokens with per-token timestamps.

Each runtime is one module of this package behind this protocol (``Engine.load()``,
``Engine.generate(prompt_ids, n, on_token=None) -> Generation``), listed in
``coresweep.engines.RUNTIMES``. Two so far, on the same model directory:

- ``OrtEngine`` ("ort"): plain onnxruntime with IOBinding. For GroupQueryAttention graphs (the genai
  builder's output) one preallocated past/present buffer of length prompt+N per layer is bound as both
  the past input and the present output (genai's ``past_present_share_buffer``); for models that
  concatenate, the present OrtValues of step t are bound as the past of step t+1 (no copies). Logits
  go into a preallocated buffer and only the last row is arg-maxed.
- ``GenaiEngine`` ("genai"): onnxruntime-genai's og.Generator with the same session options through
  the config overlay and max_length = prompt + N.
- ``LlamaCppEngine`` ("llamacpp"): llama.cpp's C API through llama-cpp-python on a GGUF of the same
  checkpoint (``model_format = "gguf"``): one llama_decode for the prompt, one per token.

Batches: ``Engine.generate_batch(prompt_ids, n, batch)`` decodes ``batch`` copies of the prompt
together in one session (one forward pass per step for all of them) and returns one Generation
holding every sequence; ``Engine.batch_decoder(slots)`` gives a server a ``BatchDecoder`` that
takes sequences in and out between steps (continuous batching). A runtime that cannot do either
keeps ``batches`` / ``serves_batches`` False and refuses with a ModelError naming the runtimes
that can (:func:`check_batch`, called before any trial or server starts).

onnxruntime / onnxruntime_genai / llama_cpp are imported inside the engines only: a worker process
sets its CPU affinity and environment first, then creates an engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coresweep.engines.session import SessionConfig
from coresweep.errors import ModelError


def token_checksum(tokens: Sequence[int]) -> str:
    """sha256 of the token ids (comma-joined decimal), first 16 hex digits."""
    return hashlib.sha256(",".join(str(int(t)) for t in tokens).encode()).hexdigest()[:16]


@dataclass
class Generation:
    tokens: list[int]
    start_ns: int
    token_ns: list[int]                 # perf_counter_ns when token i was ready
    prompt_tokens: int
    engine: str = ""
    extra: dict = field(default_factory=dict)
    # every sequence of a batch (``tokens`` is the first); empty for one sequence
    sequences: list[list[int]] = field(default_factory=list)

    @property
    def batch(self) -> int:
        """Sequences decoded together (their steps share the timestamps)."""
        return max(1, len(self.sequences))

    @property
    def checksums(self) -> list[str]:
        """The checksum of every sequence, in batch order."""
        return [token_checksum(s) for s in self.sequences] or [self.checksum]

    @property
    def sequences_agree(self) -> bool:
        """Every sequence of the batch generated the same tokens (same prompt, same tokens)."""
        return len(set(self.checksums)) == 1

    @property
    def agg_decode_tok_s(self) -> float:
        """Decoded tokens of all sequences per second: batch x each sequence's decode tok/s."""
        return self.batch * self.decode_tok_s

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
            "e2e_s": self.e2e_s, "checksum": self.checksum, "batch": self.batch,
            "checksums": self.checksums, "agg_decode_tok_s": self.agg_decode_tok_s, **self.extra,
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


class BatchDecoder:
    """Sequences decoded together, joining and leaving between steps (a server's batch).

    ``admit(ids, max_new)`` runs the prompt of a new sequence on its own (batch 1, into a free
    row of the shared KV buffers) and returns (sequence id, its first token); ``step()`` runs one
    forward pass for every admitted sequence and returns {sequence id: next token};
    ``release(seq)`` frees its row. ``slots`` is the most sequences at once."""

    slots: int = 1

    @property
    def active(self) -> int:
        raise NotImplementedError

    def admit(self, prompt_ids: Sequence[int], max_new: int) -> tuple[int, int]:
        raise NotImplementedError

    def step(self) -> dict[int, int]:
        raise NotImplementedError

    def release(self, seq: int) -> None:
        raise NotImplementedError


def check_batch(runtime: str, batch: int, *, serving: bool = False) -> None:
    """ModelError before any trial or server when ``runtime`` cannot decode ``batch`` sequences
    together (a trial), or cannot serve batches (``serving``); naming the runtimes that can."""
    import importlib

    from coresweep.engines import RUNTIMES

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ModelError(f"batch={batch!r}: expected an integer >= 1")
    if batch == 1 or runtime not in RUNTIMES:
        return
    attr = "serves_batches" if serving else "batches"

    def able(name: str) -> bool:
        module, cls = RUNTIMES[name].split(":")
        return bool(getattr(getattr(importlib.import_module(module), cls), attr, False))

    if not able(runtime):
        can = [n for n in RUNTIMES if able(n)]
        what = "serve batches of requests" if serving else "decode a batch in one session"
        raise ModelError(f"runtime {runtime!r} cannot {what} (batch={batch}); use batch=1, or a "
                         f"runtime that can: {', '.join(can) or 'none'}")


class Engine:
    name = ""
    batches = False  # generate_batch decodes several sequences in one session
    serves_batches = False  # batch_decoder gives a server sequences that join and leave
    model_format = "onnx"  # what coresweep.models builds for it: "onnx" or "gguf"
    package = "onnxruntime"  # the distribution whose version every result records

    @classmethod
    def check_session(cls, session: SessionConfig) -> None:
        """ModelError for what this runtime cannot honour (called on construction, and by
        measurement.trial.prepare before any trial). onnxruntime runs one thread pool per session:
        no separate prompt thread count."""
        if session.prompt_threads not in (None, session.threads):
            raise ModelError(
                f"runtime {cls.name!r} runs one thread pool per session, so the prompt cannot have "
                f"its own thread count (prompt_threads={session.prompt_threads}, threads="
                f"{session.threads}); that is llama.cpp's n_threads_batch: runtime llamacpp")

    def __init__(self, model_dir, session: SessionConfig, *,
                 eos_token_ids: Sequence[int] | None = None):
        from coresweep.models import inspect_model

        if not isinstance(session, SessionConfig):
            raise ModelError(f"session must be a SessionConfig, got {type(session).__name__}")
        self.check_session(session)
        self.info = inspect_model(model_dir)
        self.model_dir = Path(model_dir)
        self.session_config = session
        self.load_seconds = float("nan")
        # End-of-sequence ids are never chosen (min_length = max_length semantics): exactly N tokens.
        self.eos_token_ids = [int(e) for e in (eos_token_ids if eos_token_ids is not None
                                                else self.info.eos_token_ids)]

    def check_prompt(self, prompt_ids: Sequence[int], gen_tokens: int) -> list[int]:
        """The prompt as ints; ModelError when it is empty, outside the vocabulary or too long
        for the context with ``gen_tokens`` more."""
        return self._check(prompt_ids, gen_tokens)

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

    def loaded(self) -> bool:
        """Whether load() has run (each runtime holds its own handle)."""
        raise NotImplementedError

    def _ready(self, prompt_ids: Sequence[int], gen_tokens: int) -> list[int]:
        """The checked prompt (see _check), the model loaded first if it is not yet."""
        ids = self._check(prompt_ids, gen_tokens)
        if not self.loaded():
            self.load()
        return ids

    def load(self) -> float:
        raise NotImplementedError

    def generate(self, prompt_ids: Sequence[int], gen_tokens: int, *,
                 on_token: Any = None) -> Generation:
        """Exactly ``gen_tokens`` greedy tokens; ``on_token(tok)`` is called as each is ready."""
        raise NotImplementedError

    def generate_batch(self, prompt_ids: Sequence[int], gen_tokens: int,
                       batch: int) -> Generation:
        """``batch`` copies of the prompt decoded together, exactly ``gen_tokens`` tokens each,
        one timestamp per step (shared by every sequence). Batch 1 is :meth:`generate`."""
        check_batch(self.name, batch)
        if batch == 1:
            return self.generate(prompt_ids, gen_tokens)
        return self._generate_batch(self._check(prompt_ids, gen_tokens), gen_tokens, batch)

    def _generate_batch(self, ids: list[int], gen_tokens: int, batch: int) -> Generation:
        raise NotImplementedError

    def batch_decoder(self, slots: int) -> BatchDecoder:
        """A decoder of up to ``slots`` sequences that join and leave between steps."""
        check_batch(self.name, max(2, slots), serving=True)
        raise NotImplementedError

    def version(self) -> str:
        """The runtime library and its version, e.g. "onnxruntime 1.32.0"."""
        from importlib.metadata import version

        return f"{self.package} {version(self.package)}"

    def describe(self) -> dict:
        return {"engine": self.name, "model": str(self.info.onnx_path),
                "session": self.session_config.to_dict()}
