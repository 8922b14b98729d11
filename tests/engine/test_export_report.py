"""The export report on real quantised copies: fp16 and bf16 files and a torch dynamic-int8 model against the fp32
tiny Llama, and (slow) the real SmolLM2 in fp32 against a bf16 copy. The figures are printed (`pytest -s`)."""
from __future__ import annotations

import math

import pytest

from studio.export.heldout import HeldOut, heldout_text
from studio.export.report import Candidate, build_report, report_table

PROMPTS = ["Say hello.", "Name a colour.", "Count to three."]


def _print(report: dict) -> None:
    table = report_table(report)
    print(f"\n{report['heldout']} on {report['device']}")
    for row in [table["headers"], *table["data"]]:
        print(" | ".join(str(x) for x in row))


def _files_loader(directory, dtype):
    def load():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        return AutoModelForCausalLM.from_pretrained(directory, dtype=dtype), AutoTokenizer.from_pretrained(directory)
    return load


def test_rounded_and_int8_copies_cost_a_measured_amount(tiny_llama_dir, tmp_path):
    import torch
    from torch.ao.quantization import quantize_dynamic
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    copies = {}
    for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        copies[name] = tmp_path / name
        AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=dtype).save_pretrained(copies[name])
        tok.save_pretrained(copies[name])

    def load_int8():
        model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8), AutoTokenizer.from_pretrained(
            tiny_llama_dir)

    int8_file = tmp_path / "int8.pt"
    torch.save(load_int8()[0].state_dict(), int8_file)
    heldout = heldout_text()
    heldout = HeldOut(heldout.text, heldout.source, max_tokens=256)
    report = build_report(
        Candidate("fp32", "safetensors", tiny_llama_dir, _files_loader(tiny_llama_dir, torch.float32)),
        [Candidate("fp16", "safetensors", copies["fp16"], _files_loader(copies["fp16"], torch.float32)),
         Candidate("bf16", "safetensors", copies["bf16"], _files_loader(copies["bf16"], torch.bfloat16)),
         Candidate("int8", "torch-dynamic-int8", int8_file, load_int8)],
        heldout, PROMPTS, max_new_tokens=8)
    _print(report)
    fp16, bf16, int8 = report["artifacts"]
    for entry in (fp16, bf16):
        assert 0.4 < entry["size_ratio"] < 0.75  # half the weights, the same tokenizer files
    assert int8["size_ratio"] < 1.0
    # Rounding moves the perplexity, fp16 (11 significant bits) far less than bf16 (8) or int8; on a random
    # model whose logits favour the input token by a wide margin, the argmax barely moves.
    assert abs(fp16["ppl_delta_pct"]) < abs(bf16["ppl_delta_pct"]) and int8["ppl_delta"] != 0
    assert all(e["top1_agreement"] > 0.95 for e in (fp16, bf16, int8))
    assert all(math.isfinite(e[k]) and e[k] > 0 for e in report["artifacts"]
               for k in ("load_s", "tokens_per_s", "perplexity"))


@pytest.mark.slow
def test_smollm2_in_bf16_stays_close_to_fp32(workspace, tmp_path):
    import torch

    from studio.models.catalogue import resolve_model
    from studio.models.loading import load_causal_lm

    spec = "smollm2-135m-instruct"
    model, tok = load_causal_lm(spec, workspace, for_training=False)
    bf16_dir = tmp_path / "bf16"
    model.to(torch.bfloat16).save_pretrained(bf16_dir)
    tok.save_pretrained(bf16_dir)
    del model
    heldout = heldout_text()
    report = build_report(
        Candidate("fp32", "safetensors", resolve_model(spec, workspace),
                  lambda: load_causal_lm(spec, workspace, for_training=False)),
        [Candidate("bf16", "safetensors", bf16_dir, _files_loader(bf16_dir, torch.bfloat16))],
        HeldOut(heldout.text, heldout.source, max_tokens=1024), max_new_tokens=32)
    _print(report)
    for prompt, ref, out in zip(report["prompts"], report["reference"]["samples"],
                                report["artifacts"][0]["samples"]):
        print(f"\n> {prompt}\nfp32: {ref}\nbf16: {out}")
    ref, bf16 = report["reference"], report["artifacts"][0]
    assert 5 < ref["perplexity"] < 60  # a small instruct model on plain English prose
    assert abs(bf16["ppl_delta_pct"]) < 5 and bf16["top1_agreement"] > 0.9
    assert 0.4 < bf16["size_ratio"] < 0.6
    assert all(len(s) > 10 for s in ref["samples"] + bf16["samples"])
