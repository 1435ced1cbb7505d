"""Engines: greedy generation of exactly N tokens with per-token timestamps, one module per
runtime behind one protocol (`Engine.load()`, `Engine.generate(prompt_ids, n) -> Generation`).

onnxruntime / onnxruntime_genai are imported inside the engines only, so a worker process can set
its CPU affinity and environment first.
"""

from coresweep.engines.base import (
    ENGINES,
    EXECUTION_MODES,
    GRAPH_OPTIMIZATIONS,
    Engine,
    Generation,
    SessionConfig,
    make_engine,
    make_prompt,
    token_checksum,
)

__all__ = ["ENGINES", "EXECUTION_MODES", "GRAPH_OPTIMIZATIONS", "Engine", "Generation",
           "SessionConfig", "make_engine", "make_prompt", "token_checksum"]
