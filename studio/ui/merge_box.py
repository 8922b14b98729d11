"""The Runs tab's "Merge runs" box: pick finished LoRA runs on one base, a way to merge them and their weights, and
get a new run (`Engine.merge_runs`); optionally each source task's score before and after (`Engine.merge_scores`,
a few rows of each task's test split, ROUGE-L)."""
from __future__ import annotations

from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.ui.common import UiShared, error_notice

SCORE_ROWS = 16  # rows of each task scored from the page (the CLI's --eval scores the whole split)
COLUMNS = ("task", "run", "before", "after", "kept")


def merge_choices(runs: list[dict]) -> list[tuple[str, str]]:
    return [(f"{r['name']} · {r['dataset']} · {r['id']}", r["id"]) for r in runs
            if r["status"] == "completed" and r["method"] in ("lora", "qlora")]


def scores_table(rows: list[dict], texts: Any, lang: str) -> dict:
    data = [[r["task"], r["run"], f"{r['before']:.3f}", f"{r['after']:.3f}",
             "" if r["kept"] is None else f"{100 * r['kept']:.0f}%"] for r in rows]
    return {"headers": [texts.t(lang, f"merge.col.{c}") for c in COLUMNS], "data": data}


def build_merge(engine: Any, ui: UiShared, tab: Any) -> None:
    from studio.merge_runs import COMBINATIONS, DEFAULT_COMBINATION

    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731
    with loc.label(gr.Accordion(t("merge.title"), open=False, elem_id="studio-merge-box"), "merge.title"):
        runs = loc.label(gr.Dropdown(choices=[], value=[], multiselect=True, label=t("merge.runs"),
                                     info=t("merge.runs.info"), elem_id="studio-merge-runs"),
                         "merge.runs", "merge.runs.info")
        with gr.Row():
            combination = loc.label(gr.Dropdown(choices=list(COMBINATIONS), value=DEFAULT_COMBINATION,
                                                label=t("merge.combination"), info=t("merge.combination.info"),
                                                elem_id="studio-merge-combination"),
                                    "merge.combination", "merge.combination.info")
            weights = loc.label(gr.Textbox(value="", label=t("merge.weights"), info=t("merge.weights.info"),
                                           elem_id="studio-merge-weights"), "merge.weights", "merge.weights.info")
            density = loc.label(gr.Number(value=0.5, label=t("merge.density"), info=t("merge.density.info"),
                                          elem_id="studio-merge-density"), "merge.density", "merge.density.info")
        with gr.Row():
            name = loc.label(gr.Textbox(value="", label=t("merge.name"), elem_id="studio-merge-name"), "merge.name")
            score = loc.label(gr.Checkbox(value=False, label=t("merge.score"),
                                          elem_id="studio-merge-score"), "merge.score")
            go = loc.value(gr.Button(t("merge.button"), variant="primary", elem_id="studio-merge-go"), "merge.button")
        message = gr.Markdown("", elem_id="studio-merge-message")
        table = gr.Dataframe(value=None, visible=False, interactive=False, elem_id="studio-merge-scores")

    def listed():
        return gr.update(choices=merge_choices(engine.list_runs()))

    tab.select(listed, None, [runs], api_visibility="private")

    def on_merge(picked, how, weight_text, dens, label, with_scores, lang):
        try:
            weight_list = [float(w) for w in weight_text.split(",") if w.strip()] if weight_text.strip() else None
        except ValueError:
            exc = StudioError(f"'weights' is '{weight_text}'; give numbers separated by commas, e.g. 0.5,0.5.",
                              field="weights", key="merge.weights_numbers", weights=weight_text)
            return error_notice(texts, lang, exc), gr.skip(), gr.skip()
        try:
            run_id = engine.merge_runs(picked or [], how, weight_list, float(dens or 0), label)
            rows = engine.merge_scores(run_id, limit=SCORE_ROWS) if with_scores else []
        except StudioError as exc:
            return error_notice(texts, lang, exc), gr.skip(), gr.skip()
        done = texts.t(lang, "merge.done", run_id=run_id)
        return (done, gr.update(value=scores_table(rows, texts, lang), visible=bool(rows)),
                gr.update(choices=merge_choices(engine.list_runs())))

    go.click(on_merge, [runs, combination, weights, density, name, score, ui.lang], [message, table, runs],
             api_visibility="private")
