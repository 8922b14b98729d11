"""The Evaluate tab: a base model and runs on one dataset split, side by side, with prompting baselines.

The form picks a base model, completed runs, a dataset and split, the metrics, how many
examples, the in-context baselines (k solved examples before each prompt) and the forgetting
check; "Evaluate" calls `Engine.evaluate` in a thread and shows its progress lines, then a
metrics table, the forgetting table, and each example's answers with the words that differ from
the reference marked (green: added, red: missing), optionally only the examples where the models
disagree most. All scoring is the engine's (`studio.evaluation`).
"""
from __future__ import annotations

import html
import queue
from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.evaluation import METRIC_GROUPS, word_diff
from studio.generation import inference_thread
from studio.models.refs import run_spec
from studio.phase import Phase
from studio.ui.common import UiShared, error_text
from studio.ui.metric_charts import metric_label

SHOT_CHOICES = (0, 1, 3, 5)
DISAGREE_TOP = 10


@dataclass
class EvaluateView:
    model: gr.Dropdown
    runs: gr.Dropdown
    dataset: gr.Dropdown
    split: gr.Radio
    metrics: gr.CheckboxGroup
    limit: gr.Number
    max_new_tokens: gr.Number
    shots: gr.CheckboxGroup
    forgetting: gr.Checkbox
    go: gr.Button
    message: gr.Markdown
    table: gr.Dataframe
    confusion: gr.Plot
    forgetting_table: gr.Dataframe
    only_disagree: gr.Checkbox
    examples: gr.HTML
    result: gr.State
    only_missed: gr.Checkbox


def confusion_figures(result: dict | None, texts: Any, lang: str) -> Any:
    """One heatmap per classification run, side by side (None when the evaluation had none)."""
    from studio.ui.metric_charts import confusion_figure

    confusion = (result or {}).get("confusion") or {}
    if not confusion:
        return None
    label, first = next(iter(confusion.items()))
    fig = confusion_figure(first, texts, lang)
    fig.update_layout(title=f"{label}: {texts.t(lang, 'eval.confusion')}")
    return fig


def results_table(result: dict | None, texts: Any, lang: str) -> dict:
    """One row per evaluated target (and baseline): its metrics."""
    columns = (result or {}).get("columns") or []
    headers = [texts.t(lang, "eval.col.target")] + [metric_label(texts, lang, f"eval_{c}") for c in columns]
    rows = []
    for row in (result or {}).get("rows", []):
        name = row["target"] if row["kind"] != "in-context" else texts.t(lang, "eval.shots", base=row["target"].split(" · ")[0],
                                                                         k=row["shots"])
        rows.append([name] + [f"{row[c]:.4g}" if isinstance(row.get(c), float) else "" for c in columns])
    return {"headers": headers, "data": rows}


def forgetting_table(result: dict | None, texts: Any, lang: str) -> dict:
    headers = [texts.t(lang, f"eval.forget.{c}") for c in ("target", "perplexity", "base", "change")]
    rows = [[f["target"], f"{f['perplexity']:.2f}",
             "" if f["base_perplexity"] is None else f"{f['base']}: {f['base_perplexity']:.2f}",
             "" if f["change"] is None else f"{f['change']:+.1%}"] for f in (result or {}).get("forgetting", [])]
    return {"headers": headers, "data": rows}


def diff_html(reference: str, output: str) -> str:
    """The output with its words that are not in the reference marked, and the reference's missing words struck."""
    parts = []
    for op, words in word_diff(reference, output):
        text = html.escape(words)
        parts.append(text if op == "same" else f'<span class="studio-diff-{op}">{text}</span>')
    return " ".join(parts)


