"""The export report's picture: what each artifact saves in size against what it loses in perplexity.

One marker per model (the reference at zero change), size in MB across, perplexity change in percent up, each
labelled with its name; the hover adds the ratio to the reference and the top-1 agreement. A good quantisation
sits far left and near zero. It reads the dict `studio.export.report.build_report` returns and takes the UI's
translator for its words (locale keys `export.report.chart.*`); it holds no state and imports no gradio.
"""
from __future__ import annotations

from typing import Callable

import plotly.graph_objects as go

REFERENCE_COLOR = "#6b7280"
ARTIFACT_COLOR = "#2563eb"


def _hover(entry: dict, t: Callable[[str], str]) -> str:
    agreement = entry.get("top1_agreement")
    top1 = "–" if agreement is None else f"{100 * agreement:.1f}%"
    return (f"<b>{entry['name']}</b> ({entry['format']})<br>{t('export.report.col.size_ratio')}: "
            f"{entry['size_ratio']:.3f}<br>{t('export.report.col.top1')}: {top1}")


def report_chart(report: dict, t: Callable[[str], str] = lambda key: key) -> go.Figure:
    """Size (MB) against perplexity change (%) for the reference and every artifact."""
    models = [report["reference"], *report["artifacts"]]
    fig = go.Figure()
    for entry, color in zip(models, [REFERENCE_COLOR] + [ARTIFACT_COLOR] * len(report["artifacts"])):
        fig.add_trace(go.Scatter(x=[entry["size_bytes"] / 1e6], y=[entry.get("ppl_delta_pct") or 0.0],
                                 mode="markers+text", text=[entry["name"]], textposition="top center",
                                 marker=dict(size=12, color=color), hovertext=[_hover(entry, t)],
                                 hoverinfo="text", showlegend=False))
    fig.add_hline(y=0, line=dict(color=REFERENCE_COLOR, width=1, dash="dot"))
    fig.update_layout(template="plotly_white", height=320, margin=dict(l=60, r=20, t=30, b=45),
                      xaxis_title=t("export.report.chart.size"), yaxis_title=t("export.report.chart.ppl_delta"),
                      uirevision="export-report")
    fig.update_xaxes(rangemode="tozero")
    return fig
