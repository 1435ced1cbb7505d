"""coresweep: how should I spend my CPU cores on LLM inference?

`import coresweep` is cheap: the public names below load their modules on first use, and nothing
here (or in the modules they load in the notebook/parent process) imports onnxruntime — only the
trial worker does, after it has set its CPU affinity.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# public name -> module that defines it (loaded lazily, PEP 562)
_LAZY = {
    "sweep": "measurement.sweep",
    "grid": "measurement.sweep",
    "Run": "measurement.run",
    "TrialConfig": "measurement.config",
    "summarize": "analysis.stats",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'coresweep' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"coresweep.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
