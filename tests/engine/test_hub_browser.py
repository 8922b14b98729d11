"""The hub model browser: offline it lists the cached models and says why it cannot search (this machine is offline,
so that path runs for real); online, rows carry downloads, licence, size and the picker's fit verdict (the hub's
answers are stood in by a small object shaped like huggingface_hub's ModelInfo, the config by the tiny Llama's)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from studio.errors import StudioError
from studio.models import hub_browser


def test_offline_the_browser_lists_cached_models_and_says_why(workspace, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found = hub_browser.search("llama", workspace)
    assert found["online"] is False and "offline" in found["why"]
    assert all(row["cached"] for row in found["models"])
    with pytest.raises(StudioError, match="offline"):
        hub_browser.download("HuggingFaceTB/SmolLM2-360M-Instruct")


class FakeHub:
    """Answers list_models like the hub does: ModelInfo-shaped objects, most downloaded first."""

    def __init__(self):
        self.asked = {}

    def list_models(self, **kwargs):
        self.asked = kwargs
        card = SimpleNamespace(to_dict=lambda: {"license": "apache-2.0"})
        return [SimpleNamespace(id="org/tiny-chat", downloads=1200, likes=7, card_data=card, tags=[],
                                safetensors=SimpleNamespace(total=1_234_567), gated=False),
                SimpleNamespace(id="org/gated-big", downloads=900, likes=3, card_data=None,
                                tags=["license:llama3.1"], safetensors=None, gated="manual")]


def test_online_rows_carry_licence_size_and_whether_lora_fits(workspace, tiny_llama_dir):
    hub = FakeHub()
    fetched = []
    found = hub_browser.search("chat", workspace, api=hub,
                               memory={"kind": "cpu", "total_bytes": 16 * 2**30, "free_bytes": 8 * 2**30},
                               fetch_config=lambda repo: fetched.append(repo) or tiny_llama_dir / "config.json")
    assert hub.asked["search"] == "chat" and hub.asked["pipeline_tag"] == "text-generation"
    assert found["online"] and [m["id"] for m in found["models"]] == ["org/tiny-chat", "org/gated-big"]
    tiny, gated = found["models"]
    assert tiny["license"] == "apache-2.0" and tiny["params"] == 1_234_567 and tiny["downloads"] == 1200
    assert tiny["lora"] is True and tiny["lora_gb"] is not None and tiny["lora_gb"] < 8
    assert gated["license"] == "llama3.1" and gated["gated"] and gated["lora"] is None
    assert fetched == ["org/tiny-chat"]  # a gated repo's config is not fetched


def test_a_hub_that_fails_reads_as_offline_with_its_reason(workspace):
    class Broken:
        def list_models(self, **kwargs):
            raise ConnectionError("no route")

    found = hub_browser.search("x", workspace, api=Broken())
    assert not found["online"] and "ConnectionError" in found["why"]


def test_a_downloaded_sentence_transformers_model_is_offered_as_an_embedder(workspace, tmp_path, monkeypatch):
    import json

    from studio.engine import Engine

    cache = tmp_path / "hub"
    for repo, files in {"org/multi-embed": {"modules.json": "[]"}, "org/chat": {}}.items():
        snapshot = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc"
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text(json.dumps({"model_type": "bert"}))
        for name, text in files.items():
            (snapshot / name).write_text(text)
        (cache / f"models--{repo.replace('/', '--')}" / "refs").mkdir()
        (cache / f"models--{repo.replace('/', '--')}" / "refs" / "main").write_text("abc")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert Engine(workspace, start_jobs=False).embedder_choices() == ["all-minilm-l6-v2", "org/multi-embed"]
