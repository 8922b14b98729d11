"""Charts of every metric a run logs, and of one metric across runs (plotly), from metrics.jsonl events.

`metrics_figure` draws one small panel per quantity that has data (learning rate, gradient norm,
tokens/s, perplexity, ROUGE, BLEU, exact match, accuracy/F1, distillation terms, and any other
eval_* number a stage logs), in a two-column grid that grows as the run logs; hovering a point
shows its step, epoch and value. `compare_figure` overlays one metric of several runs. Both are
pure: events in, figure out.
"""
from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from studio.ui.charts import integer_steps
from studio.ui.i18n import Texts

# (panel, metric keys drawn in it), in reading order; the loss has its own chart in the Train tab.
PANELS = (
    ("loss", ("loss", "eval_loss")),
    ("lr", ("lr",)),
    ("grad_norm", ("grad_norm",)),
    ("tokens_per_s", ("tokens_per_s",)),
    ("perplexity", ("eval_perplexity",)),
    ("rouge", ("eval_rouge1", "eval_rouge2", "eval_rougeL")),
    ("bleu", ("eval_bleu",)),
    ("exact_match", ("eval_exact_match",)),
    ("classification", ("eval_accuracy", "eval_f1")),
    ("distill", ("distill_kl", "distill_ce")),
    ("pref_rewards", ("rewards/chosen", "rewards/rejected", "eval_rewards/chosen", "eval_rewards/rejected")),
    ("pref_margin", ("rewards/margins", "margin", "eval_rewards/margins", "eval_margin")),
    ("pref_accuracy", ("rewards/accuracies", "accuracy", "eval_rewards/accuracies")),
    ("reward", ("reward", "reward_std")),
    ("kl", ("kl", "eval_kl")),
)
SKIPPED = {"step", "total_steps", "epoch", "type", "eval_runtime", "eval_samples_per_second",
           "eval_steps_per_second", "eval_num_tokens", "num_tokens", "eval_entropy", "entropy",
           "mean_token_accuracy", "eval_mean_token_accuracy"}
COLORS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777")
HOVER = "step %{x} · epoch %{customdata:.2f}<br>%{fullData.name}: %{y:.4g}<extra></extra>"


def metric_series(metrics: list[dict[str, Any]] | None) -> dict[str, dict[str, list]]:
    """{metric: {"x": steps, "y": values, "epoch": epochs}} for every numeric metric in the events."""
    epochs: dict[int, float] = {}
    for event in metrics or []:
        if event.get("step") is not None and isinstance(event.get("epoch"), (int, float)):
            epochs[event["step"]] = float(event["epoch"])
    series: dict[str, dict[str, list]] = {}
    last_epoch = 0.0
    for event in metrics or []:
        step = event.get("step")
        if step is None:
            continue
        last_epoch = epochs.get(step, last_epoch)
        for key, value in event.items():
            if key in SKIPPED or isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                continue
            if key == "tokens_per_s" and value <= 0:
                continue  # the first step has no rate yet
            s = series.setdefault(key, {"x": [], "y": [], "epoch": []})
            s["x"].append(step)
            s["y"].append(value)
            s["epoch"].append(last_epoch)
    return series


def panels_with_data(series: dict[str, dict[str, list]], include_loss: bool = False) -> list[tuple[str, tuple]]:
    """The panels that have at least one point, then one panel per other eval_* metric."""
    panels = [(name, keys) for name, keys in PANELS if (include_loss or name != "loss")
              and any(k in series for k in keys)]
    known = {k for _, keys in PANELS for k in keys}
    panels += [(key, (key,)) for key in sorted(series) if key.startswith("eval_") and key not in known]
    return panels


def metric_label(texts: Texts, lang: str, key: str) -> str:
    label = texts.get(lang, f"chart.metric.{key}")
    return label or key.removeprefix("eval_").replace("_", " ")


def panel_title(texts: Texts, lang: str, panel: str) -> str:
    return texts.get(lang, f"chart.panel.{panel}") or metric_label(texts, lang, panel)


