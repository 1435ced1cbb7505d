"""Engines: greedy generation of exactly N tokens with per-token timestamps, one module per
runtime behind one protocol (`Engine.load()`, `Engine.generate(prompt_ids, n) -> Generation`,
see :mod:`coresweep.engines.base`).

``RUNTIMES`` is the one list of runtimes: adding one is a module in this package and a line here
(the ``runtime`` parameter's choices come from it). Nothing is imported until it is used:
onnxruntime, llama_cpp and their kin load inside the engines only, after a worker has set its CPU
affinity and environment, and this module stays importable from the parameters' table.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> "module:class" of the engine that runs it
RUNTIMES = {"ort": "coresweep.engines.ort:OrtEngine",
            "genai": "coresweep.engines.genai:GenaiEngine",
            "llamacpp": "coresweep.engines.llamacpp:LlamaCppEngine"}
ENGINES = tuple(RUNTIMES)

# the public names of the package's modules, imported when first used (PEP 562)
_EXPORTS = {
    "Engine": "base", "Generation": "base", "token_checksum": "base", "token_sink": "base",
    "SessionConfig": "session", "OrtOptions": "session", "EXECUTION_MODES": "session",
    "GRAPH_OPTIMIZATIONS": "session", "make_prompt": "prompts",
}
__all__ = ["ENGINES", "RUNTIMES", "check_session", "engine_class", "make_engine",
           "model_format", *_EXPORTS]


def engine_class(name: str) -> Any:
    """The Engine class of runtime ``name`` (its module imports no runtime library)."""
    from coresweep.errors import ModelError

    if name not in RUNTIMES:
        raise ModelError(f"unknown runtime {name!r}; valid runtimes: {', '.join(ENGINES)}")
    module, cls = RUNTIMES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_engine(name: str, model_dir: Any, session: Any, **kwargs: Any) -> Any:
    """An engine by runtime name (one of ``ENGINES``) on a model dir or file."""
    return engine_class(name)(model_dir, session, **kwargs)


def model_format(name: str) -> str:
    """The model format runtime ``name`` reads: "onnx" or "gguf" (coresweep.models builds both
    from the same checkpoint)."""
    return engine_class(name).model_format


def check_session(name: str, session: Any) -> None:
    """ModelError when runtime ``name`` cannot honour ``session`` (a SessionConfig): what the
    engine would refuse when it loads, said before any trial starts."""
    engine_class(name).check_session(session)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"coresweep.engines.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'coresweep.engines' has no attribute {name!r}")