def examples_html(result: dict | None, texts: Any, lang: str, only_disagree: bool, only_missed: bool = False) -> str:
    """Each example: prompt, reference and every target's answer with its differences and ROUGE-L (or exact
    match); `only_missed`: those some target did not answer exactly."""
    if not result:
        return f'<p class="studio-muted">{html.escape(texts.t(lang, "eval.examples.empty"))}</p>'
    examples = result["examples"]
    if only_missed:
        examples = [e for e in examples if e.get("missed")]
        if not examples:
            return f'<p class="studio-muted">{html.escape(texts.t(lang, "eval.examples.no_misses"))}</p>'
    if only_disagree:
        examples = sorted(examples, key=lambda e: -e["spread"])[:DISAGREE_TOP]
    if not any(e["outputs"] for e in examples):
        return f'<p class="studio-muted">{html.escape(texts.t(lang, "eval.examples.no_outputs"))}</p>'
    blocks = []
    for example in examples:
        score = texts.t(lang, f"eval.score.{result.get('example_score', 'rougeL')}")
        answers = "".join(
            f'<div class="studio-eval-answer"><b>{html.escape(label)}</b> · {html.escape(score)} '
            f'{example["rougeL"][label]:.2f}<div>{diff_html(example["reference"], output)}</div></div>'
            for label, output in example["outputs"].items())
        blocks.append(
            f'<div class="studio-eval-example"><div class="studio-eval-prompt">'
            f'<b>{html.escape(texts.t(lang, "eval.examples.prompt"))} #{example["index"] + 1}</b> '
            f'{html.escape(example["prompt"])}</div><div class="studio-eval-reference">'
            f'<b>{html.escape(texts.t(lang, "eval.examples.reference"))}</b> {html.escape(example["reference"])}</div>'
            f'{answers}</div>')
    return "".join(blocks)


def done_message(result: dict, texts: Any, lang: str) -> str:
    """'Scored 120 examples...' or, when the limit cut the split, 'Scored the first 20 of 120 examples...'."""
    available = result.get("available") or result["n"]
    key = "eval.done_limited" if result["n"] < available else "eval.done"
    return texts.t(lang, key, n=result["n"], available=available, seconds=result["seconds"], path=result["saved"])


def run_choices(runs: list[dict]) -> list[tuple[str, str]]:
    return [(f"{r['name']} · {r['stage']} · {r['id']}", r["id"]) for r in runs]  # generative and classify runs


def build_evaluate(engine: Any, ui: UiShared, tab: Any) -> EvaluateView:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731
    metric_choices = lambda lg: [(texts.t(lg, f"eval.metric.{m}"), m) for m in METRIC_GROUPS]  # noqa: E731
    loc.value(gr.Markdown(t("eval.intro")), "eval.intro")
    with gr.Row():
        model = loc.label(gr.Dropdown(choices=[], value=None, allow_custom_value=True, label=t("eval.model"),
                                      info=t("eval.model.info"), scale=2, elem_id="studio-eval-model"),
                          "eval.model", "eval.model.info")
        runs = loc.label(gr.Dropdown(choices=[], value=[], multiselect=True, label=t("eval.runs"),
                                     info=t("eval.runs.info"), scale=3, elem_id="studio-eval-runs"),
                         "eval.runs", "eval.runs.info")
        dataset = loc.label(gr.Dropdown(choices=[], value=None, allow_custom_value=True, label=t("eval.dataset"),
                                        scale=2, elem_id="studio-eval-dataset"), "eval.dataset")
    with gr.Row():
        split = loc.label(gr.Radio(choices=["test", "validation", "train"], value="test", label=t("eval.split"),
                                   info=t("eval.split.info"), elem_id="studio-eval-split"), "eval.split", "eval.split.info")
        metrics = gr.CheckboxGroup(choices=metric_choices(lang), value=list(METRIC_GROUPS), label=t("eval.metrics"),
                                   elem_id="studio-eval-metrics")
        loc.add(metrics, lambda lg: gr.update(label=texts.t(lg, "eval.metrics"), choices=metric_choices(lg)))
        limit = loc.label(gr.Number(value=20, minimum=1, maximum=100000, precision=0, label=t("eval.limit"),
                                    info=t("eval.limit.info"), elem_id="studio-eval-limit"), "eval.limit", "eval.limit.info")
        max_new = loc.label(gr.Number(value=128, minimum=1, maximum=2048, precision=0, label=t("eval.max_new"),
                                      info=t("eval.max_new.info"), elem_id="studio-eval-max-new"),
                            "eval.max_new", "eval.max_new.info")
    with gr.Row():
        shots = loc.label(gr.CheckboxGroup(choices=list(SHOT_CHOICES), value=[0], label=t("eval.shots.label"),
                                           info=t("eval.shots.info"), elem_id="studio-eval-shots"),
                          "eval.shots.label", "eval.shots.info")
        forgetting = loc.label(gr.Checkbox(value=True, label=t("eval.forgetting"), info=t("eval.forgetting.info"),
                                           elem_id="studio-eval-forgetting"), "eval.forgetting", "eval.forgetting.info")
        go = loc.value(gr.Button(t("eval.go"), variant="primary", elem_id="studio-eval-go"), "eval.go")
    message = gr.Markdown("", elem_id="studio-eval-message")
    table = gr.Dataframe(value=results_table(None, texts, lang), interactive=False, wrap=True, elem_id="studio-eval-table")
    confusion = gr.Plot(value=None, visible=False, show_label=False, elem_id="studio-eval-confusion")
    forget = loc.label(gr.Dataframe(value=forgetting_table(None, texts, lang), interactive=False, wrap=True,
                                    label=t("eval.forget.title"), elem_id="studio-eval-forget"), "eval.forget.title")
    with gr.Row():
        only = loc.label(gr.Checkbox(value=False, label=t("eval.only_disagree"), elem_id="studio-eval-disagree"),
                         "eval.only_disagree")
        missed = loc.label(gr.Checkbox(value=False, label=t("eval.only_missed"), elem_id="studio-eval-missed"),
                           "eval.only_missed")
    examples = gr.HTML(examples_html(None, texts, lang, False), elem_id="studio-eval-examples")
    view = EvaluateView(model, runs, dataset, split, metrics, limit, max_new, shots, forgetting, go, message, table, confusion,
                        forget, only, examples, gr.State(None), missed)
    _wire(view, engine, ui, tab)
    return view


