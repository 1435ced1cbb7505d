"""GGUF models for runtime ``llamacpp``: llama.cpp's own tools, run on the same checkpoint the ONNX
builder reads.

- **Source**: llama.cpp's tree as the llama-cpp-python sdist of the *installed* version ships it
  (``vendor/llama.cpp``: convert_hf_to_gguf.py, gguf-py, llama-bench), extracted once into
  ``$CORESWEEP_LLAMACPP_SRC`` or ``~/.cache/coresweep/src/`` (fetched with ``pip download`` when
  missing): converter, reader, library and llama-bench all come from one source.
- **Convert**: convert_hf_to_gguf.py in a child process (``python -m coresweep.models.gguf
  convert``), F32 out. The synthetic tokenizer's pre-tokenizer hash is unknown to the script, so
  the child names it "qwen2", as the real model's GGUF does (only text tokenisation depends on it;
  synthetic prompts are token ids), and reads its BPE vocabulary directly (no SentencePiece).
- **Quantise**: ``llama_model_quantize`` (llama-cpp-python's binding of the C API) in a child
  process, default options: what ``llama-quantize IN OUT Q4_0`` writes.
- **Read**: gguf-py's GGUFReader (header and tensor table, memory-mapped): the facts
  ``inspect_model`` returns and the bytes one decoded token reads.

Nothing here imports llama_cpp in the calling process, nor any other coresweep.models module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from coresweep.errors import ModelError
from coresweep.models.child import run_logged

# precision -> llama.cpp file type (llama_ftype name after LLAMA_FTYPE_; F32 is the converter's own)
GGUF_TYPES = {"int4": "Q4_0", "int8": "Q8_0", "fp32": "F32", "q4_k_m": "Q4_K_M"}
FTYPES = {"Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
          "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}
DIST = "llama-cpp-python"
ENV_SOURCE = "CORESWEEP_LLAMACPP_SRC"
INSTALL_HINT = ("install the optional runtime: `pip install -e '.[llamacpp]'` (builds "
                "llama-cpp-python from its sdist, several minutes) or `make llamacpp`")
MODEL_FILE = "model.gguf"


def gguf_type(precision: str) -> str:
    """The llama.cpp file type of a precision (ModelError naming the valid ones)."""
    if precision not in GGUF_TYPES:
        raise ModelError(f"unknown precision {precision!r} for a GGUF; valid precisions: "
                         f"{', '.join(GGUF_TYPES)} (llama.cpp {', '.join(GGUF_TYPES.values())})")
    return GGUF_TYPES[precision]


def llamacpp_version() -> str | None:
    """The installed llama-cpp-python's version (None: not installed); read from its metadata,
    nothing imported."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DIST)
    except PackageNotFoundError:
        return None


def require_llamacpp() -> str:
    version = llamacpp_version()
    if version is None:
        raise ModelError(f"runtime llamacpp needs llama-cpp-python, which is not installed: "
                         f"{INSTALL_HINT}")
    return version


# -- llama.cpp's source tree ------------------------------------------------------------------------

def source_cache() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "coresweep" / "src"


def source_dir(*, fetch: bool = True) -> Path:
    """llama.cpp's tree of the installed llama-cpp-python (``vendor/llama.cpp`` of its sdist):
    $CORESWEEP_LLAMACPP_SRC, else the extracted sdist in the source cache, fetched with pip when
    missing and ``fetch``."""
    env = os.environ.get(ENV_SOURCE)
    if env:
        tree = Path(env).expanduser()
        if not (tree / "convert_hf_to_gguf.py").is_file():
            raise ModelError(f"${ENV_SOURCE}={env!r} is not a llama.cpp tree (no "
                             "convert_hf_to_gguf.py)")
        return tree
    version = require_llamacpp()
    tree = source_cache() / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if not (tree / "convert_hf_to_gguf.py").is_file():
        if not fetch:
            raise ModelError(f"llama.cpp's source ({tree}) is missing: run `make llamacpp`")
        fetch_source(version, source_cache())
    return tree


