"""Models: synthetic presets with the real shapes (built offline and cached, as ONNX and, for
runtime llamacpp, as GGUF from the same checkpoint) and any decoder ONNX export or GGUF read from
its file. Nothing here imports onnxruntime or llama_cpp."""

from coresweep.models.inspect import ModelInfo, find_onnx, inspect_model
from coresweep.models.synthetic import (
    ALIASES,
    ENV_CACHE,
    FORMATS,
    PRECISIONS,
    PRESETS,
    build_gguf,
    build_model,
    build_tokenizer,
    bytes_per_token,
    list_models,
    model_cache_dir,
    parameter_count,
    parse_overrides,
    preset_config,
    resolve_model,
    special_token_ids,
    write_checkpoint,
    write_preset_checkpoint,
)

__all__ = [
    "ALIASES", "ENV_CACHE", "FORMATS", "PRECISIONS", "PRESETS", "ModelInfo", "build_gguf",
    "build_model", "build_tokenizer",
    "bytes_per_token",
    "find_onnx", "inspect_model", "list_models", "model_cache_dir", "parameter_count",
    "parse_overrides", "preset_config", "resolve_model", "special_token_ids", "write_checkpoint",
    "write_preset_checkpoint",
]
