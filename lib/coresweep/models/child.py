"""A model tool run as a child process, offline, its output kept in a log (the builders'
converter, quantiser and onnxruntime-genai's model builder)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from coresweep.errors import ModelError


def run_logged(cmd: list[str], log_path: Path, what: str, *, append: bool = False) -> None:
    """Run ``cmd`` with the model hub off (no download: models are built here) and its output in
    ``log_path``; ModelError with the log's last lines when it fails."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    with open(log_path, "a" if append else "w") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        raise ModelError(f"{what} failed (exit {proc.returncode}); log {log_path}:\n"
                         + "\n".join(tail))
