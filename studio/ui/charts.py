"""Pictures of a run: the progress bar (HTML) and the loss chart (plotly), drawn from `run_status`.

Both take the plain dict that `Engine.run_status` returns and the `Texts` of the user's language,
and return something a gradio component shows (an HTML string, a plotly figure). They hold no
state and call no engine function; the train tab decides when to redraw them.
"""
from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go

from studio.ui.i18n import Texts

TRAIN_COLOR = "#2563eb"
EVAL_COLOR = "#ea580c"


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def status_label(texts: Texts, lang: str, status: str | None) -> str:
    return texts.t(lang, f"status.{status}") if status else "–"


def queue_message(texts: Texts, lang: str, ahead: int) -> str:
    key = "msg.queued_one" if ahead == 1 else "msg.queued_many"
    return texts.t(lang, key, n=ahead)


def phase_words(phase: str | None, texts: Texts, lang: str) -> str:
    """'evaluating 5/16' (as the job row says it) in the page's language; '' when the run is on its steps."""
    if not phase:
        return ""
    name, _, count = phase.partition(" ")
    done, _, total = count.partition("/")
    key = f"progress.phase.{name}"
    return texts.t(lang, key, done=done or "?", total=total or "?") if texts.get(lang, key) else phase


def progress_html(status: dict | None, texts: Texts, lang: str) -> str:
    """A bar with step/total, percent, ETA, tokens/s and the run's state; a hint when no run is shown."""
    if not status:
        return f'<div class="studio-progress studio-progress-empty">{html.escape(texts.t(lang, "progress.none"))}</div>'
    state = status.get("status") or "queued"
    step = int(status.get("step") or 0)
    total = status.get("total_steps") or 0
    percent = min(100.0, 100.0 * step / total) if total else 0.0
    if state == "completed":
        percent = 100.0
    ahead = status.get("queue_position") or 0
    if state == "queued":
        facts = [queue_message(texts, lang, ahead) if ahead else texts.t(lang, "progress.waiting")]
    else:
        facts = [texts.t(lang, "progress.step", step=step, total=total or "?"), f"{percent:.0f}%"]
    phase = phase_words(status.get("phase"), texts, lang)
    if phase:
        facts.append(phase)
    if state in ("running", "cancelling"):
        facts.append(texts.t(lang, "progress.eta", eta=format_duration(status.get("eta_s"))))
    if status.get("tokens_per_s") and state != "queued":
        facts.append(texts.t(lang, "progress.tokens", tps=f"{status['tokens_per_s']:.0f}"))
    error = ""
    if state in ("failed", "interrupted") and status.get("error"):
        error = f'<div class="studio-progress-error">{html.escape(str(status["error"]))}</div>'
    name = html.escape(str(status.get("name") or status.get("id") or ""))
    return (
        f'<div class="studio-progress" data-status="{html.escape(state)}" data-step="{step}" '
        f'data-total="{total}">'
        f'<div class="studio-progress-head"><b>{name}</b>'
        f'<span class="studio-status studio-status-{html.escape(state)}">{html.escape(status_label(texts, lang, state))}'
        f"</span></div>"
        f'<div class="studio-bar"><div class="studio-bar-fill" style="width:{percent:.1f}%"></div></div>'
        f'<div class="studio-progress-facts">{html.escape(" · ".join(facts))}</div>{error}</div>'
    )


def loss_points(metrics: list[dict[str, Any]] | None) -> tuple[list, list, list, list]:
    """(train steps, train losses, eval steps, eval losses) from metric events."""
    train_x, train_y, eval_x, eval_y = [], [], [], []
    for event in metrics or []:
        step = event.get("step")
        if step is None:
            continue
        if event.get("loss") is not None:
            train_x.append(step)
            train_y.append(event["loss"])
        if event.get("eval_loss") is not None:
            eval_x.append(step)
            eval_y.append(event["eval_loss"])
    return train_x, train_y, eval_x, eval_y


def integer_steps(fig: Any, steps: list, **axis: Any) -> None:
    """Whole-number step ticks: one tick per step while there are at most ten, never 2.5 (plotly's default on
    short runs)."""
    fig.update_xaxes(tickformat="d", **({"dtick": 1} if steps and max(steps) <= 10 else {}), **axis)


def loss_figure(metrics: list[dict[str, Any]] | None, texts: Texts, lang: str) -> go.Figure:
    """Train loss as a line, eval loss as a dashed line with markers; an empty chart says so."""
    train_x, train_y, eval_x, eval_y = loss_points(metrics)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=train_x, y=train_y, mode="lines+markers" if len(train_x) < 30 else "lines",
                             name=texts.t(lang, "chart.train_loss"), line=dict(color=TRAIN_COLOR, width=2)))
    if eval_x:
        fig.add_trace(go.Scatter(x=eval_x, y=eval_y, mode="lines+markers", name=texts.t(lang, "chart.eval_loss"),
                                 line=dict(color=EVAL_COLOR, width=2, dash="dash")))
    fig.update_layout(template="plotly_white", height=300, margin=dict(l=50, r=20, t=30, b=40),
                      xaxis_title=texts.t(lang, "chart.step"), yaxis_title=texts.t(lang, "chart.loss"),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"), uirevision="loss")
    integer_steps(fig, train_x + eval_x)
    if not train_x and not eval_x:
        fig.add_annotation(text=texts.t(lang, "chart.empty"), showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5, font=dict(size=14, color="#6b7280"))
        fig.update_xaxes(range=[0, 10])
        fig.update_yaxes(range=[0, 4])
    return fig


SAMPLE_COLUMNS = ("prompt", "reference", "prediction")
PROMPT_TAIL = 300  # the end of a long prompt is the part that asks the question


def samples_table(samples: list[dict[str, Any]], texts: Texts, lang: str) -> dict:
    """The latest evaluation's generations beside their references, as a Dataframe value."""
    rows = [[("…" + s["prompt"][-PROMPT_TAIL:]) if len(s["prompt"]) > PROMPT_TAIL else s["prompt"],
             s["reference"], s["prediction"]] for s in samples]
    return {"headers": [texts.t(lang, f"samples.col.{c}") for c in SAMPLE_COLUMNS], "data": rows}
