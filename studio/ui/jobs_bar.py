"""The header's job line and Jobs panel: what runs in the background (training step, export %, indexing page,
...), seen from any tab, and the recent jobs of every kind with Cancel and Retry.

The line reads `Engine.job_list(active_only=True)`, the same rows `studio jobs` prints, every 3 s while the
page is open; the panel lists the last jobs and acts through `Engine.cancel_job` / `Engine.retry_job` (what
`studio jobs cancel` / `retry` do). Both are for admins only: an annotator's page never starts the timer
and never sees the panel, and the actions are admin actions on the server too.
"""
from __future__ import annotations

from typing import Any

import time

import gradio as gr

from studio.errors import StudioError
from studio.ui.common import UiShared, error_text
from studio.ui.guard import allow, may

PANEL_ROWS = 30
COLUMNS = ("id", "kind", "status", "progress", "phase", "title", "devices", "started", "error")


def jobs_line(jobs: list[dict], texts: Any, lang: str) -> str:
    """One line: how many jobs run, then each as kind, title, status and how far."""
    if not jobs:
        return ""
    items = []
    for job in jobs:
        progress = f" {job['progress'] * 100:.0f}%" if job.get("progress") is not None else ""
        phase = f" ({_phase(job, texts, lang)})" if job.get("phase") else ""
        items.append(texts.t(lang, "jobs.item", id=job["id"], kind=texts.t(lang, f"jobs.kind.{job['kind']}"),
                             title=job.get("title") or "", status=texts.t(lang, f"jobs.status.{job['status']}"),
                             progress=progress, phase=phase))
    return texts.t(lang, "jobs.running", n=len(jobs)) + " " + " · ".join(items)


def _error(job: dict, texts: Any, lang: str) -> str:
    """The job's error sentence in `lang` (its key and values, the kind named in words), else its English one."""
    params = dict(job.get("error_params") or {})
    if "kind" in params:
        params["kind"] = texts.t(lang, f"jobs.kind.{params['kind']}")
    if "phase" in params and job.get("phase_key"):  # the phase it stopped at, as its row recorded it
        params["phase"] = _phase(job, texts, lang)
    return texts.sentence(lang, job.get("error_key"), params, job.get("error") or "")


def _devices(job: dict, texts: Any, lang: str) -> str:
    """Which devices a training job ran on: 'GPU 0, 1', or the CPU."""
    held = job.get("devices")
    if not held:
        return ""
    return texts.t(lang, "jobs.devices.cpu") if held == "cpu" else texts.t(lang, "jobs.devices.gpu",
                                                                           ids=held.replace(",", ", "))


def jobs_table(jobs: list[dict], texts: Any, lang: str) -> dict:
    """The panel's table: newest first, kind and status in words, progress in %, error sentence last."""
    rows = []
    for job in jobs[:PANEL_ROWS]:
        started = job.get("started_at") or job.get("created_at")
        rows.append([job["id"], texts.t(lang, f"jobs.kind.{job['kind']}"), texts.t(lang, f"jobs.status.{job['status']}"),
                     f"{job['progress'] * 100:.0f}%" if job.get("progress") is not None else "",
                     _phase(job, texts, lang), job.get("title") or "", _devices(job, texts, lang),
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(started)) if started else "",
                     _error(job, texts, lang)])
    return gr.update(value={"headers": [texts.t(lang, f"jobs.col.{c}") for c in COLUMNS], "data": rows})


def _phase(job: dict, texts: Any, lang: str) -> str:
    """The job's phase in the page language ('writing layer 12', 'page 3 of 10', 'done'), from its row's key."""
    params = job.get("phase_params")
    return texts.phase(lang, job.get("phase"), job.get("phase_key"), params if isinstance(params, dict) else {})


def build_jobs_bar(engine: Any, ui: UiShared) -> None:
    texts, loc, lang0 = ui.texts, ui.localizer, ui.default_lang
    line = gr.Markdown("", elem_id="studio-jobs")
    timer = gr.Timer(3.0, active=False)
    with loc.label(gr.Accordion(texts.t(lang0, "jobs.panel"), open=False, visible=False,
                                elem_id="studio-jobs-panel"), "jobs.panel") as panel:
        table = gr.Dataframe(value={"headers": [texts.t(lang0, f"jobs.col.{c}") for c in COLUMNS], "data": []},
                             interactive=False, wrap=True, elem_id="studio-jobs-table",
                             column_widths=["5%", "9%", "9%", "6%", "14%", "25%", "12%", "20%"])
        with gr.Row(equal_height=True):
            job_id = loc.label(gr.Number(label=texts.t(lang0, "jobs.id"), precision=0, minimum=1, scale=1,
                                         elem_id="studio-jobs-id"), "jobs.id")
            cancel = loc.value(gr.Button(texts.t(lang0, "jobs.cancel"), variant="stop", scale=1,
                                         elem_id="studio-jobs-cancel"), "jobs.cancel")
            retry = loc.value(gr.Button(texts.t(lang0, "jobs.retry"), scale=1, elem_id="studio-jobs-retry"),
                              "jobs.retry")
            refresh = loc.value(gr.Button(texts.t(lang0, "jobs.refresh"), scale=1, elem_id="studio-jobs-refresh"),
                                "jobs.refresh")
        notice = gr.Markdown("", elem_id="studio-jobs-notice")

    def render(lang: str) -> str:
        return jobs_line(engine.job_list(active_only=True), texts, lang)

    def listed(lang: str) -> dict:
        return jobs_table(engine.job_list(), texts, lang)

    @allow("page")
    def on_load(lang: str, request: gr.Request):
        admin = may(engine, request, "admin")
        if not admin:
            return gr.Timer(active=False), "", gr.update(visible=False), gr.skip()
        return gr.Timer(active=True), render(lang), gr.update(visible=True), listed(lang)

    ui.demo.load(on_load, [ui.lang], [timer, line, panel, table], api_visibility="private", show_progress="hidden")
    timer.tick(render, [ui.lang], [line], api_visibility="private", show_progress="hidden")
    ui.on_language(render, [], [line])
    ui.on_language(listed, [], [table])
    refresh.click(listed, [ui.lang], [table], api_visibility="private")

    def act(action: str, lang: str, number: float | None):
        if not number:
            return texts.t(lang, "jobs.id.missing"), gr.skip()
        try:
            if action == "cancel":
                job = engine.cancel_job(int(number))
                message = texts.t(lang, "jobs.cancel_asked", id=job["id"],
                                  status=texts.t(lang, f"jobs.status.{job['status']}"))
            else:
                started = engine.retry_job(int(number))
                message = texts.t(lang, f"jobs.retried.{started['kind'] if started['kind'] == 'train' else 'other'}",
                                  id=int(number))
        except StudioError as exc:
            gr.Warning(texts.error(lang, exc))
            return error_text(texts, lang, exc), gr.skip()
        return message, listed(lang)

    cancel.click(lambda lang, number: act("cancel", lang, number), [ui.lang, job_id], [notice, table],
                 api_visibility="private")
    retry.click(lambda lang, number: act("retry", lang, number), [ui.lang, job_id], [notice, table],
                api_visibility="private")