def fetch_source(version: str, dest: Path) -> Path:
    """Download the llama-cpp-python sdist of ``version`` with pip (its cache answers a second
    time) and extract it into ``dest`` (atomically: a rename of the finished folder)."""
    import tempfile

    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
               ":all:", f"{DIST}=={version}", "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archives = sorted(Path(tmp).glob("*.tar.gz"))
        if proc.returncode or not archives:
            raise ModelError(f"could not fetch the {DIST} {version} sdist (llama.cpp's source): "
                             f"{proc.stderr.strip()[-400:]}")
        with tarfile.open(archives[0]) as tar:
            tar.extractall(tmp, filter="data")
        top = Path(tmp) / f"llama_cpp_python-{version}"
        final = dest / top.name
        if not final.exists():
            os.rename(top, final)
    return final


def gguf_module(tree: Path | None = None) -> Any:
    """gguf-py from llama.cpp's tree (the version the converter writes with)."""
    gguf_py = str((tree or source_dir()) / "gguf-py")
    if gguf_py not in sys.path:
        sys.path.insert(0, gguf_py)
    import gguf

    return gguf


# -- convert and quantise (child processes) ----------------------------------------------------------

def run_child(args: list[str], log_path: Path, what: str) -> None:
    """``python -m coresweep.models.gguf ARGS`` with its output in ``log_path``."""
    run_logged([sys.executable, "-m", "coresweep.models.gguf", *args], log_path, what,
               append=True)


def convert(hf_dir: Path, out_file: Path, log_path: Path) -> None:
    """A Hugging Face checkpoint folder to an F32 GGUF (convert_hf_to_gguf.py)."""
    tree = source_dir()
    run_child(["convert", str(tree), str(hf_dir), str(out_file)], log_path,
              "llama.cpp's convert_hf_to_gguf.py")


def quantize(src: Path, out_file: Path, gtype: str, log_path: Path) -> None:
    """``src`` (F32 GGUF) quantised to ``gtype`` by llama_model_quantize."""
    require_llamacpp()
    run_child(["quantize", str(src), str(out_file), gtype], log_path, "llama_model_quantize")


def _convert_main(tree: str, hf_dir: str, out_file: str) -> None:
    sys.path[:0] = [tree, str(Path(tree) / "gguf-py")]
    import conversion.base
    import conversion.qwen
    import convert_hf_to_gguf

    # the synthetic tokenizer is a byte-level BPE of its own: llama.cpp does not know its hash;
    # the real model's GGUF says "qwen2" (only text tokenisation reads it). It has no
    # SentencePiece model, which Qwen2's converter tries first (importing sentencepiece only to
    # find the file missing): go straight to the BPE vocabulary.
    conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
    conversion.qwen.Qwen2Model.set_vocab = conversion.base.TextModel._set_vocab_gpt2
    sys.argv = ["convert_hf_to_gguf.py", hf_dir, "--outfile", out_file, "--outtype", "f32"]
    convert_hf_to_gguf.main()


def _quantize_main(src: str, out_file: str, gtype: str) -> None:
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FTYPES[gtype])
    params.nthread = 0  # every CPU the process may use
    rc = llama_cpp.llama_model_quantize(src.encode(), out_file.encode(), ctypes.byref(params))
    if rc != 0:
        raise SystemExit(f"llama_model_quantize returned {rc}")


# -- reading ------------------------------------------------------------------------------------------

def find_gguf(path: str | os.PathLike) -> Path | None:
    """The .gguf file of a path (the file, or the one .gguf in a folder); None when it is not a
    GGUF model; ModelError when a folder holds several."""
    p = Path(path).expanduser()
    if p.is_file():
        return p.resolve() if p.suffix == ".gguf" else None
    found = sorted(p.glob("*.gguf")) if p.is_dir() else []
    if len(found) > 1:
        raise ModelError(f"{str(p)!r} holds several GGUF files ({', '.join(f.name for f in found)})"
                         f"; give one file's path")
    return found[0].resolve() if found else None