def metrics_figure(metrics: list[dict[str, Any]] | None, texts: Texts, lang: str) -> go.Figure:
    """One panel per logged quantity (two per row); an empty figure says metrics will appear."""
    series = metric_series(metrics)
    panels = panels_with_data(series)
    if not panels:
        fig = go.Figure()
        fig.add_annotation(text=texts.t(lang, "chart.metrics_empty"), showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5, font=dict(size=14, color="#6b7280"))
        fig.update_layout(template="plotly_white", height=160, margin=dict(l=20, r=20, t=20, b=20))
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return fig
    rows = math.ceil(len(panels) / 2)
    fig = make_subplots(rows=rows, cols=2, subplot_titles=[panel_title(texts, lang, p) for p, _ in panels],
                        vertical_spacing=min(0.3 / rows + 0.04, 0.18), horizontal_spacing=0.1)
    for i, (_, keys) in enumerate(panels):
        row, col = i // 2 + 1, i % 2 + 1
        for j, key in enumerate(k for k in keys if k in series):
            s = series[key]
            fig.add_trace(go.Scatter(x=s["x"], y=s["y"], customdata=s["epoch"], name=metric_label(texts, lang, key),
                                     mode="lines+markers" if len(s["x"]) < 30 else "lines", hovertemplate=HOVER,
                                     line=dict(color=COLORS[j % len(COLORS)], width=2), legendgroup=key,
                                     showlegend=len(keys) > 1), row=row, col=col)
        fig.update_xaxes(title_text=texts.t(lang, "chart.step"), row=row, col=col, title_standoff=2)
        integer_steps(fig, [x for key in keys if key in series for x in series[key]["x"]], row=row, col=col)
    fig.update_layout(template="plotly_white", height=240 * rows + 40, margin=dict(l=50, r=20, t=40, b=30),
                      legend=dict(orientation="h", y=1.02 + 0.02 * rows, yanchor="bottom", x=1, xanchor="right"),
                      uirevision="metrics")
    return fig


def compare_figure(runs: list[dict[str, Any]], metric: str, texts: Texts, lang: str) -> go.Figure:
    """`metric` of several runs overlaid; `runs` are {"label", "metrics"} dicts."""
    fig = go.Figure()
    for i, run in enumerate(runs):
        s = metric_series(run["metrics"]).get(metric)
        if not s:
            continue
        fig.add_trace(go.Scatter(x=s["x"], y=s["y"], customdata=s["epoch"], name=run["label"],
                                 mode="lines+markers" if len(s["x"]) < 30 else "lines", hovertemplate=HOVER,
                                 line=dict(color=COLORS[i % len(COLORS)], width=2)))
    fig.update_layout(template="plotly_white", height=360, margin=dict(l=50, r=20, t=40, b=40),
                      title=metric_label(texts, lang, metric), xaxis_title=texts.t(lang, "chart.step"),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    if not fig.data:
        fig.add_annotation(text=texts.t(lang, "compare.empty"), showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5, font=dict(size=14, color="#6b7280"))
    return fig


def confusion_figure(confusion: dict | None, texts: Texts, lang: str) -> go.Figure | None:
    """The latest confusion matrix of a classification run as a heatmap (rows: true label), or None."""
    if not confusion or not confusion.get("labels"):
        return None
    labels, matrix = confusion["labels"], confusion["matrix"]
    fig = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, colorscale="Blues", showscale=False,
                               text=matrix, texttemplate="%{text}",
                               hovertemplate=texts.t(lang, "chart.confusion.hover") + "<extra></extra>"))
    fig.update_layout(template="plotly_white", height=120 + 40 * len(labels), margin=dict(l=80, r=20, t=40, b=60),
                      title=texts.t(lang, "chart.confusion.title", step=confusion.get("step", "")),
                      xaxis_title=texts.t(lang, "chart.confusion.predicted"), yaxis_title=texts.t(lang, "chart.confusion.true"),
                      yaxis=dict(autorange="reversed"))
    return fig
