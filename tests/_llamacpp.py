"""The llamacpp runtime's tests need llama-cpp-python (an optional extra, built from its sdist):
they skip without it, and fail instead when CI asks for it (CORESWEEP_REQUIRE_LLAMACPP=1, as
.ci/run sets; like CORESWEEP_REQUIRE_BROWSER and CORESWEEP_REQUIRE_HAPROXY)."""

from __future__ import annotations

import os

import pytest

LLAMACPP_MISSING = ("llama-cpp-python is not installed: the llamacpp runtime's tests need it "
                    "(`make llamacpp`, or `pip install -e '.[llamacpp]'`: built from its sdist, "
                    "several minutes once, then from pip's wheel cache)")


def needs_llamacpp() -> None:
    """Skip without llama-cpp-python; fail when CORESWEEP_REQUIRE_LLAMACPP=1."""
    from coresweep.models.gguf import llamacpp_version

    if llamacpp_version() is None:
        if os.environ.get("CORESWEEP_REQUIRE_LLAMACPP") == "1":
            pytest.fail(LLAMACPP_MISSING)
        pytest.skip(LLAMACPP_MISSING)
