"""The export report's arithmetic and plumbing on the tiny random Llama: perplexity against a token-by-token loop,
agreement with itself and with a perturbed copy, sizes from real files, JSON round trip, table/samples/chart and
the held-out text (asset, a run's validation split, fallback)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from studio.errors import StudioError
from studio.export.heldout import ASSET, ASSET_SOURCE, HeldOut, heldout_text, record_text
from studio.export.report import (TABLE_COLUMNS, Candidate, build_report, load_report, path_size, report_samples,
                                  report_table, save_report, score_ids)
from studio.export.report_chart import report_chart

SHORT = HeldOut("The keeper climbed the stairs at dusk, trimmed the wick and wound the clockwork that turned the "
                "lens. Ships passed in the dark, and each one read the pattern of flashes.", "test", max_tokens=40)
PROMPTS = ["Say hello.", "Name a colour.", "Count to three."]


def _loader(directory: Path, noise: float = 0.0):
    def load():
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(directory)
        if noise:
            torch.manual_seed(1)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(noise * torch.randn_like(p))
        return model, AutoTokenizer.from_pretrained(directory)
    return load


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    return model, AutoTokenizer.from_pretrained(tiny_llama_dir)


def _token_nll(model, context: list[int], target: int) -> float:
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([context])).logits[0, -1].float()
    return -float(torch.log_softmax(logits, -1)[target])


@pytest.mark.parametrize("window", [512, 12])
def test_perplexity_is_the_token_by_token_loop(tiny, window):
    model, tok = tiny
    ids = tok(SHORT.text, add_special_tokens=False)["input_ids"][:40]
    stride = window // 2
    expected = 0.0
    for i in range(1, len(ids)):
        # the window that scores token i is the first one (starting at k*stride) that reaches past it
        begin = 0 if i < window else ((i - window) // stride + 1) * stride
        expected += _token_nll(model, ids[begin:i], ids[i])
    nll, top1 = score_ids(model, ids, window)
    assert nll == pytest.approx(expected, rel=1e-4)
    assert len(top1) == len(ids) - 1


def test_windows_score_every_token_once(tiny):
    model, tok = tiny
    ids = tok(SHORT.text, add_special_tokens=False)["input_ids"][:40]
    whole, top_whole = score_ids(model, ids, 512)
    for window in (2, 7, 16):
        _, top1 = score_ids(model, ids, window)
        assert len(top1) == len(ids) - 1
    # with no context limit hit, windows change nothing
    again, top_again = score_ids(model, ids, len(ids))
    assert again == pytest.approx(whole, rel=1e-5) and bool((top_again == top_whole).all())


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def test_a_copy_agrees_fully_and_a_perturbed_copy_does_not(tiny_llama_dir):
    from transformers import AutoTokenizer

    same = Candidate("same", "safetensors", tiny_llama_dir, _loader(tiny_llama_dir))
    noisy = Candidate("noisy", "safetensors", tiny_llama_dir, _loader(tiny_llama_dir, noise=0.05))
    calls = []
    report = build_report(Candidate("fp32", "safetensors", tiny_llama_dir, _loader(tiny_llama_dir)), [same, noisy],
                          SHORT, PROMPTS, progress=lambda *a: calls.append(a), max_new_tokens=1)
    ref, copy, perturbed = report["reference"], *report["artifacts"]
    assert calls == [(1, 3, "fp32"), (2, 3, "same"), (3, 3, "noisy")]
    assert copy["top1_agreement"] == 1.0 and copy["ppl_delta"] == 0.0 and ref["top1_agreement"] == 1.0
    assert perturbed["top1_agreement"] < 1.0 and perturbed["perplexity"] != ref["perplexity"]
    tokens = len(AutoTokenizer.from_pretrained(tiny_llama_dir)(SHORT.text, add_special_tokens=False)["input_ids"])
    assert report["heldout"] == {"source": "test", "tokens": min(tokens, SHORT.max_tokens) - 1}
    assert all(e["load_s"] > 0 and e["tokens_per_s"] > 0 and len(e["samples"]) == 3
               for e in (ref, copy, perturbed))
    assert all(math.isfinite(x) for x in _numbers(report))
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_size_ratio_comes_from_the_files_on_disk(tiny_llama_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    half = tmp_path / "fp16"
    AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float16).save_pretrained(half)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(half)
    report = build_report(Candidate("fp32", "safetensors", tiny_llama_dir, _loader(tiny_llama_dir)),
                          [Candidate("fp16", "safetensors", half, _loader(half))], SHORT, PROMPTS, max_new_tokens=1)
    on_disk = {d: sum(f.stat().st_size for f in d.iterdir() if f.is_file()) for d in (tiny_llama_dir, half)}
    entry = report["artifacts"][0]
    assert report["reference"]["size_bytes"] == on_disk[tiny_llama_dir] == path_size(tiny_llama_dir)
    assert entry["size_bytes"] == on_disk[half]
    assert entry["size_ratio"] == pytest.approx(on_disk[half] / on_disk[tiny_llama_dir], abs=1e-6)
    assert entry["size_ratio"] < 0.75  # half the weights; the tokenizer files are the same in both
    assert entry["top1_agreement"] > 0.9
    in_memory = Candidate("fp32", "fp32", tmp_path / "not-written", _loader(tiny_llama_dir), size_bytes=123)
    assert in_memory.size() == 123


def test_a_missing_artifact_is_refused_before_loading_anything(tiny_llama_dir, tmp_path):
    def never():
        raise AssertionError("loaded")

    with pytest.raises(StudioError) as err:
        build_report(Candidate("fp32", "safetensors", tiny_llama_dir, never),
                     [Candidate("q4", "gguf", tmp_path / "gone.gguf", never)], SHORT)
    assert err.value.key == "export.report.missing_artifact"


def _fake_report() -> dict:
    def entry(name, size, ratio, ppl, delta, agree):
        return {"name": name, "format": "gguf", "path": name, "size_bytes": size, "size_ratio": ratio,
                "load_s": 0.5, "tokens_per_s": 20.0, "perplexity": ppl, "ppl_delta": delta, "ppl_delta_pct": delta,
                "top1_agreement": agree, "tokens": 100, "samples": [f"{name} {i}" for i in range(2)]}
    return {"reference": entry("fp16", 2_000_000, 1.0, 10.0, 0.0, 1.0),
            "artifacts": [entry("q8_0", 1_000_000, 0.5, 10.1, 1.0, 0.97), entry("q2_k", 500_000, 0.25, 14.0, 40.0,
                                                                                None)],
            "prompts": ["a", "b"], "heldout": {"source": "x", "tokens": 100}}


def test_table_samples_and_chart_use_locale_keys_and_the_report_numbers():
    report = _fake_report()
    table = report_table(report)
    assert table["headers"][0] == "export.report.col.name" and len(table["headers"]) == len(table["data"][0])
    assert table["data"][1] == ["q8_0", "gguf", 1.0, 0.5, 0.5, 20.0, 10.1, 1.0, 97.0]
    assert table["data"][2][-1] is None
    assert report_table(report, t=str.upper)["headers"][0] == "EXPORT.REPORT.COL.NAME"
    samples = report_samples(report)
    assert samples["headers"] == ["export.report.col.prompt", "fp16", "q8_0", "q2_k"]
    assert samples["data"][1] == ["b", "fp16 1", "q8_0 1", "q2_k 1"]
    fig = report_chart(report)
    assert [t.x[0] for t in fig.data] == [2.0, 1.0, 0.5] and [t.y[0] for t in fig.data] == [0.0, 1.0, 40.0]


def test_every_report_label_has_english_and_spanish_words():
    locales = Path(__file__).resolve().parents[2] / "studio" / "locales"
    en, es = (json.loads((locales / lang / "export-report.json").read_text(encoding="utf-8")) for lang in ("en", "es"))
    used = {f"export.report.col.{c}" for c in (*TABLE_COLUMNS, "prompt")}
    used |= {"export.report.chart.size", "export.report.chart.ppl_delta"}
    assert used == set(en) == set(es)
    assert all(es[k] != en[k] for k in used - {"export.report.col.tokens_per_s"})


def test_save_and_load_round_trip_and_refuse_damaged_files(tmp_path):
    report = _fake_report()
    path = save_report(report, tmp_path / "export" / "report.json")
    assert load_report(path) == report
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(StudioError) as err:
        load_report(path)
    assert err.value.key == "export.report.unreadable"
    with pytest.raises(StudioError) as err:
        load_report(tmp_path / "none.json")
    assert err.value.key == "export.report.no_report"


def test_the_asset_text_is_long_original_and_not_in_the_sample_data():
    text = ASSET.read_text(encoding="utf-8")
    assert len(text.split()) >= 1100
    held = heldout_text()
    assert held.source == ASSET_SOURCE and held.text == text
    samples = [p.read_text(encoding="utf-8") for p in (ASSET.parent.parent).glob("*.*") if p.is_file()]
    samples += [p.read_text(encoding="utf-8") for p in (ASSET.parent.parent / "rag").glob("*.*")]
    sentences = [s.strip() for s in text.split(".") if len(s.strip()) > 40]
    assert not any(s in other for s in sentences for other in samples)


def test_records_of_every_format_become_plain_text():
    assert record_text({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]},
                       "chat") == "Hi\n\nYo"
    assert record_text({"instruction": "Add", "input": "1+1", "output": "2"}, "instruction") == "Add\n\n1+1\n\n2"
    assert record_text({"prompt": "Q?", "chosen": "A.", "rejected": "B."}, "preference") == "Q?\n\nA."
    assert record_text({"text": "A document."}, "text") == "A document."
    with pytest.raises(StudioError) as err:
        HeldOut("  ", "nowhere")
    assert err.value.key == "export.report.empty_heldout"


def _run(tmp_path, recipe: str) -> dict:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "recipe.yaml").write_text(recipe, encoding="utf-8")
    return {"id": "r-1", "name": "r", "run_dir": str(run_dir)}


def test_a_runs_held_out_text_is_its_validation_split(workspace, tmp_path):
    from studio.data.loaders import split_examples

    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                          {"role": "assistant", "content": f"Answer number {i}."}]} for i in range(20)]
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run = _run(tmp_path, f"name: r\ndata:\n  dataset: {data}\n  validation: 0.2\ntrain:\n  seed: 7\n")
    held = heldout_text(workspace, run)
    _, val = split_examples(rows, 0.2, 7)
    assert held.source == "run:r-1/validation (4 examples)"
    assert held.text == "\n\n".join(f"{r['messages'][0]['content']}\n\n{r['messages'][1]['content']}" for r in val)


def test_a_run_without_held_out_data_falls_back_to_the_asset(workspace, tmp_path):
    data = tmp_path / "gone.jsonl"
    run = _run(tmp_path, f"name: r\ndata:\n  dataset: {data}\n")
    assert heldout_text(workspace, run).source == ASSET_SOURCE


def test_a_cpt_runs_held_out_text_is_its_validation_documents(workspace, tmp_path):
    from studio.data.loaders import split_examples

    docs = [f"Document {i} talks about topic number {i} at some length." for i in range(10)]
    data = tmp_path / "docs.txt"
    data.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    run = _run(tmp_path, f"name: r\nstage: cpt\ndata:\n  dataset: {data}\n  validation: 0.2\ntrain:\n  seed: 3\n")
    held = heldout_text(workspace, run)
    assert held.text == "\n\n".join(split_examples(docs, 0.2, 3)[1])
    assert held.source == "run:r-1/validation (2 examples)"
