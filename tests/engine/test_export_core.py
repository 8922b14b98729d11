"""Export sources, merging, adapter folders, staging and refusals (studio.export.source/merge/staging/pipeline)."""
from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

from studio.errors import StudioError
from studio.export import merge as merge_module
from studio.export.pipeline import ExportRequest, check_request, run_export
from studio.export.source import load_source, resolve_source

from tests.engine.test_training import run_in_process, tiny_recipe

TEXT = "The harbour was quiet at dawn, and the fishermen checked their nets before the tide turned."


def finished(ws, model_dir, method="lora", **train) -> str:
    run_id, _, result = run_in_process(ws, tiny_recipe(model_dir, method, **train))
    ws.update_run(run_id, status="completed", result_dir=result["result_dir"])
    return run_id


@pytest.fixture
def lora_run(workspace, tiny_llama_dir) -> str:
    return finished(workspace, tiny_llama_dir, "lora", max_steps=3, lr=2e-2)


def logits(model, tokenizer) -> torch.Tensor:
    ids = tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits[0].float()


def base_plus_adapter(ws, run_id):
    from peft import PeftModel

    from studio.models.loading import load_causal_lm

    run = ws.get_run(run_id)
    base, tokenizer = load_causal_lm(run["model"], ws, for_training=False)
    return PeftModel.from_pretrained(base, run["result_dir"]).eval(), tokenizer


def test_merged_logits_equal_base_plus_adapter(workspace, tiny_llama_dir, lora_run, tmp_path):
    from transformers import AutoModelForCausalLM

    reference, tokenizer = base_plus_adapter(workspace, lora_run)
    expected = logits(reference, tokenizer)
    base_logits = logits(reference.get_base_model().__class__.from_pretrained(tiny_llama_dir).eval(), tokenizer)
    assert (expected - base_logits).abs().max() > 1e-3  # the adapter changes the model, so merging is tested

    for dtype, atol in (("fp32", 1e-4), ("fp16", 5e-2)):
        out = tmp_path / f"merged-{dtype}"
        manifest = run_export(workspace, ExportRequest(lora_run, "merged", out=str(out), dtype=dtype, report=False))
        assert manifest["path"] == str(out.resolve()) and (out / "export.json").exists()
        merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        assert (logits(merged, tokenizer) - expected).abs().max() < atol
        assert (out / "tokenizer_config.json").exists() and (out / "generation_config.json").exists()
        assert not (out / "adapter_config.json").exists()
    fp16 = merge_module.folder_bytes(tmp_path / "merged-fp16" / "model.safetensors")
    fp32 = merge_module.folder_bytes(tmp_path / "merged-fp32" / "model.safetensors")
    assert 0.45 < fp16 / fp32 < 0.55


def test_model_card_records_base_method_recipe_and_metrics(workspace, tiny_llama_dir, lora_run, tmp_path):
    out = tmp_path / "card"
    run_export(workspace, ExportRequest(lora_run, "merged", out=str(out), report=False))
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"base_model: {tiny_llama_dir}" in card
    assert "| Method | lora |" in card and "| Dataset | sample-format-tutor |" in card
    assert "## Final metrics" in card and "eval_loss" in card
    assert "## Recipe" in card and "name: tiny-lora" in card


def test_adapter_export_loads_with_peft_and_names_its_base(workspace, tiny_llama_dir, lora_run, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "adapter"
    manifest = run_export(workspace, ExportRequest(lora_run, "adapter", out=str(out)))
    assert manifest["report"] is None
    reference = json.loads((out / "base_model.json").read_text())
    assert reference["base_model"] == str(tiny_llama_dir) and reference["method"] == "lora"
    expected, tokenizer = base_plus_adapter(workspace, lora_run)
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), out).eval()
    assert torch.allclose(logits(loaded, tokenizer), logits(expected, tokenizer), atol=1e-5)


def test_methods_that_cannot_merge_export_only_as_adapters(workspace, tiny_llama_dir, tmp_path):
    run_id = finished(workspace, tiny_llama_dir, "prompt_tuning", max_steps=1)
    for fmt in ("merged", "gguf", "int8"):
        with pytest.raises(StudioError, match="cannot be merged.*soft prompt.*'adapter'") as info:
            check_request(workspace, ExportRequest(run_id, fmt, out=str(tmp_path / fmt)))
        assert info.value.key == "export.source.not_mergeable"
    source = resolve_source(workspace, run_id)
    with pytest.raises(StudioError, match="cannot be merged"):
        load_source(workspace, source)
    out = tmp_path / "prompt"
    run_export(workspace, ExportRequest(run_id, "adapter", out=str(out)))
    assert (out / "adapter_config.json").exists() and (out / "base_model.json").exists()


