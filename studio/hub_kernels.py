"""Hub kernels only where they can load: decided once per process, before any model is built.

transformers 5 with the `kernels` package installed (TRL depends on it) swaps some layers (rotary
embeddings, activations, ...) for kernels it downloads from the Hub on CUDA. On an offline machine
without them in the local cache that fails every training run ("Version 2 of
'kernels-community/rotary' is not available in the local cache and Hugging Face Hub is in offline
mode"). `decide_hub_kernels` keeps them on when the machine is online or every kernel repo
transformers maps is cached, and otherwise sets `USE_HUB_KERNELS=NO` for this process and the
processes it starts; a value the user set is always left alone. The decision goes into each run's
summary.json (`hub_kernels`).
"""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger(__name__)
ENV = "USE_HUB_KERNELS"
WHY = "STUDIO_HUB_KERNELS_WHY"  # set beside ENV when the studio chose it, so child processes report the same reason
_decided: dict | None = None


def mapped_kernel_repos() -> set[str]:
    """Repo ids of the kernels transformers may fetch (its kernel mapping); empty if it has none."""
    try:
        from transformers.integrations import hub_kernels
    except ImportError:
        return set()
    build = getattr(hub_kernels, "_build_kernel_mapping", None)
    if build is None:
        return set()
    repos: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        else:
            repo = getattr(node, "repo_id", None) or getattr(node, "_repo_id", None)
            if isinstance(repo, str):
                repos.add(repo)

    try:
        walk(build())
    except Exception:  # noqa: BLE001 - a private helper of transformers: anything unexpected means "unknown"
        log.debug("could not read transformers' kernel mapping", exc_info=True)
    return repos


def cached_repos(repos: Iterable[str], cache_dir: str | Path | None = None) -> set[str]:
    """The repos of `repos` that have a snapshot in the kernels cache (KERNELS_CACHE, else the Hub cache)."""
    if cache_dir is None:
        from huggingface_hub import constants

        cache_dir = os.environ.get("KERNELS_CACHE") or constants.HF_HUB_CACHE
    cache = Path(cache_dir)
    found = set()
    for repo in repos:
        folder = repo.replace("/", "--")
        if any((cache / f"{kind}--{folder}" / "snapshots").is_dir() for kind in ("models", "kernels")):
            found.add(repo)
    return found


def decide_hub_kernels(environ: dict | None = None, offline: Callable[[], bool] | None = None,
                       repos: Callable[[], set[str]] = mapped_kernel_repos,
                       cached: Callable[[set[str]], set[str]] = cached_repos) -> dict:
    """{"enabled": bool, "why": str}; sets USE_HUB_KERNELS=NO in `environ` when kernels could not load."""
    environ = os.environ if environ is None else environ
    if ENV in environ:
        enabled = environ[ENV].strip().upper() not in ("NO", "0", "FALSE", "OFF")
        return {"enabled": enabled, "why": environ.get(WHY) or f"{ENV}={environ[ENV]} set by the user"}
    if importlib.util.find_spec("kernels") is None:
        return {"enabled": False, "why": "the kernels package is not installed"}
    if offline is None:
        from studio.models.catalogue import is_offline as offline
    if not offline():
        return {"enabled": True, "why": "online: kernels are fetched when a layer needs one"}
    wanted = repos()
    missing = sorted(wanted - cached(wanted))
    if wanted and not missing:
        return {"enabled": True, "why": "offline, every mapped kernel is cached"}
    shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
    why = f"offline and not cached ({shown or 'unknown kernels'}): layers use PyTorch"
    environ[ENV], environ[WHY] = "NO", why
    return {"enabled": False, "why": why}


def ensure_decided() -> dict:
    """The decision for this process, made on the first call."""
    global _decided
    if _decided is None:
        _decided = decide_hub_kernels()
        log.info("Hub kernels %s: %s", "on" if _decided["enabled"] else "off", _decided["why"])
    return _decided
