"""The Preferences tab: annotators rank candidate answers; admins create task sets, read agreement and export.

"Rank" is the annotator screen: a name (the login name when the studio runs with --auth), a task set,
the guidelines one click away, the prompt and its K answers in an order shuffled per annotator with the
models hidden, and the ranking typed, keyed ("2 > 1 = 3": the answer numbers best first, '=' for a
tie; Enter submits, S skips, F flags) or dragged in a list of the answers that mirrors the typed text.
Every submission is stored at once (`PrefStore.submit`) and the next item follows. "Create", "Results"
and "Arena" live in `prefs_admin` and `arena_tab`.
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
from studio.ui.common import error_notice, UiShared
from studio.ui.guard import allow, caller_of

MAX_K = 6
# Keyboard shortcuts of the annotator screen: answer numbers build the ranking, '=' ties the next answer with the
# last one, Backspace takes the last one back, Enter submits, S skips, F goes to the flag reason; on a row of the
# drag list, Alt+Up / Alt+Down move that answer and Enter presses its button.
# The drag list (#studio-prefs-dnd) mirrors the ranking text, which stays the one source of truth: it is redrawn
# whenever the text or the answers change, and every drag or button writes the text back with an 'input' event so
# Gradio sees it. Dropping on the upper or lower quarter of a row places the answer before or after it, on its
# middle ties the two; dropping on "not ranked yet" takes the answer out of the ranking.
RANK_KEYS_JS = """
<style>
#studio-prefs-dnd ol, #studio-prefs-dnd ul { list-style: none; margin: 0 0 .5rem; padding: 2px; min-height: 2.4rem;
  border: 1px dashed var(--border-color-primary); border-radius: 8px; }
#studio-prefs-dnd li { display: flex; gap: .6rem; align-items: center; padding: .4rem .6rem; margin: 3px;
  border: 1px solid var(--border-color-primary); border-radius: 6px; background: var(--background-fill-primary);
  cursor: grab; }
