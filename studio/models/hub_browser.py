"""Find a model on the Hugging Face Hub from the studio: search, size, licence, whether it fits, download.

`search` asks the hub (huggingface_hub's `list_models`: text-generation models by downloads) and, for the first
few results, reads their config.json to ask the method picker's estimator whether LoRA and QLoRA training fit
this machine with default settings. Offline (HF_HUB_OFFLINE, or the hub does not answer) it lists the models
already in the local cache and says why it cannot search. `download` fetches a model's weights, config and
tokenizer into the hub cache (where `resolve_model` finds them), reporting bytes as they arrive.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from studio.errors import StudioError

FIT_CHECKED = 8  # results whose config is fetched to estimate whether they fit
ALLOW = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
OFFLINE_WHY = ("This machine is offline (HF_HUB_OFFLINE is set or huggingface.co does not answer), so the hub "
               "cannot be searched; the models already downloaded are listed.")


def _fits(config_path: Path, ws: Any, memory: dict | None) -> dict:
    """{"lora": bool | None, "qlora": bool | None, "lora_gb": float | None} for default settings on this machine."""
    from studio.config import parse_recipe
    from studio.memory import load_config
    from studio.memory_picker import method_table

    recipe = parse_recipe({"name": "fit", "data": {"dataset": "sample-format-tutor"}})
    try:
        rows = {r["name"]: r for r in method_table(load_config(config_path.parent), ws, recipe, memory,
                                                    only=("lora", "qlora"))}
    except (StudioError, ValueError, KeyError, OSError):
        return {"lora": None, "qlora": None, "lora_gb": None}
    lora = rows.get("lora") or {}
    total = lora.get("estimated_total")
    return {"lora": lora.get("fits"), "qlora": (rows.get("qlora") or {}).get("fits"),
            "lora_gb": round(total / 2**30, 1) if total else None}


def _row(info: Any) -> dict:
    card = info.card_data.to_dict() if getattr(info, "card_data", None) is not None else {}
    safetensors = getattr(info, "safetensors", None)
    return {"id": info.id, "downloads": getattr(info, "downloads", None), "likes": getattr(info, "likes", None),
            "license": card.get("license") or next((t.split(":", 1)[1] for t in (info.tags or [])
                                                    if t.startswith("license:")), None),
            "params": getattr(safetensors, "total", None) if safetensors else None,
            "gated": bool(getattr(info, "gated", False)), "cached": False,
            "lora": None, "qlora": None, "lora_gb": None}


def cached_rows() -> list[dict]:
    from studio.models.catalogue import _cached_hub_models

    return [{"id": m["name"], "downloads": None, "likes": None, "license": None, "params": None, "gated": False,
             "cached": True, "size_mb": m["size_mb"], "lora": None, "qlora": None, "lora_gb": None}
            for m in _cached_hub_models() if m["kind"] == "causal-lm"]


def search(query: str, ws: Any, limit: int = 20, memory: dict | None = None, api: Any = None,
           fetch_config: Callable[[str], Path] | None = None) -> dict:
    """{"online", "why", "models": [{"id", "downloads", "likes", "license", "params", "gated", "cached", "lora",
    "qlora", "lora_gb"}]}: the hub's text-generation models matching `query`, most downloaded first."""
    from studio.models.catalogue import _cached_snapshot, is_offline

    if api is None and is_offline():
        return {"online": False, "why": OFFLINE_WHY, "models": cached_rows()}
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    if fetch_config is None:
        from huggingface_hub import hf_hub_download

        from studio.models.catalogue import hub_cache_dir

        def fetch_config(repo: str) -> Path:
            return Path(hf_hub_download(repo, "config.json", cache_dir=hub_cache_dir()))
    try:
        infos = list(api.list_models(search=(query or "").strip() or None, pipeline_tag="text-generation",
                                     sort="downloads", limit=limit,
                                     expand=["downloads", "likes", "cardData", "safetensors", "gated", "tags"]))
    except Exception as exc:  # noqa: BLE001 (network, HTTP and hub errors all mean: cannot search now)
        return {"online": False, "why": f"The hub could not be searched ({type(exc).__name__}); the models already "
                                        "downloaded are listed.", "models": cached_rows()}
    rows = []
    for n, info in enumerate(infos):
        row = _row(info)
        row["cached"] = _cached_snapshot(info.id) is not None
        if n < FIT_CHECKED and not row["gated"]:
            try:
                row.update(_fits(fetch_config(info.id), ws, memory))
            except Exception:  # noqa: BLE001 (a repo without a readable config: fit unknown)
                pass
        rows.append(row)
    return {"online": True, "why": None, "models": rows}


def download(repo_id: str, progress: Callable[[int, int], Any] = lambda done, total: None) -> Path:
    """Fetch `repo_id`'s weights, config and tokenizer into the hub cache; `progress(bytes done, bytes total)`."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HfHubHTTPError
    from tqdm.auto import tqdm

    from studio.models.catalogue import hub_cache_dir, is_offline

    repo_id = (repo_id or "").strip()
    if not repo_id:
        raise StudioError("Pick a model to download first.", field="model", key="hub.no_model")
    if is_offline():
        raise StudioError(f"This machine is offline, so '{repo_id}' cannot be downloaded; connect it or copy the "
                          "model folder here and use its path.", field="model", key="hub.offline", model=repo_id)

    class Bytes(tqdm):
        """snapshot_download's byte bar, reported to `progress` (the studio shows no terminal bar)."""

        def __init__(self, *args, **kwargs):
            self.counts_bytes, self.done = kwargs.get("unit") == "B", 0
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            self.done += n or 0
            if self.counts_bytes:
                progress(self.done, int(self.total or 0))

    try:
        path = snapshot_download(repo_id, cache_dir=hub_cache_dir(), allow_patterns=ALLOW, tqdm_class=Bytes)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "error"
        raise StudioError(f"'{repo_id}' could not be downloaded ({status}); check the name, and accept its licence "
                          "on the hub when it is gated.", field="model", key="hub.download_failed", model=repo_id,
                          status=str(status)) from None
    return Path(path)
