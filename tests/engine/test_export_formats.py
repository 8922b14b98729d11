"""Each quantised format through the whole export pipeline on a finished tiny LoRA run: files, report, refusals."""
from __future__ import annotations

import json

import pytest

from studio.errors import StudioError
from studio.export.pipeline import ExportRequest, check_request, run_export

from tests.engine.test_export_core import finished


@pytest.fixture
def lora_run(workspace, tiny_llama_dir) -> str:
    return finished(workspace, tiny_llama_dir, "lora", max_steps=2, lr=2e-2)


def test_gguf_export_writes_the_file_a_modelfile_and_a_report(workspace, lora_run, tmp_path):
    out = tmp_path / "gguf"
    manifest = run_export(workspace, ExportRequest(lora_run, "gguf", quant="q8_0", out=str(out),
                                                   system="Answer in five lines."))
    assert manifest["quant"] == "Q8_0" and manifest["artifact"] == str(out.resolve() / "tiny-lora-Q8_0.gguf")
    modelfile = (out / "Modelfile").read_text()
    assert "FROM ./tiny-lora-Q8_0.gguf" in modelfile and "Answer in five lines." in modelfile
    report = json.loads((out / "report.json").read_text())
    (artifact,) = report["artifacts"]
    assert artifact["name"] == "gguf Q8_0" and artifact["top1_agreement"] >= 0.95
    assert artifact["size_ratio"] < 0.6


def test_gguf_for_an_unsupported_architecture_names_the_supported_ones(workspace, tiny_bert_dir):
    with pytest.raises(StudioError, match="GGUF export supports: llama") as info:
        check_request(workspace, ExportRequest(str(tiny_bert_dir), "gguf"))
    assert info.value.key in ("export.gguf.architecture", "model.not_causal_lm")
    with pytest.raises(StudioError, match="Q8_0"):
        check_request(workspace, ExportRequest(str(tiny_bert_dir), "gguf", quant="Q3_K"))


def test_int8_export_with_calibration_chooses_its_scheme_by_measurement(workspace, lora_run, tmp_path):
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("The lighthouse keeper climbed the stairs at dusk.\n\nBread rises when yeast "
                           "ferments the sugars in the dough.\n\nA bicycle chain needs oil every few hundred "
                           "kilometres.", encoding="utf-8")
    out = tmp_path / "int8"
    manifest = run_export(workspace, ExportRequest(lora_run, "int8", out=str(out), calibration=str(calibration)))
    details = manifest["details"]
    assert details["calibration_texts"] in (0, 3)
    assert set(details["chosen_by"]["calibration_perplexity"]) == {"dynamic", "smoothed", "static"}
    assert (out / "model-int8.safetensors").exists() and (out / "int8.json").exists()
    (artifact,) = manifest["report"]["artifacts"]
    # A tiny random model on the run's short validation text: 0.89-1.0 measured; SmolLM2's figures are in the bench.
    assert artifact["size_ratio"] < 0.5 and artifact["top1_agreement"] >= 0.8


def test_bnb4_export_reloads_and_is_measured(workspace, lora_run, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "bnb4"
    manifest = run_export(workspace, ExportRequest(lora_run, "bnb4", quant="fp4", double_quant=False, out=str(out)))
    assert manifest["details"]["quant_type"] == "fp4" and manifest["details"]["double_quant"] is False
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"]["bnb_4bit_quant_type"] == "fp4"
    assert AutoModelForCausalLM.from_pretrained(out) is not None
    assert "| quant | fp4 |" in (out / "README.md").read_text()
    (artifact,) = manifest["report"]["artifacts"]
    assert artifact["format"] == "bnb4" and artifact["tokens_per_s"] > 0