#studio-prefs-dnd li.tied { margin-left: 2rem; border-top-style: dotted; }
#studio-prefs-dnd ul li { opacity: .7; }
#studio-prefs-dnd li.before { box-shadow: 0 -3px 0 var(--color-accent); }
#studio-prefs-dnd li.after { box-shadow: 0 3px 0 var(--color-accent); }
#studio-prefs-dnd li.tie { outline: 2px solid var(--color-accent); }
#studio-prefs-dnd .place { font-weight: 600; min-width: 1.6rem; }
#studio-prefs-dnd .text { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#studio-prefs-dnd button[aria-pressed="true"] { background: var(--color-accent-soft); }
#studio-prefs-dnd button:disabled { visibility: hidden; }
</style>
<script>
(() => {
  const q = (sel) => document.querySelector(sel);
  const rankBox = () => q('#studio-prefs-ranking textarea, #studio-prefs-ranking input');
  const shown = () => [1, 2, 3, 4, 5, 6].filter((n) => {
    const a = q('#studio-prefs-answer-' + n); return a && a.offsetParent !== null; });
  const snippet = (n) => q('#studio-prefs-answer-' + n).innerText.split('\\n').map((s) => s.trim())
    .filter(Boolean).slice(1).join(' ').slice(0, 160);
  // "2 > 1 = 3" -> [[2], [1, 3]]: the shown answer numbers best first, each once, tie groups together
  const parse = (text) => { const ns = shown(), seen = new Set();
    return text.split('>').map((g) => g.split('=').map((x) => parseInt(x, 10))
      .filter((n) => ns.includes(n) && !seen.has(n) && seen.add(n))).filter((g) => g.length); };
  const without = (groups, n) => groups.map((g) => g.filter((m) => m !== n)).filter((g) => g.length);
  const at = (groups, n) => groups.findIndex((g) => g.includes(n));
  let focusN = null, dragged = null;
  const write = (groups) => { const box = rankBox();
    box.value = groups.map((g) => g.join(' = ')).join(' > ');
    box.dispatchEvent(new Event('input', {bubbles: true})); render(true); };
  const place = (n, target, where) => {  // where: before, after, tie, end, out
    let g = without(parse(rankBox().value), n); const i = at(g, target);
    if (where === 'tie' && i >= 0) g[i].push(n);
    else if ((where === 'before' || where === 'after') && i >= 0) g.splice(where === 'before' ? i : i + 1, 0, [n]);
    else if (where !== 'out') g.push([n]);
    write(g); };
  const toggleTie = (n) => { const g = parse(rankBox().value), i = at(g, n);
    if (g[i].indexOf(n) > 0) { g[i] = g[i].filter((m) => m !== n); g.splice(i + 1, 0, [n]); write(g); }
    else if (i > 0) { g[i] = g[i].filter((m) => m !== n); g[i - 1].push(n); write(g.filter((h) => h.length)); }
  };
  function render(force) {
    const root = q('#studio-prefs-dnd .studio-dnd'), box = rankBox();
    if (!root || !box) return;
    const ns = shown(), sig = [box.value, ns.join(), ns.map(snippet).join('|')].join('#');
    if (!force && root.dataset.sig === sig) return;
    root.dataset.sig = sig;
    const groups = parse(box.value), ranked = groups.flat();
    const make = (tag, cls, text) => { const e = document.createElement(tag); e.className = cls;
      if (text !== undefined) e.textContent = text; return e; };
    const row = (n, label, tied) => { const li = make('li', tied ? 'tied' : '');
      li.draggable = true; li.tabIndex = 0; li.dataset.n = n; li.id = 'studio-prefs-dnd-' + n;
      li.append(make('span', 'place', label), make('span', 'text', n + '. ' + snippet(n)));
      const b = make('button', 'toggle', label ? root.dataset.tie : root.dataset.add); b.type = 'button';
      if (label) { b.setAttribute('aria-pressed', String(tied)); b.disabled = ranked[0] === n;
        b.onclick = () => { focusN = n; toggleTie(n); }; }
      else b.onclick = () => { focusN = n; place(n, null, 'end'); };
      li.append(b); return li; };
    const list = make('ol', 'ranked'), rest = make('ul', 'unranked');
    groups.forEach((g, i) => g.forEach((n, j) => list.append(row(n, j ? '=' : (i + 1) + '.', j > 0))));
    ns.filter((n) => !ranked.includes(n)).forEach((n) => rest.append(row(n, '', false)));
    root.replaceChildren(make('p', 'hint', root.dataset.hint), list, make('p', 'hint', root.dataset.unranked), rest);
    if (focusN !== null) { const f = q('#studio-prefs-dnd-' + focusN); if (f) f.focus(); focusN = null; }
  }
  setInterval(() => render(false), 250);
  const spot = (e) => { const li = e.target.closest && e.target.closest('#studio-prefs-dnd li');
    if (li) { const r = li.getBoundingClientRect(), y = (e.clientY - r.top) / r.height;
      const ranked = !!li.closest('ol');
      return {li, n: +li.dataset.n, where: !ranked ? 'out' : y < 0.25 ? 'before' : y > 0.75 ? 'after' : 'tie'}; }
    const zone = e.target.closest && e.target.closest('#studio-prefs-dnd ol, #studio-prefs-dnd ul');
    return zone ? {n: null, where: zone.tagName === 'OL' ? 'end' : 'out'} : null; };
  const clear = () => document.querySelectorAll('#studio-prefs-dnd li').forEach((li) =>
    li.classList.remove('before', 'after', 'tie'));
  document.addEventListener('dragstart', (e) => {
    const li = e.target.closest && e.target.closest('#studio-prefs-dnd li'); if (!li) return; dragged = +li.dataset.n; e.dataTransfer.setData('text/plain', String(dragged));
    e.dataTransfer.effectAllowed = 'move'; });
  document.addEventListener('dragover', (e) => { const s = dragged !== null && spot(e); if (!s) return;
    e.preventDefault(); clear(); if (s.li && s.n !== dragged && s.where !== 'out') s.li.classList.add(s.where); });
  document.addEventListener('drop', (e) => { const s = dragged !== null && spot(e); if (!s) return;
    e.preventDefault(); clear(); const n = dragged; dragged = null;
    if (s.n !== n) place(n, s.n, s.where); });
  document.addEventListener('dragend', () => { dragged = null; clear(); });
  document.addEventListener('keydown', (event) => {
    const box = rankBox();
    if (!box || box.offsetParent === null) return;
    const active = document.activeElement;
    const typing = active && (active.tagName === 'TEXTAREA' || active.tagName === 'INPUT') && active !== box;
    const inList = active && active.closest && active.closest('#studio-prefs-dnd');
    if (inList && active.tagName === 'BUTTON' && (event.key === 'Enter' || event.key === ' ')) return;
    if (inList && active.tagName === 'LI' && event.altKey && (event.key === 'ArrowUp' || event.key === 'ArrowDown')) {
      const n = +active.dataset.n, g = parse(box.value), i = at(g, n), up = event.key === 'ArrowUp';
      focusN = n; event.preventDefault();
      if (i < 0) { if (up) place(n, null, 'end'); return; }
      const rest = without(g, n), alone = g[i].length === 1;
      if (up) rest.splice(Math.max(0, alone ? i - 1 : i), 0, [n]);
      else if (alone && i === g.length - 1) { write(rest); return; }
      else rest.splice(i + 1, 0, [n]);
      write(rest); return;
    }
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
})();
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
            with ui.admin_part():
                build_create(engine, ui)
        with gr.Tab(texts.t(lang, "prefs.tab.results"), elem_id="studio-prefs-results") as results_tab:
            with ui.admin_part():
                build_results(engine, ui, results_tab)
        with gr.Tab(texts.t(lang, "prefs.tab.arena"), elem_id="studio-prefs-arena") as arena_tab:
            build_arena(engine, ui)
    for sub, key in ((rank_tab, "prefs.tab.rank"), (create_tab, "prefs.tab.create"),
                     (results_tab, "prefs.tab.results"), (arena_tab, "prefs.tab.arena")):
        ui.localizer.label(sub, key)
    _wire_rank(view, engine, ui, tab)


def annotator_of(engine: Any, request: Any, typed: str | None) -> str:
    """Whose ranking this is: the logged-in account in server mode (whatever the page sent), else the typed name."""
    if engine.access.server_mode:
        return caller_of(engine, request).name
    return (typed or "").strip()


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
    # the drag list is drawn by RANK_KEYS_JS inside this element, in the words its data attributes carry
    loc.add(gr.HTML(_drag_html(texts, lang), elem_id="studio-prefs-dnd"),
            lambda lang: gr.update(value=_drag_html(texts, lang)))
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


def _drag_html(texts: Any, lang: str) -> str:
    words = {name: html.escape(texts.t(lang, f"prefs.drag.{name}"), quote=True)
             for name in ("hint", "unranked", "tie", "add")}
    return ('<div class="studio-dnd" ' + " ".join(f'data-{name}="{text}"' for name, text in words.items())
            + "></div>")


def _wire_rank(view: RankView, engine: Any, ui: UiShared, tab: Any) -> None:
    texts = ui.texts
    prefs = lambda: engine.prefs  # noqa: E731 - made on first use

    @allow("rank")
    def refresh(current, who, request: gr.Request):
        names = [s["name"] for s in prefs().task_sets()]
        user = annotator_of(engine, request, None)
        # A value only when none is chosen: a late answer must not undo what the annotator picked meanwhile.
        chosen = {} if current in names else {"value": names[0] if names else None}
        return (gr.update(choices=names, **chosen),
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
        item = prefs().next_item(task_set, who)
        state = prefs().progress(task_set)
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

    @allow("rank")
    def on_start(request: gr.Request, lang, task_set, who):
        try:
            outputs, note = show(lang, task_set, annotator_of(engine, request, who))
        except StudioError as exc:
            return [gr.update()] * len(item_outputs) + [error_notice(texts, lang, exc)]
        return outputs + [note]

    view.start.click(on_start, [ui.lang, view.task_set, view.annotator], item_outputs + [view.notice],
                     api_visibility="private")
    @allow("rank")
    def on_pick_set(request: gr.Request, lang, task_set, who):
        """A task set picked, or filled in on page load: its next item once a name is known, and no error before
        the person has done anything."""
        if not (annotator_of(engine, request, who) or "").strip():
            return [gr.skip()] * (len(item_outputs) + 1)
        return on_start(request, lang, task_set, who)

    view.task_set.change(on_pick_set, [ui.lang, view.task_set, view.annotator], item_outputs + [view.notice],
                         api_visibility="private", show_progress="hidden")

    def answer(action, lang, task_set, who, item, ranking, rationale, reason):
        if not item:
            return [gr.update()] * len(item_outputs) + [texts.t(lang, "prefs.no_item")]
        seconds = time.time() - item.get("shown_at", time.time())
        try:
            if action == "submit":
                shown = parse_ranking_text(ranking, len(item["candidates"]))
                prefs().submit(item["item_id"], who, to_candidate_ranking(item["order"], shown),
                                     rationale=(rationale or "").strip(), seconds=seconds)
                note = texts.t(lang, "prefs.saved", ranking=format_ranking_text(shown))
            elif action == "skip":
                prefs().skip(item["item_id"], who, seconds=seconds)
                note = texts.t(lang, "prefs.skipped")
            else:
                prefs().flag(item["item_id"], who, reason, seconds=seconds)
                note = texts.t(lang, "prefs.flagged")
            outputs, _ = show(lang, task_set, who)
        except StudioError as exc:  # nothing was stored: the item and what was typed stay on screen
            return [gr.update()] * len(item_outputs) + [error_notice(texts, lang, exc)]
        return outputs + [note]

    def answering(action: str):
        @allow("rank")
        def on_answer(request: gr.Request, lang, task_set, who, item, ranking, rationale, reason):
            return answer(action, lang, task_set, annotator_of(engine, request, who), item, ranking, rationale,
                          reason)
        return on_answer

    inputs = [ui.lang, view.task_set, view.annotator, view.item, view.ranking, view.rationale, view.flag_reason]
    for action, trigger in (("submit", view.submit.click), ("submit", view.ranking.submit),
                            ("skip", view.skip.click), ("flag", view.flag.click)):
        trigger(answering(action), inputs, item_outputs + [view.notice], api_visibility="private")
