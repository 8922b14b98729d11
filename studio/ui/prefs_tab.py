"""The Preferences tab: annotators rank candidate answers; admins create task sets, read agreement and export.

"Rank" is the annotator screen: a name (the login name when the studio runs with --auth), a task set,
the guidelines one click away, the prompt and its K answers in an order shuffled per annotator with the
models hidden, and the ranking typed or keyed ("2 > 1 = 3": the answer numbers best first, '=' for a
tie; Enter submits, S skips, F flags). Every submission is stored at once (`PrefStore.submit`) and the
next item follows. "Create", "Results" and "Arena" live in `prefs_admin` and `arena_tab`.
"""
from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.prefs.ranking import format_ranking_text, parse_ranking_text
from studio.prefs.store import to_candidate_ranking
from studio.ui.common import UiShared, error_text

MAX_K = 6
# Keyboard shortcuts of the annotator screen: answer numbers build the ranking, '=' ties the next answer with the
# last one, Backspace takes the last one back, Enter submits, S skips, F goes to the flag reason.
RANK_KEYS_JS = """
<script>
document.addEventListener('keydown', (event) => {
  const box = document.querySelector('#studio-prefs-ranking textarea, #studio-prefs-ranking input');
  if (!box || box.offsetParent === null) return;
  const active = document.activeElement;
  const typing = active && (active.tagName === 'TEXTAREA' || active.tagName === 'INPUT') && active !== box;
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  const set = (value) => { box.value = value; box.dispatchEvent(new Event('input', {bubbles: true})); };
  const click = (id) => { const b = document.querySelector(id); if (b) b.click(); };
  const text = box.value.trim();
  if (/^[1-6]$/.test(event.key)) {
    if (active === box) return;
    const sep = text === '' ? '' : (text.endsWith('=') ? ' ' : ' > ');
    set(text + sep + event.key); event.preventDefault();
  } else if (event.key === '=' && active !== box) {
    if (text !== '' && !text.endsWith('=')) set(text + ' ='); event.preventDefault();
  } else if (event.key === 'Backspace' && active !== box) {
    set(text.replace(/\\s*[>=]?\\s*\\d*\\s*=?$/, '')); event.preventDefault();
  } else if (event.key === 'Enter') {
    click('#studio-prefs-submit'); event.preventDefault();
  } else if ((event.key === 's' || event.key === 'S') && active !== box) {
    click('#studio-prefs-skip'); event.preventDefault();
  } else if ((event.key === 'f' || event.key === 'F') && active !== box) {
    const reason = document.querySelector('#studio-prefs-flag-reason textarea, #studio-prefs-flag-reason input');
    if (reason) reason.focus(); event.preventDefault();
  }
});
</script>
"""


@dataclass
class RankView:
    annotator: gr.Textbox
    task_set: gr.Dropdown
    start: gr.Button
    progress: gr.Markdown
    guidelines: gr.Markdown
    prompt: gr.Markdown
    columns: list[gr.Column]
    answers: list[gr.Markdown]
    suggestion: gr.Markdown
    ranking: gr.Textbox
    rationale: gr.Textbox
    submit: gr.Button
    skip: gr.Button
    flag_reason: gr.Textbox
    flag: gr.Button
    notice: gr.Markdown
    item: gr.State


def build_prefs(engine: Any, ui: UiShared, tab: Any) -> None:
    from studio.ui.arena_tab import build_arena
    from studio.ui.prefs_admin import build_create, build_results

    texts, lang = ui.texts, ui.default_lang
    with gr.Tabs():
        with gr.Tab(texts.t(lang, "prefs.tab.rank"), elem_id="studio-prefs-rank") as rank_tab:
            view = _build_rank(ui)
        with gr.Tab(texts.t(lang, "prefs.tab.create"), elem_id="studio-prefs-create") as create_tab:
            build_create(engine, ui)
        with gr.Tab(texts.t(lang, "prefs.tab.results"), elem_id="studio-prefs-results") as results_tab:
            build_results(engine, ui, results_tab)
        with gr.Tab(texts.t(lang, "prefs.tab.arena"), elem_id="studio-prefs-arena") as arena_tab:
            build_arena(engine, ui)
    for sub, key in ((rank_tab, "prefs.tab.rank"), (create_tab, "prefs.tab.create"),
                     (results_tab, "prefs.tab.results"), (arena_tab, "prefs.tab.arena")):
        ui.localizer.label(sub, key)
    # Creating task sets and exporting are for admins (the --auth accounts, or annotator accounts made admin);
    # without accounts the one local user is the admin.
    ui.demo.load(lambda request: [gr.update(visible=is_admin(engine, request))] * 2, None, [create_tab, results_tab],
                 api_visibility="private", show_progress="hidden")
    _wire_rank(view, engine, ui, tab)


