"""The Evaluate tab's rendering: metric table rows (with in-context baselines named), forgetting rows, and the
per-example view with word differences, in both languages."""
from __future__ import annotations

import pytest

from studio.ui.evaluate_tab import diff_html, examples_html, forgetting_table, results_table
from studio.ui.i18n import Texts

RESULT = {
    "columns": ["rougeL", "perplexity"],
    "rows": [{"target": "base", "kind": "model", "shots": 0, "rougeL": 0.25, "perplexity": 12.5},
             {"target": "tuned (ab12)", "kind": "run", "shots": 0, "rougeL": 0.75, "perplexity": 4.0},
             {"target": "base · 3-shot", "kind": "in-context", "shots": 3, "rougeL": 0.5, "perplexity": 9.0}],
    "forgetting": [{"target": "tuned (ab12)", "perplexity": 30.0, "base": "base", "base_perplexity": 25.0,
                    "change": 0.2}],
    "examples": [{"index": 0, "prompt": "Say hi", "reference": "hello there", "spread": 0.5,
                  "outputs": {"base": "bye there", "tuned (ab12)": "hello there"},
                  "rougeL": {"base": 0.5, "tuned (ab12)": 1.0}, "missed": ["base"]},
                 {"index": 1, "prompt": "Count", "reference": "one two", "spread": 0.0,
                  "outputs": {"base": "one two", "tuned (ab12)": "one two"}, "rougeL": {"base": 1.0, "tuned (ab12)": 1.0},
                  "missed": []}],
}


@pytest.fixture(scope="module")
def texts():
    return Texts.load()


def test_the_table_names_baselines_and_formats_metrics(texts):
    table = results_table(RESULT, texts, "es")
    assert table["headers"] == ["Modelo o ejecución", "ROUGE-L", "perplejidad"]
    assert table["data"][2] == ["base con 3 ejemplos en el prompt", "0.5", "9"]
    assert forgetting_table(RESULT, texts, "en")["data"] == [["tuned (ab12)", "30.00", "base: 25.00", "+20.0%"]]


def test_differences_from_the_reference_are_marked_and_escaped():
    assert diff_html("hello there", "bye there") == (
        '<span class="studio-diff-removed">hello</span> <span class="studio-diff-added">bye</span> there')
    assert "&lt;b&gt;" in diff_html("x", "<b>")


def test_the_examples_view_can_keep_only_the_most_disputed(texts):
    every = examples_html(RESULT, texts, "en", only_disagree=False)
    assert every.count("studio-eval-example") == 2 and "ROUGE-L 1.00" in every
    disputed = examples_html(RESULT, texts, "en", only_disagree=True)
    assert disputed.index("Say hi") < disputed.index("Count")  # the widest spread first
    assert "aparecen aquí" in examples_html(None, texts, "es", False)


def test_the_examples_view_can_keep_only_the_misses_and_the_message_names_a_limit(texts):
    from studio.ui.evaluate_tab import done_message

    missed = examples_html(RESULT, texts, "en", only_disagree=False, only_missed=True)
    assert missed.count("studio-eval-example") == 1 and "Say hi" in missed and "Count" not in missed
    none = examples_html({**RESULT, "examples": RESULT["examples"][1:]}, texts, "es", False, True)
    assert "respondieron exactamente" in none
    limited = {"n": 20, "available": 120, "seconds": 3.5, "saved": "/x/eval.json"}
    assert done_message(limited, texts, "en").startswith("Scored the first 20 of 120 examples")
    assert done_message({**limited, "available": 20}, texts, "es").startswith("20 ejemplos puntuados")