def _wire(view: EvaluateView, engine: Any, ui: UiShared, tab: Any) -> None:
    texts = ui.texts

    def refresh(model, dataset, picked):
        models, datasets = engine.model_choices(), engine.dataset_choices()
        runs = engine.evaluable_runs()
        ids = {r["id"] for r in runs}
        return (gr.update(choices=models, value=model or (models[0] if models else None)),
                gr.update(choices=datasets, value=dataset or next((d for d in datasets if "sample" in d),
                                                                  datasets[0] if datasets else None)),
                gr.update(choices=run_choices(runs), value=[p for p in picked or [] if p in ids]))

    tab.select(refresh, [view.model, view.dataset, view.runs], [view.model, view.dataset, view.runs],
               api_visibility="private", show_progress="hidden")

    def _confusion_update(result, lang):
        figure = confusion_figures(result, texts, lang)
        return gr.update(value=figure, visible=figure is not None)

    def on_go(model, run_ids, dataset, split, metrics, limit, max_new, shots, forgetting, only, missed, lang):
        targets = ([model] if model else []) + [run_spec(r) for r in run_ids or []]
        lines: queue.Queue = queue.Queue()
        box: dict[str, Any] = {}

        def work():
            try:
                box["result"] = engine.evaluate(targets, dataset, split=split, metrics=list(metrics or []),
                                                limit=int(limit) if limit else None,
                                                shots=[int(k) for k in shots or []], forgetting=bool(forgetting),
                                                max_new_tokens=int(max_new or 128), emit=lines.put,
                                                rows_done=lambda target, done, total: lines.put(Phase(
                                                    f"{target}: {done} of {total} rows", "eval_rows", target=target,
                                                    done=done, total=total)))
            except StudioError as exc:
                box["error"] = exc
            finally:
                lines.put(None)

        inference_thread().submit(work)  # the thread the playground generates on: one CPU thread pool
        while (line := lines.get()) is not None:
            yield {view.message: texts.t(lang, "eval.running", step=texts.phase(lang, line))}
        if "error" in box:
            gr.Warning(texts.error(lang, box["error"]))
            yield {view.message: error_text(texts, lang, box["error"])}
            return
        result = box["result"]
        yield {view.result: result, view.message: done_message(result, texts, lang),
               view.table: results_table(result, texts, lang), view.forgetting_table: forgetting_table(result, texts, lang),
               view.confusion: _confusion_update(result, lang),
               view.examples: examples_html(result, texts, lang, only, missed)}

    inputs = [view.model, view.runs, view.dataset, view.split, view.metrics, view.limit, view.max_new_tokens,
              view.shots, view.forgetting, view.only_disagree, view.only_missed, ui.lang]
    view.go.click(on_go, inputs, [view.result, view.message, view.table, view.forgetting_table, view.confusion,
                                  view.examples], api_visibility="private")
    for box in (view.only_disagree, view.only_missed):
        box.change(lambda result, only, missed, lang: examples_html(result, texts, lang, only, missed),
                   [view.result, view.only_disagree, view.only_missed, ui.lang], [view.examples],
                   api_visibility="private")

    def redraw(lang, result, only, missed):
        return (results_table(result, texts, lang), forgetting_table(result, texts, lang),
                _confusion_update(result, lang), examples_html(result, texts, lang, only, missed))

    ui.on_language(redraw, [view.result, view.only_disagree, view.only_missed],
                   [view.table, view.forgetting_table, view.confusion, view.examples])
