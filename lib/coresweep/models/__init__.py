"""Models: synthetic presets with the real shapes (built offline and cached) and any decoder ONNX
export read from its graph. Nothing here imports onnxruntime."""

from coresweep.models.inspect import ModelInfo, find_onnx, inspect_model
from coresweep.models.synthetic import (
    ALIASES,
    ENV_CACHE,
    PRECISIONS,
    PRESETS,
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
    "ALIASES", "ENV_CACHE", "PRECISIONS", "PRESETS", "ModelInfo", "build_model", "build_tokenizer",
    "bytes_per_token",
    "find_onnx", "inspect_model", "list_models", "model_cache_dir", "parameter_count",
    "parse_overrides", "preset_config", "resolve_model", "special_token_ids", "write_checkpoint",
    "write_preset_checkpoint",
]