def is_admin(engine: Any, request: Any) -> bool:
    user = getattr(request, "username", None) if request else None
    if not user or user in getattr(engine, "ui_admins", set()):
        return True
    account = engine.prefs.store.annotator(user)
    return bool(account and account["role"] == "admin")


def _build_rank(ui: UiShared) -> RankView:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731
    with gr.Row(equal_height=True):
        annotator = loc.label(gr.Textbox(label=t("prefs.annotator"), info=t("prefs.annotator.info"), scale=2,
                                         elem_id="studio-prefs-annotator"), "prefs.annotator", "prefs.annotator.info")
        task_set = loc.label(gr.Dropdown(choices=[], value=None, label=t("prefs.task_set"), scale=2,
                                         elem_id="studio-prefs-taskset"), "prefs.task_set")
        start = loc.value(gr.Button(t("prefs.start"), variant="primary", scale=1, elem_id="studio-prefs-start"),
                          "prefs.start")
    progress = gr.Markdown("", elem_id="studio-prefs-progress")
    with loc.label(gr.Accordion(t("prefs.guidelines"), open=False), "prefs.guidelines"):
        guidelines = gr.Markdown(t("prefs.guidelines.none"), elem_id="studio-prefs-guidelines")
    prompt = gr.Markdown("", elem_id="studio-prefs-prompt")
    columns, answers = [], []
    with gr.Row():
        for n in range(1, MAX_K + 1):
            with gr.Column(visible=False, min_width=220, elem_classes="studio-prefs-card") as column:
                columns.append(column)
                answers.append(gr.Markdown("", elem_id=f"studio-prefs-answer-{n}"))
    suggestion = gr.Markdown("", elem_id="studio-prefs-suggestion")
    with gr.Row(equal_height=True):
        ranking = loc.label(gr.Textbox(label=t("prefs.ranking"), info=t("prefs.ranking.info"),
                                       placeholder="2 > 1 = 3", scale=3, elem_id="studio-prefs-ranking"),
                            "prefs.ranking", "prefs.ranking.info")
        rationale = loc.label(gr.Textbox(label=t("prefs.rationale"), scale=3, elem_id="studio-prefs-rationale"),
                              "prefs.rationale")
        submit = loc.value(gr.Button(t("prefs.submit"), variant="primary", scale=1, elem_id="studio-prefs-submit"),
                           "prefs.submit")
    with gr.Row(equal_height=True):
        skip = loc.value(gr.Button(t("prefs.skip"), scale=1, elem_id="studio-prefs-skip"), "prefs.skip")
        flag_reason = loc.label(gr.Textbox(label=t("prefs.flag.reason"), scale=4, elem_id="studio-prefs-flag-reason"),
                                "prefs.flag.reason")
        flag = loc.value(gr.Button(t("prefs.flag"), variant="stop", scale=1, elem_id="studio-prefs-flag"), "prefs.flag")
    notice = gr.Markdown("", elem_id="studio-prefs-notice")
    return RankView(annotator, task_set, start, progress, guidelines, prompt, columns, answers, suggestion, ranking,
                    rationale, submit, skip, flag_reason, flag, notice, gr.State(None))