def read_info(path: str | os.PathLike) -> dict[str, Any]:
    """What inspect_model returns for a GGUF (ModelInfo fields): its shape facts and bytes, from
    the manifest of a coresweep build (written from the file when it was built; the file's size
    must still match), else read from the file's header and tensor table (a few seconds for a
    151936-token vocabulary: gguf-py parses every string)."""
    file = find_gguf(path)
    if file is None:
        raise ModelError(f"{str(path)!r} is not a GGUF file or a folder holding one")
    manifest = _manifest(file.parent)
    stored = (manifest or {}).get("gguf_info")
    same = stored and (manifest.get("files") or {}).get(file.name) == file.stat().st_size
    return {**(stored if same else read_facts(file)), "format": "gguf",
            "dir": str(file.parent), "onnx_path": str(file), "manifest": manifest,
            "tokenizer_dir": str(file.parent) if (file.parent / "tokenizer.json").is_file()
            else None}


def read_facts(file: Path) -> dict[str, Any]:
    """Shape, vocabulary, context, end-of-sequence ids and bytes of a GGUF file (gguf-py)."""
    reader = gguf_module().GGUFReader(str(file))
    kv = {name: _field_value(f) for name, f in reader.fields.items()}
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    kv["n_vocab"] = len(tokens.data) if tokens is not None else None
    tensors = [(t.name, t.tensor_type.name, int(t.n_bytes), [int(d) for d in t.shape])
               for t in reader.tensors]
    shape = _shape_facts(kv, kv.get("general.architecture", ""))
    return {**shape, **weight_bytes(tensors, shape["vocab_size"]), "eos_token_ids": _eos_ids(kv)}


def _field_value(field: Any) -> Any:
    """A GGUF key's value when it is one scalar or string; None for arrays (decoding the
    vocabulary's 151936 strings in Python would take seconds: only its length is used)."""
    if len(field.types) != 1:
        return None
    try:
        return field.contents()
    except (AttributeError, ValueError, IndexError):
        return None


def _shape_facts(kv: dict[str, Any], arch: str) -> dict[str, Any]:
    layers = int(kv.get(f"{arch}.block_count") or 0)
    heads = int(kv.get(f"{arch}.attention.head_count") or 1)
    kv_heads = int(kv.get(f"{arch}.attention.head_count_kv") or heads)
    head_dim = int(kv.get(f"{arch}.attention.key_length")
                   or int(kv.get(f"{arch}.embedding_length") or 0) // heads)
    return {"num_layers": layers, "kv_heads": kv_heads, "head_dim": head_dim,
            "kv_dtype": "float16", "vocab_size": kv.get("n_vocab"),
            "max_context": int(kv.get(f"{arch}.context_length") or 0) or None,
            # llama.cpp's KV cache defaults to f16 keys and values
            "kv_bytes_per_position": 2 * layers * kv_heads * head_dim * 2}


def weight_bytes(tensors: list[tuple[str, str, int, list[int]]],
                 n_vocab: int | None) -> dict[str, Any]:
    """Bytes of every tensor, and what one decoded token reads: every tensor but the token
    embedding, of which one row (the whole table when the output projection is tied to it)."""
    total = sum(n for _, _, n, _ in tensors)
    embd = next((n for name, _, n, _ in tensors if name == "token_embd.weight"), 0)
    tied = not any(name == "output.weight" for name, *_ in tensors)
    per_token = total - embd + (embd if tied else embd // max(n_vocab or 1, 1))
    types: dict[str, int] = {}
    for _, kind, _, _ in tensors:
        types[kind] = types.get(kind, 0) + 1
    return {"weight_bytes": total, "bytes_per_token": per_token, "quant_ops": types}


def _eos_ids(kv: dict[str, Any]) -> list[int]:
    keys = ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.eom_token_id")
    return sorted({int(kv[k]) for k in keys if kv.get(k) is not None})


def _manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def main(argv: list[str]) -> int:
    """The child processes: ``convert TREE HF_DIR OUT`` and ``quantize SRC OUT TYPE``."""
    if argv[:1] == ["convert"] and len(argv) == 4:
        _convert_main(*argv[1:])
    elif argv[:1] == ["quantize"] and len(argv) == 4:
        _quantize_main(*argv[1:])
    else:
        print("usage: python -m coresweep.models.gguf convert TREE HF_DIR OUT | quantize SRC OUT "
              "TYPE", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
