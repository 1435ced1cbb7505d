# coresweep: two commands do everything on a fresh Linux machine with Python >= 3.10.
#   make report  - build the default model if missing, run every notebook, write reports/index.html
#   make test    - create .venv if missing, install coresweep with its extras, run the tests
#   make llamacpp - add the optional llamacpp runtime (llama-cpp-python from its sdist, minutes once)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is only needed to build synthetic models. The CPU wheel keeps the venv small; override on
# machines where another build is wanted (e.g. make TORCH_SPEC='torch' test).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: report test lint venv browser tools clean-venv llamacpp llama-bench llamacpp-note

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[build,test]"
	touch $(STAMP)

venv: $(STAMP)

# The main job: params/default.yaml (1.5B-shape INT4 synthetic model) within its `budget` (10 min),
# counted from the moment make started (REPORT_T0, read when make parses this file), so the venv,
# the tools and the model build count. Extra parameters:
# make report PARAMS=params/seed-article.yaml RUN_ARGS='-p model=/path/to/model -p budget=30m'
PARAMS ?= params/default.yaml
RUN_ARGS ?=
REPORT_T0 := $(shell date +%s)
report: $(STAMP) tools llamacpp-note
	$(VENV)/bin/coresweep run $(PARAMS) --started-at $(REPORT_T0) $(RUN_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check lib tests bench

# Debian's chromium drives the report tests (headless, network blocked). Installed when missing and
# apt-get is usable; elsewhere the browser test skips unless CORESWEEP_REQUIRE_BROWSER=1 (CI sets it).
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's chromium for the report tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# Debian's likwid gives likwid-bench, the roofline's bandwidth ceiling (coresweep.machine.bandwidth),
# and dmidecode the memory modules of the fingerprint (coresweep.machine.speed): what the report
# needs (chromium is for the tests only). Installed the same way; elsewhere the portable ORT
# measurement stands in and reports say so.
tools:
	@if command -v likwid-bench >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's likwid (likwid-bench) for the bandwidth ceiling"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq likwid >/dev/null; \
	else \
	  echo "note: likwid-bench not found and not root with apt-get: bandwidth uses the portable ORT method (as root: apt-get install likwid)"; \
	fi
	@# dmidecode: memory modules (DIMMs, channels, MT/s) in the machine fingerprint; root only
	@if command -v dmidecode >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's dmidecode for the memory modules in the fingerprint"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dmidecode >/dev/null; \
	else \
	  echo "note: dmidecode not found: the fingerprint records memory modules as absent, with the reason"; \
	fi
	@# haproxy: the load-aware dispatcher of `coresweep serve` and 04_serving (coresweep.serving)
	@if command -v haproxy >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's haproxy, the dispatcher of coresweep serve"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; \
	else \
	  echo "note: haproxy not found and not root with apt-get: coresweep serve needs --dispatch shared-socket (not load-aware) and 04_serving records its HAProxy plans as failed (as root: apt-get install haproxy)"; \
	fi

# GuideLLM drives `coresweep serve` in a test: the tests' extra, not the report's.
GUIDELLM_STAMP := $(VENV)/.installed-guidellm
$(GUIDELLM_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install --quiet -e ".[guidellm]"
	touch $(GUIDELLM_STAMP)

test: $(GUIDELLM_STAMP)

# The llamacpp runtime is optional: llama-cpp-python builds from its sdist (~7 min on 2 CPUs the
# first time; pip keeps the built wheel in its wheel cache, so the next install takes seconds).
# Its source tree (the same sdist: convert_hf_to_gguf.py, gguf-py, llama-bench) is extracted into
# ~/.cache/coresweep/src (or $$CORESWEEP_LLAMACPP_SRC). `make test WITH_LLAMACPP=1` (CI) adds it;
# without it the llamacpp tests skip and say how to add it.
LLAMACPP_STAMP := $(VENV)/.installed-llamacpp
$(LLAMACPP_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install --quiet -e ".[llamacpp]"
	$(PY) -c "from coresweep.models.gguf import source_dir; print('llama.cpp source:', source_dir())"
	touch $(LLAMACPP_STAMP)

llamacpp: $(LLAMACPP_STAMP)

# llama-bench from the same llama.cpp source, with the wheel's defaults (Release, native CPU
# flags, OpenMP): what bench/llamacpp_parity.py runs beside coresweep's llamacpp engine.
llama-bench: $(LLAMACPP_STAMP)
	@src=$$($(PY) -c "from coresweep.models.gguf import source_dir; print(source_dir())"); \
	cmake -S "$$src" -B "$$src/build-coresweep" -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
	  >/dev/null && cmake --build "$$src/build-coresweep" --target llama-bench -j $$(nproc) \
	  >/dev/null && echo "llama-bench: $$src/build-coresweep/bin/llama-bench"

llamacpp-note:
	@$(PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('llama_cpp') is None)" \
	  || echo "note: the optional llamacpp runtime is not installed: its tests skip (add it with \
	  make llamacpp; several minutes once)"

test: $(STAMP) tools browser $(if $(WITH_LLAMACPP),$(LLAMACPP_STAMP),llamacpp-note)
	$(VENV)/bin/ruff check lib tests bench
	$(PY) -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