def test_runs_that_did_not_complete_and_bad_requests_are_refused(workspace, tiny_llama_dir, lora_run, tmp_path):
    run = workspace.get_run(lora_run)
    workspace.update_run(lora_run, status="running")
    with pytest.raises(StudioError, match="is running; wait until it completes") as info:
        check_request(workspace, ExportRequest(lora_run, "merged"))
    assert info.value.key == "export.source.active" and info.value.field == "source"
    workspace.update_run(lora_run, status="failed")
    with pytest.raises(StudioError, match="ended 'failed' without a saved result"):
        check_request(workspace, ExportRequest(lora_run, "merged"))
    workspace.update_run(lora_run, status="completed")
    for request, pattern in [
        (ExportRequest(lora_run, "onnx"), "Unknown export format 'onnx'; choose one of merged, adapter"),
        (ExportRequest(lora_run, "merged", dtype="int3"), "Unknown dtype 'int3'"),
        (ExportRequest(lora_run, "bnb4", quant="int2"), "'nf4' or 'fp4', not 'int2'"),
        (ExportRequest(lora_run, "merged", calibration="x.txt"), "calibration set is used by the int8 export"),
        (ExportRequest("run:nope", "merged"), "Run 'nope' does not exist"),
        (ExportRequest(str(tiny_llama_dir), "adapter"), "is a base model, not a run"),
        (ExportRequest("", "merged"), "Choose what to export"),
    ]:
        with pytest.raises(StudioError, match=pattern):
            if request.format == "adapter":
                run_export(workspace, request)
            else:
                check_request(workspace, request)
    request, source = check_request(workspace, ExportRequest(run["name"], "merged"))
    assert source.run["id"] == lora_run  # a unique run name works too
    assert request.out == str(workspace.home / "exports" / "tiny-lora-merged")


def test_a_failed_export_leaves_the_previous_one_untouched(workspace, lora_run, tmp_path, monkeypatch):
    out = tmp_path / "kept"
    run_export(workspace, ExportRequest(lora_run, "merged", out=str(out), report=False))
    before = {p.name: p.stat().st_size for p in out.iterdir()}

    def disk_fills(model, tokenizer, out_dir, *args, **kwargs):
        (Path(out_dir) / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("studio.export.pipeline.save_merged", disk_fills)
    with pytest.raises(StudioError, match="disk filled up .* the previous export there is untouched") as info:
        run_export(workspace, ExportRequest(lora_run, "merged", out=str(out), report=False, overwrite=True))
    assert info.value.key == "export.staging.disk_full"
    assert {p.name: p.stat().st_size for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_base_model_exports_merged_with_a_card(workspace, tiny_llama_dir, tmp_path):
    out = tmp_path / "base"
    manifest = run_export(workspace, ExportRequest(str(tiny_llama_dir), "merged", out=str(out), dtype="bf16",
                                                   report=False))
    assert manifest["run"] is None and manifest["format"] == "merged"
    assert "none (base model)" in (out / "README.md").read_text()
    config = json.loads((out / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16"


def test_a_classifier_run_merges_with_its_labels_but_is_not_quantised(workspace, tiny_bert_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from tests.engine.test_classify import classify_recipe

    run_id, _, result = run_in_process(workspace, classify_recipe(tiny_bert_dir, "lora"))
    workspace.update_run(run_id, status="completed", result_dir=result["result_dir"])
    with pytest.raises(StudioError, match="'gguf' export is for text generation models"):
        check_request(workspace, ExportRequest(run_id, "gguf"))
    out = tmp_path / "classifier"
    run_export(workspace, ExportRequest(run_id, "merged", out=str(out), dtype="fp32"))
    merged = AutoModelForSequenceClassification.from_pretrained(out)
    labels = json.loads((Path(result["result_dir"]) / "labels.json").read_text())["labels"]
    assert [merged.config.id2label[i] for i in range(len(labels))] == labels


def test_the_report_measures_the_export_against_the_source(workspace, lora_run, tmp_path):
    out = tmp_path / "measured"
    manifest = run_export(workspace, ExportRequest(lora_run, "merged", out=str(out), dtype="bf16"))
    assert manifest["report"]["artifacts"][0]["format"] == "merged"
    report = json.loads((out / "report.json").read_text())
    reference, (artifact,) = report["reference"], report["artifacts"]
    assert reference["name"] == "fp32 (source)" and reference["load_s"] > 0
    assert artifact["format"] == "merged" and 0.45 < artifact["size_ratio"] < 0.65  # + card and config
    assert artifact["top1_agreement"] >= 0.95 and artifact["tokens_per_s"] > 0 and artifact["load_s"] > 0
    assert abs(artifact["ppl_delta_pct"]) < 5 and len(artifact["samples"]) == 3
    assert report["heldout"]["source"].startswith(f"run:{lora_run}/validation")
    # Every path in the saved report points at the final folder, never at the staging one it was written in.
    assert reference["path"] == artifact["path"] == str(out.resolve()) and ".partial" not in json.dumps(report)
