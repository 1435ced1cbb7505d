"""Where and when a result came from: the versions of the software that shaped it and UTC time
stamps. One definition each, used by run.json, the fingerprint and the model manifests."""

from __future__ import annotations

import datetime as _dt
import platform
from collections.abc import Sequence
from importlib import metadata

__all__ = ["BUILD_PACKAGES", "MEASUREMENT_PACKAGES", "collect_versions", "now_iso", "utc_stamp"]

# what shapes a measurement (the worker's runtime, the tables' writers, the tokenizer)
MEASUREMENT_PACKAGES = ("coresweep", "onnxruntime", "onnxruntime-genai", "onnx", "numpy", "pandas",
                        "pyarrow", "psutil", "transformers", "torch")
# what shapes a synthetic model's content (the builder and its inputs)
BUILD_PACKAGES = ("onnxruntime-genai", "onnxruntime", "onnx", "onnx-ir", "torch", "transformers",
                  "tokenizers", "safetensors", "numpy")
_ALTERNATIVE_RUNTIMES = ("onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")


def package_version(dist: str) -> str | None:
    """The installed version of a distribution, None when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def collect_versions(packages: Sequence[str] = MEASUREMENT_PACKAGES) -> dict[str, str | None]:
    """Python, the platform and each package's version (None: not installed), plus any other
    onnxruntime build that is installed. Reads package metadata: imports nothing."""
    out: dict[str, str | None] = {"python": platform.python_version(),
                                  "python_implementation": platform.python_implementation(),
                                  "platform": platform.platform()}
    out.update({dist: package_version(dist) for dist in packages})
    out.update({alt: v for alt in _ALTERNATIVE_RUNTIMES if (v := package_version(alt))})
    return out


def now_iso() -> str:
    """Now in UTC, ISO 8601 to the second (run.json, batch.json, failures)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def utc_stamp() -> str:
    """Now in UTC for folder names: 20261202-041122."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
