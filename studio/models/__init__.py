"""Models: the embedded defaults, resolving a recipe's model name, and loading it.

`embedded` finds the models shipped in pip packages and converts the SmolLM2 GGUF once into a
safetensors folder; `catalogue` maps aliases, local folders and hub ids to something loadable and
lists what this machine has; `loading` picks the precision and loads a causal LM with its tokenizer.
Importing this package is cheap: torch and transformers are imported only when a model is touched.
"""
from studio.models.embedded import (ensure_smollm2, ensure_smollm2_tokenizer, minilm_path,
                                    smollm2_gguf_path)
from studio.models.catalogue import (CAUSAL_LM, DEFAULT_EMBEDDER, DEFAULT_MODEL, EMBEDDED, EMBEDDER,
                                     ModelEntry, check_model, is_offline, list_models, resolve_model)
from studio.models.loading import load_causal_lm, load_tokenizer, resolve_precision

__all__ = [
    "CAUSAL_LM", "DEFAULT_EMBEDDER", "DEFAULT_MODEL", "EMBEDDED", "EMBEDDER", "ModelEntry", "check_model",
    "ensure_smollm2", "ensure_smollm2_tokenizer", "is_offline", "list_models", "load_causal_lm",
    "load_tokenizer", "minilm_path", "resolve_model", "resolve_precision", "smollm2_gguf_path",
]
