"""`studio rag eval` on the sample documents with the real embedded all-MiniLM-L6-v2: the figures the README quotes."""
from __future__ import annotations

import json

import pytest

from studio.cli import main
from studio.rag.samples import ASSETS, write_sample_pdfs


@pytest.mark.slow
def test_eval_scores_the_sample_questions_in_every_mode(workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_HOME", str(workspace.home))
    pdfs = write_sample_pdfs(tmp_path / "samples")
    assert main(["rag", "ingest", "samples", *map(str, pdfs), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pages"] == 32

    assert main(["rag", "eval", "samples", str(ASSETS / "questions.jsonl"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["k"] == 5 and report["questions"] == 40 and len(report["rows"]) == 40
    for mode, figures in report["modes"].items():
        with capsys.disabled():
            print(f"\n{mode}: hit@5 {figures['hit_rate']:.3f}  MRR {figures['mrr']:.3f}  "
                  f"nDCG@10 {figures['ndcg@10']:.3f}")
        assert all(0 <= figures[name] <= 1 for name in ("hit_rate", "mrr", "ndcg@10", "recall")), mode
    assert set(report["modes"]) == {"hybrid", "dense", "bm25"}
    assert report["modes"]["hybrid"]["hit_rate"] >= 0.6

    assert main(["rag", "eval", "samples", str(ASSETS / "questions.jsonl"), "--modes", "bm25", "--k", "3"]) == 0
    table = capsys.readouterr().out
    assert "hit@3" in table and "nDCG@10" in table and "\nbm25 " in table and "hybrid" not in table

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Where?", "file": "nowhere.pdf", "page": 1}\n', encoding="utf-8")
    assert main(["rag", "eval", "samples", str(bad)]) == 1
    assert "nowhere.pdf" in capsys.readouterr().err
