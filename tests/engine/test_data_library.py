"""`Engine.data`: the Data tab's whole view of the workspace (datasets, their rows, card, statistics, export, mixes
and prompt templates) through one object, so the UI never holds the workspace."""
from __future__ import annotations

import json

import pytest

from studio.data.builder import ImportRequest
from studio.data.cleaning import SplitConfig
from studio.errors import StudioError


def test_the_data_tab_s_operations_through_the_engine(workspace, tmp_path, smollm2_tokenizer_dir):
    from studio.engine import Engine

    src = tmp_path / "faq.jsonl"
    src.write_text("".join(json.dumps({"instruction": f"Question {i}?", "output": f"Answer {i}."}) + "\n"
                           for i in range(12)), encoding="utf-8")
    engine = Engine(workspace, start_jobs=False)
    try:
        data = engine.data
        result = data.import_file(ImportRequest(source=str(src), name="faq", split=SplitConfig(validation=2)))
        assert (result.name, result.imported) == ("faq", 12)
        assert [d["name"] for d in data.datasets()] == ["faq"]
        assert data.card("faq")["name"] == "faq"
        assert len(data.rows("faq", "validation")) == 2 and len(data.rows("faq")) == 10
        mixed = data.mix("faq-five", [("faq", 5)], SplitConfig(validation=0))
        assert mixed.imported == 5
        out = data.export("faq", tmp_path / "faq.csv", "csv")
        assert out.read_text(encoding="utf-8").count("Answer") == 10
        saved = data.save_template("qa", "Q: {{ instruction }}\nA: ")
        assert [t.name for t in data.templates()] == ["qa"] and data.template("qa").name == saved.name == "qa"
        from transformers import AutoTokenizer

        report = data.report("faq", AutoTokenizer.from_pretrained(smollm2_tokenizer_dir), 64)
        assert report["lengths"]["count"] == 10
        with pytest.raises(StudioError):
            data.card("nothing-here")
    finally:
        engine.shutdown()
