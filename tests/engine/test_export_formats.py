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
