"""What a generation session is asked for. ``threads`` is what every runtime understands (the
compute threads of one generation); ``prompt_threads`` a separate count for the prompt (llama.cpp's
n_threads_batch; onnxruntime has one pool per session); ``OrtOptions`` are onnxruntime's own
session options. A runtime that cannot honour an option set away from its default refuses it
(``OrtOptions.changed()``, ``Engine.check_session``) rather than ignoring it and mislabelling the
result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from coresweep.errors import ModelError, check_choice
from coresweep.parameters import SESSION

__all__ = ["EXECUTION_MODES", "GRAPH_OPTIMIZATIONS", "ORT_GRAPH_LEVELS", "OrtOptions",
           "SessionConfig"]

EXECUTION_MODES = SESSION["execution_mode"].choices
GRAPH_OPTIMIZATIONS = SESSION["graph_optimization"].choices
# graph_optimization -> onnxruntime's GraphOptimizationLevel name (the ort and genai engines)
ORT_GRAPH_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                    "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


@dataclass
class OrtOptions:
    """onnxruntime's own session options coresweep sets (defaults: the parameters' tables)."""

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
        if not isinstance(self.inter_op_threads, int) or self.inter_op_threads < 0:
            raise ModelError(f"inter_op_threads={self.inter_op_threads!r}: expected an integer >= 0")
        check_choice("execution_mode", self.execution_mode, EXECUTION_MODES, ModelError)
        check_choice("graph_optimization", self.graph_optimization, GRAPH_OPTIMIZATIONS, ModelError)
        if not isinstance(self.dynamic_block_base, int) or self.dynamic_block_base < 0:
            raise ModelError(f"dynamic_block_base={self.dynamic_block_base!r}: expected an integer >= 0")

    def changed(self) -> dict[str, Any]:
        """The options set away from their defaults (what another runtime would have to honour)."""
        default = OrtOptions()
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != getattr(default, f.name)}

    def config_entries(self) -> dict[str, str]:
        """The session config entries (ORT's string options) these options set."""
        entries = {
            "session.intra_op.allow_spinning": "1" if self.spinning else "0",
            "session.inter_op.allow_spinning": "1" if self.spinning else "0",
            "session.dynamic_block_base": str(self.dynamic_block_base),
        }
        if self.affinities:
            entries["session.intra_op_thread_affinities"] = self.affinities
        return entries


@dataclass
class SessionConfig:
    """Every session option coresweep sets, recorded with each result."""

    threads: int | None                 # None = the named "ort-default" mode (intra_op_num_threads=0)
    ort: OrtOptions = field(default_factory=OrtOptions)
    prompt_threads: int | None = None   # threads for the prompt; None = threads (llama.cpp only)

    def __post_init__(self) -> None:
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ModelError(f"threads={self.threads!r}: expected a positive integer, or None for "
                             "the 'ort-default' mode")
        if self.prompt_threads is not None and (
                not isinstance(self.prompt_threads, int) or self.prompt_threads < 1
                or self.threads is None):
            raise ModelError(f"prompt_threads={self.prompt_threads!r}: expected a positive integer "
                             "beside an explicit thread count")
        aff = self.ort.affinities
        if aff is not None:
            if self.threads is None:
                raise ModelError("affinities need an explicit thread count (not 'ort-default')")
            entries = aff.split(";")
            if len(entries) != self.threads - 1 or any(not e.strip() for e in entries):
                raise ModelError(
                    f"affinities={aff!r}: expected exactly threads-1={self.threads - 1} "
                    "';'-separated entries of 1-based CPU ids (the calling thread is not pinned)")

    @classmethod
    def of(cls, threads: int | None, *, prompt_threads: int = 0,
           **ort_options: Any) -> SessionConfig:
        """From the flat form configs store (``TrialConfig.session`` and the pin affinities);
        ``prompt_threads`` 0 means the same as threads."""
        return cls(threads, OrtOptions(**ort_options), prompt_threads or None)

    @property
    def batch_threads(self) -> int | None:
        """The threads that run the prompt (``prompt_threads``, else ``threads``)."""
        return self.prompt_threads or self.threads

    @property
    def mode(self) -> str:
        return "ort-default" if self.threads is None else "explicit"

    @property
    def intra_op_num_threads(self) -> int:
        return 0 if self.threads is None else self.threads

    def to_dict(self) -> dict:
        """The flat record every result carries."""
        return {"threads": self.threads, "prompt_threads": self.prompt_threads,
                **asdict(self.ort), "mode": self.mode,
                "intra_op_num_threads": self.intra_op_num_threads,
                "config_entries": self.ort.config_entries()}