def _wire_rank(view: RankView, engine: Any, ui: UiShared, tab: Any) -> None:
    texts = ui.texts
    prefs = lambda: engine.prefs  # noqa: E731 - made on first use

    def refresh(current, who, request: gr.Request):
        names = [s["name"] for s in prefs().store.task_sets()]
        user = getattr(request, "username", None) if request else None
        return (gr.update(choices=names, value=current if current in names else (names[0] if names else None)),
                gr.update(value=user, interactive=False) if user else gr.update())

    for trigger in (tab.select, ui.demo.load):
        trigger(refresh, [view.task_set, view.annotator], [view.task_set, view.annotator],
                api_visibility="private", show_progress="hidden")

    item_outputs = [view.item, view.prompt, *view.columns, *view.answers, view.suggestion, view.guidelines,
                    view.progress, view.ranking, view.rationale, view.flag_reason]

    def show(lang, task_set, who, note=""):
        """The outputs for this annotator's next item (or 'all done')."""
        who, task_set = (who or "").strip(), (task_set or "").strip()
        if not who:
            raise StudioError("Type your name first, so that your rankings are kept apart from others'.",
                              field="prefs.annotator", key="prefs.ui.no_annotator")
        item = prefs().store.next_item(task_set, who)
        state = prefs().store.progress(task_set)
        mine = next((a for a in state["annotators"] if a["annotator"] == who), {})
        progress = texts.t(lang, "prefs.progress", mine=mine.get("ranked") or 0, complete=state["complete"],
                           items=state["items"], overlap=state["overlap"])
        if item is None:
            return [None, texts.t(lang, "prefs.done"), *[gr.update(visible=False)] * MAX_K, *[""] * MAX_K, "",
                    gr.update(), progress, "", "", ""], note
        k = len(item["candidates"])
        cards = [f"**{texts.t(lang, 'prefs.answer', n=n + 1)}**\n\n{html.escape(text)}"
                 for n, text in enumerate(item["candidates"])]
        hint = ""
        if item["suggestions"]:
            s = item["suggestions"][0]
            hint = texts.t(lang, "prefs.suggestion", judge=s["judge"], ranking=format_ranking_text(s["ranking"]))
        prompt = (f"**{texts.t(lang, 'prefs.system')}** {html.escape(item['system'])}\n\n" if item["system"] else "")
        prompt += f"### {texts.t(lang, 'prefs.prompt', n=item['position'] + 1)}\n{html.escape(item['prompt'])}"
        state_item = dict(item, shown_at=time.time())
        return [state_item, prompt, *[gr.update(visible=i < k) for i in range(MAX_K)],
                *(cards + [""] * (MAX_K - k)), hint, item["guidelines"] or texts.t(lang, "prefs.guidelines.none"),
                progress, "", "", ""], note

    def on_start(lang, task_set, who):
        try:
            outputs, note = show(lang, task_set, who)
        except StudioError as exc:
            return [gr.update()] * len(item_outputs) + [error_text(texts, lang, exc)]
        return outputs + [note]

    view.start.click(on_start, [ui.lang, view.task_set, view.annotator], item_outputs + [view.notice],
                     api_visibility="private")
    view.task_set.change(on_start, [ui.lang, view.task_set, view.annotator], item_outputs + [view.notice],
                         api_visibility="private", show_progress="hidden")

    def answer(action, lang, task_set, who, item, ranking, rationale, reason):
        if not item:
            return [gr.update()] * len(item_outputs) + [texts.t(lang, "prefs.no_item")]
        seconds = time.time() - item.get("shown_at", time.time())
        try:
            if action == "submit":
                shown = parse_ranking_text(ranking, len(item["candidates"]))
                prefs().store.submit(item["item_id"], who, to_candidate_ranking(item["order"], shown),
                                     rationale=(rationale or "").strip(), seconds=seconds)
                note = texts.t(lang, "prefs.saved", ranking=format_ranking_text(shown))
            elif action == "skip":
                prefs().store.skip(item["item_id"], who, seconds=seconds)
                note = texts.t(lang, "prefs.skipped")
            else:
                prefs().store.flag(item["item_id"], who, reason, seconds=seconds)
                note = texts.t(lang, "prefs.flagged")
            outputs, _ = show(lang, task_set, who)
        except StudioError as exc:  # nothing was stored: the item and what was typed stay on screen
            return [gr.update()] * len(item_outputs) + [error_text(texts, lang, exc)]
        return outputs + [note]

    inputs = [ui.lang, view.task_set, view.annotator, view.item, view.ranking, view.rationale, view.flag_reason]
    for action, trigger in (("submit", view.submit.click), ("submit", view.ranking.submit),
                            ("skip", view.skip.click), ("flag", view.flag.click)):
        trigger(lambda *values, action=action: answer(action, *values), inputs, item_outputs + [view.notice],
                api_visibility="private")
