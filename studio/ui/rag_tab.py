"""The RAG Chat tab: add documents to a collection, ask questions, read answers that cite file and page.

Left, the documents: pick a collection (or type a new name), drop PDF/TXT/MD files and add them;
indexing runs in the background (`RagService.start_indexing`) while a timer redraws its progress bar
with pages/s, and the chat stays usable. Right, the chat: any model or finished run answers
(`RagService.ask`), streamed; under it, the sources it read ([n], file, page, score, snippet); a click
on a source shows its whole page with the passage highlighted. Thumbs up/down on an answer and a
"better answer" are saved (`studio.rag.feedback.save_feedback`) as preference data and a retrieval
test set. The "Retrieval check" accordion scores retrieval per mode (`studio.rag.evaluate`).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.generation import GenerationSettings, throttled
from studio.rag.answer import AskSettings
from studio.rag.chunking import ChunkSettings
from studio.settings import parse_settings
from studio.ui.common import error_notice, UiShared, pick_default
from studio.ui.fields import FieldWidget, build_fields, collect_sections
from studio.ui.playground_tab import DEFAULT_MODEL, split_target, target_choices

SOURCE_COLUMNS = ("n", "file", "page", "score", "similarity", "cited", "snippet")


@dataclass
class RagView:
    collection: gr.Dropdown
    files: gr.File
    password: gr.Textbox
    chunking: list[FieldWidget]
    index: gr.Button
    delete: gr.Button
    progress: gr.HTML
    library: gr.Markdown
    timer: gr.Timer
    job: gr.State
    model: gr.Dropdown
    chat: gr.Chatbot
    message: gr.Textbox
    ask: gr.Button
    clear: gr.Button
    notice: gr.Markdown
    sources: gr.Dataframe
    page: gr.HTML
    better: gr.Textbox
    save_better: gr.Button
    feedback_notice: gr.Markdown
    answers: gr.State
    ask_fields: list[FieldWidget]
    gen_fields: list[FieldWidget]
    eval_file: gr.File
    eval_k: gr.Slider
    eval_run: gr.Button
    eval_table: gr.Dataframe
    eval_notice: gr.Markdown
    embedder: Any = None  # which embedder a new collection is built with (an existing one keeps its own)


def progress_html(job: dict | None, texts: Any, lang: str) -> str:
    """The indexing bar: files, pages done of total, pages/s; the result or the error when it ended."""
    if not job:
        return ""
    total, done = job["pages_total"], job["pages_done"]
    share = 100 * done / total if total else 0
    head = texts.t(lang, f"rag.job.{job['state']}", files=", ".join(job["files"]))
    facts = texts.t(lang, "rag.job.facts", done=done, total=total or "?", speed=f"{job['pages_per_s']:.1f}")
    extra = ""
    if job.get("error"):
        extra = f'<div class="studio-progress-error">{html.escape(job["error"])}</div>'
    elif job.get("report"):
        r = job["report"]
        extra = html.escape(texts.t(lang, "rag.job.report", added=len(r["added"]), replaced=len(r["replaced"]),
                                    unchanged=len(r["unchanged"]), aliased=len(r["aliased"]), chunks=r["chunks"],
                                    seconds=r["seconds"]))
        for file, pages in r["empty_pages"].items():
            extra += "<br>" + html.escape(texts.t(lang, "rag.job.empty_pages", file=file, pages=pages))
        extra = f'<div class="studio-progress-facts">{extra}</div>'
    return (f'<div class="studio-progress" data-status="{job["state"]}" id="studio-rag-job">'
            f'<div class="studio-progress-head"><b>{html.escape(head)}</b><span>{share:.0f}%</span></div>'
            f'<progress max="100" value="{share:.0f}" style="width:100%"></progress>'
            f'<div class="studio-progress-facts">{html.escape(facts)}</div>{extra}</div>')


def library_text(rows: list[dict], name: str | None, texts: Any, lang: str, manifest: dict | None) -> str:
    row = next((r for r in rows if r["name"] == name), None)
    if row is None:
        return texts.t(lang, "rag.library.new" if name else "rag.library.none")
    lines = [texts.t(lang, "rag.library.head", name=row["name"], files=row["files"], chunks=row["chunks"],
                     embedder=row["embedder"])]
    for file, entry in sorted((manifest or {}).get("files", {}).items()):
        lines.append(f"- {file} · " + texts.t(lang, "rag.library.file", pages=entry.get("pages", "?"),
                                              version=entry.get("version", 1)))
    return "\n".join(lines)


def source_rows(sources: list[dict]) -> list[list]:
    return [[s["n"], s["file"], ", ".join(map(str, s["pages"])), s["score"], s["similarity"], "✓" if s["cited"] else "",
             s["snippet"]] for s in sources]


def sources_value(rows: list[list], texts: Any, lang: str) -> dict:
    """The sources table's value with its headers in `lang`."""
    return {"headers": [texts.t(lang, f"rag.sources.{c}") for c in SOURCE_COLUMNS], "data": rows or []}


def page_html(collection: str, source: dict, page_text: str, texts: Any, lang: str) -> str:
    """A source's whole page, its passage highlighted."""
    passage = " ".join(source["text"].split())
    flat = " ".join(page_text.split())
    at = flat.find(passage)
    if at >= 0:
        body = (html.escape(flat[:at]) + f"<mark>{html.escape(passage)}</mark>" + html.escape(flat[at + len(passage):]))
    else:
        body = html.escape(flat)
    head = texts.t(lang, "rag.page.head", n=source["n"], file=source["file"], page=source["pages"][0])
    return f'<div class="studio-rag-page" id="studio-rag-page-text"><b>{html.escape(head)}</b><p>{body}</p></div>'


def build_rag(engine: Any, ui: UiShared, tab: Any) -> RagView:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731

    with gr.Row():
        with gr.Column(scale=2, min_width=320):
            collection = loc.label(gr.Dropdown(choices=[], value=None, allow_custom_value=True,
                                               label=t("rag.collection"), info=t("rag.collection.info"),
                                               elem_id="studio-rag-collection"), "rag.collection", "rag.collection.info")
            library = gr.Markdown(t("rag.library.none"), elem_id="studio-rag-library")
            files = loc.label(gr.File(label=t("rag.files"), file_count="multiple",
                                      file_types=[".pdf", ".docx", ".txt", ".md"], elem_id="studio-rag-files"), "rag.files")
            with loc.label(gr.Accordion(t("rag.index.settings"), open=False), "rag.index.settings"):
                embedder = loc.label(gr.Dropdown(choices=(embedders := engine.embedder_choices()), value=embedders[0],
                                                 allow_custom_value=True, label=t("rag.embedder"),
                                                 info=t("rag.embedder.info"), elem_id="studio-rag-embedder"),
                                     "rag.embedder", "rag.embedder.info")
                chunking = build_fields(ChunkSettings, "chunk", loc, lang, locale_section="rag-chunk", per_row=2)
                password = loc.label(gr.Textbox(label=t("rag.password"), info=t("rag.password.info"), type="password",
                                                elem_id="studio-rag-password"), "rag.password", "rag.password.info")
            with gr.Row():
                index = loc.value(gr.Button(t("rag.index"), variant="primary", elem_id="studio-rag-index"), "rag.index")
                delete = loc.value(gr.Button(t("rag.delete"), variant="stop", size="sm", elem_id="studio-rag-delete"),
                                   "rag.delete")
            progress = gr.HTML("", elem_id="studio-rag-progress")
        with gr.Column(scale=5):
            model = loc.label(gr.Dropdown(choices=[], value=None, allow_custom_value=True, label=t("rag.model"),
                                          info=t("rag.model.info"), elem_id="studio-rag-model"),
                              "rag.model", "rag.model.info")
            chat = loc.label(gr.Chatbot(label=t("rag.chat"), height=360, elem_id="studio-rag-chat"), "rag.chat")
            with gr.Row(equal_height=True):
                message = loc.label(gr.Textbox(label=t("rag.question"), placeholder=t("rag.question.placeholder"),
                                               scale=5, lines=1, elem_id="studio-rag-question"), "rag.question",
                                    placeholder_key="rag.question.placeholder")
                ask = loc.value(gr.Button(t("rag.ask"), variant="primary", scale=1, elem_id="studio-rag-ask"),
                                "rag.ask")
                clear = loc.value(gr.Button(t("rag.clear"), scale=1), "rag.clear")
            notice = gr.Markdown("", elem_id="studio-rag-notice")
            sources = loc.label(gr.Dataframe(headers=[t(f"rag.sources.{c}") for c in SOURCE_COLUMNS], value=[],
                                             interactive=False, wrap=True, label=t("rag.sources"),
                                             column_widths=["4%", "22%", "7%", "8%", "9%", "6%", "44%"],
                                             elem_id="studio-rag-sources"), "rag.sources")
            page = gr.HTML("", elem_id="studio-rag-page")
            with gr.Row(equal_height=True):
                better = loc.label(gr.Textbox(label=t("rag.better"), info=t("rag.better.info"), scale=4, lines=2,
                                              elem_id="studio-rag-better"), "rag.better", "rag.better.info")
                save_better = loc.value(gr.Button(t("rag.better.save"), scale=1, elem_id="studio-rag-better-save"),
                                        "rag.better.save")
            feedback_notice = gr.Markdown("", elem_id="studio-rag-feedback")
            with loc.label(gr.Accordion(t("rag.settings"), open=False), "rag.settings"):
                ask_fields = build_fields(AskSettings, "ask", loc, lang, locale_section="rag-ask", per_row=3)
                gen_fields = build_fields(GenerationSettings, "gen", loc, lang, per_row=4,
                                          values={"do_sample": False, "max_new_tokens": 200})
    with loc.label(gr.Accordion(t("rag.eval"), open=False, elem_id="studio-rag-eval"), "rag.eval"):
        gr.Markdown(t("rag.eval.intro"))
        with gr.Row(equal_height=True):
            eval_file = loc.label(gr.File(label=t("rag.eval.file"), file_types=[".jsonl", ".csv"],
                                          elem_id="studio-rag-eval-file"), "rag.eval.file")
            eval_k = loc.label(gr.Slider(1, 10, value=5, step=1, label=t("rag.eval.k")), "rag.eval.k")
            eval_run = loc.value(gr.Button(t("rag.eval.run"), elem_id="studio-rag-eval-run"), "rag.eval.run")
        eval_table = gr.Dataframe(headers=["mode", "hit@k", "MRR", "nDCG@10", "s"], value=[], interactive=False,
                                  elem_id="studio-rag-eval-table")
        eval_notice = gr.Markdown("", elem_id="studio-rag-eval-notice")
    from studio.ui.rag_qa_box import build_rag_qa

    build_rag_qa(engine, ui, collection)
    view = RagView(collection, files, password, chunking, index, delete, progress, library, gr.Timer(1.0, active=False),
                   gr.State(None), model, chat, message, ask, clear, notice, sources, page, better, save_better,
                   feedback_notice, gr.State([]), ask_fields, gen_fields, eval_file, eval_k, eval_run, eval_table,
                   eval_notice, embedder=embedder)
    _wire(view, engine, ui, tab)
    return view


def _wire(view: RagView, engine: Any, ui: UiShared, tab: Any) -> None:
    texts = ui.texts
    rag = lambda: engine.rag  # noqa: E731 - made on first use

    def refresh(lang, name, model, pick=True):
        """Collections, library and answering models. `pick` (page load, language) also fills empty values; back
        on the tab (`pick=False`) only the choices change: that first call starts the RAG service, slow on a busy
        machine, and setting values then undid a collection name typed meanwhile (CI's browser test indexed into
        no collection)."""
        rows = rag().collections()
        names = [r["name"] for r in rows]
        if pick:
            name = name if name else (names[0] if names else None)
        models, runs = engine.model_choices(), engine.finished_runs()
        library = library_text(rows, name, texts, lang, rag().manifest(name) if name in names else None)
        choices = target_choices(models, runs, texts, lang, False)
        if not pick:
            return gr.update(choices=names), library if name in names else gr.update(), gr.update(choices=choices)
        return (gr.update(choices=names, value=name), library,
                gr.update(choices=choices, value=model or pick_default(models, DEFAULT_MODEL)))

    outputs = [view.collection, view.library, view.model]
    ui.demo.load(refresh, [ui.lang, view.collection, view.model], outputs, api_visibility="private",
                 show_progress="hidden")
    tab.select(lambda lang, name, model: refresh(lang, name, model, pick=False), [ui.lang, view.collection, view.model], outputs, api_visibility="private",
               show_progress="hidden")
    ui.on_language(refresh, [view.collection, view.model], [view.collection, view.library, view.model])
    ui.on_language(lambda lang, frame: sources_value(frame.values.tolist() if hasattr(frame, "values") else frame,
                                                     texts, lang), [view.sources], [view.sources])
    view.collection.change(lambda lang, name: library_text(rag().collections(), name, texts, lang,
                                                           rag().manifest(name) if name else None)
                           if _valid(name) else texts.t(lang, "rag.library.new"),
                           [ui.lang, view.collection], [view.library], api_visibility="private",
                           show_progress="hidden")

    chunk_inputs = {ui.lang, view.collection, view.files, view.password, view.embedder,
                    *(f.component for f in view.chunking)}

    def on_index(values: dict):
        lang = values[ui.lang]
        try:
            settings = parse_settings(ChunkSettings, collect_sections(view.chunking, values).get("chunk", {}))
            uploads = [Path(f if isinstance(f, str) else f.name) for f in (values[view.files] or [])]
            job_id = rag().start_indexing((values[view.collection] or "").strip(), uploads,
                                          chunking=settings, embedder=(values[view.embedder] or "").strip() or None,
                                          password=(values[view.password] or None))
        except StudioError as exc:
            return {view.progress: f"<p>{html.escape(error_notice(texts, lang, exc))}</p>"}
        job = rag().job(job_id).as_dict()
        return {view.job: job_id, view.timer: gr.Timer(active=True), view.files: None,
                view.progress: progress_html(job, texts, lang)}

    view.index.click(on_index, chunk_inputs, [view.job, view.timer, view.files, view.progress],
                     api_visibility="private")

    def on_tick(lang, job_id, name):
        if not job_id:
            return gr.Timer(active=False), "", gr.update(), gr.update()
        job = rag().job(job_id).as_dict()
        if job["state"] in ("queued", "running"):
            return gr.Timer(active=True), progress_html(job, texts, lang), gr.update(), gr.update()
        rows = rag().collections()
        return (gr.Timer(active=False), progress_html(job, texts, lang),
                gr.update(choices=[r["name"] for r in rows], value=job["collection"]),
                library_text(rows, job["collection"], texts, lang, rag().manifest(job["collection"])))

    view.timer.tick(on_tick, [ui.lang, view.job, view.collection],
                    [view.timer, view.progress, view.collection, view.library], api_visibility="private",
                    show_progress="hidden")

    def on_delete(lang, name):
        try:
            rag().delete((name or "").strip())
        except StudioError as exc:
            return gr.update(), error_notice(texts, lang, exc), gr.update()
        rows = rag().collections()
        names = [r["name"] for r in rows]
        return (gr.update(choices=names, value=names[0] if names else None), texts.t(lang, "rag.deleted", name=name),
                "")

    view.delete.click(on_delete, [ui.lang, view.collection], [view.collection, view.library, view.progress],
                      api_visibility="private")

    ask_inputs = {ui.lang, view.collection, view.model, view.message, view.chat, view.answers,
                  *(f.component for f in view.ask_fields), *(f.component for f in view.gen_fields)}

    def on_ask(values: dict):
        lang, question = values[ui.lang], (values[view.message] or "").strip()
        if not question:
            yield {view.notice: texts.t(lang, "rag.question.empty")}
            return
        answers = list(values[view.answers] or [])
        shown = list(values[view.chat] or [])
        try:
            sections = collect_sections(view.ask_fields + view.gen_fields, values)
            ask = parse_settings(AskSettings, sections.get("ask", {}))
            generation = parse_settings(GenerationSettings, sections.get("gen", {}))
            model, run_id = split_target(values[view.model] or "", engine.finished_runs())
            history = [m for a in answers for m in ({"role": "user", "content": a["question"]},
                                                     {"role": "assistant", "content": a["answer"]})]
            updates = rag().ask((values[view.collection] or "").strip(), question, model=model, run_id=run_id,
                                generation=generation, ask=ask, history=history,
                                previous_queries=[a["query"] for a in answers])
            yield {view.message: "", view.notice: "", view.page: "",
                   view.chat: shown + [{"role": "user", "content": question}, {"role": "assistant", "content": "…"}]}
            for update in throttled(updates):
                body = update.text if update.found else texts.t(lang, "rag.not_found")
                yield {view.chat: shown + [{"role": "user", "content": question},
                                           {"role": "assistant", "content": body or "…"}],
                       view.sources: sources_value(source_rows([s.as_dict() for s in update.sources] if update.found else []),
                                                     texts, lang)}
        except StudioError as exc:
            yield {view.chat: shown, view.notice: error_notice(texts, lang, exc)}
            return
        record = dict(update.as_dict(), messages=update.messages, model=values[view.model] or "",
                      collection=(values[view.collection] or "").strip())
        notes = []
        if update.query != question:
            notes.append(texts.t(lang, "rag.searched_for", query=update.query))
        if update.translation:
            notes.append(texts.t(lang, "rag.searched_translation", translation=update.translation))
        if update.indexing:
            notes.append(texts.t(lang, "rag.indexing_now", done=update.indexing["pages_done"],
                                 total=update.indexing["pages_total"]))
        cited = [s for s in update.as_dict()["citations"] if s["cited"]]
        if cited:
            notes.append(texts.t(lang, "rag.cites", sources="; ".join(
                f"[{s['n']}] {s['file']} p. {s['page']}" for s in cited)))
        elif update.found:
            notes.append(texts.t(lang, "rag.no_markers"))
        yield {view.answers: answers + [record], view.notice: "  \n".join(notes)}

    outputs = [view.message, view.notice, view.page, view.chat, view.sources, view.answers]
    for trigger in (view.ask.click, view.message.submit):
        trigger(on_ask, ask_inputs, outputs, concurrency_limit=1, concurrency_id="studio-generate",
                api_visibility="private")
    view.clear.click(lambda: ([], [], [], "", "", ""), None,
                     [view.chat, view.answers, view.sources, view.page, view.notice, view.feedback_notice],
                     api_visibility="private")

    def on_source(lang, answers, evt: gr.SelectData):
        if not answers:
            return ""
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        last = answers[-1]
        if row is None or row >= len(last["sources"]):
            return ""
        source = last["sources"][row]
        try:
            text = rag().page_text(last["collection"], source["file"], source["pages"][0])
        except StudioError as exc:
            return f"<p>{html.escape(error_notice(texts, lang, exc))}</p>"
        return page_html(last["collection"], source, text, texts, lang)

    view.sources.select(on_source, [ui.lang, view.answers], [view.page], api_visibility="private")

    def on_like(lang, answers, data: gr.LikeData):
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        answer = _answer_at(answers, index)
        if answer is None or data.liked not in (True, False):
            return ""
        return _save(lang, answer, "up" if data.liked else "down", "")

    view.chat.like(on_like, [ui.lang, view.answers], [view.feedback_notice], api_visibility="private")

    def on_better(lang, answers, better):
        if not answers:
            return texts.t(lang, "rag.feedback.none"), better
        note = _save(lang, answers[-1], None, better)
        return note, ("" if note.startswith("✓") else better)

    def _save(lang, answer, rating, better):
        try:
            saved = rag().save_feedback(answer["collection"], answer, rating=rating, better=better)
        except StudioError as exc:
            return error_notice(texts, lang, exc)
        tests = saved["evalset"] or "—"
        return "✓ " + texts.t(lang, "rag.feedback.saved", datasets=", ".join(saved["datasets"]) or "—", tests=tests)

    view.save_better.click(on_better, [ui.lang, view.answers, view.better], [view.feedback_notice, view.better],
                           api_visibility="private")

    def on_eval(lang, name, upload, k):
        name = (name or "").strip()
        try:
            path = Path(upload if isinstance(upload, str) else upload.name) if upload else rag().evalset(name)
            if not path.exists():
                return [], texts.t(lang, "rag.eval.nothing")
            report = rag().check_retrieval(name, path, k=int(k))
        except StudioError as exc:
            return [], error_notice(texts, lang, exc)
        rows = [[mode, round(m["hit_rate"], 3), round(m["mrr"], 3), round(m["ndcg@10"], 3), round(m["seconds"], 2)]
                for mode, m in report["modes"].items()]
        return rows, texts.t(lang, "rag.eval.done", n=report["questions"], k=report["k"], file=path.name)

    view.eval_run.click(on_eval, [ui.lang, view.collection, view.eval_file, view.eval_k],
                        [view.eval_table, view.eval_notice], api_visibility="private")


def _answer_at(answers: list[dict], index: int | None) -> dict | None:
    """The answer shown at chat message `index` (each exchange is a user message then the answer)."""
    if index is None or index % 2 == 0 or index // 2 >= len(answers or []):
        return None
    return answers[index // 2]


def _valid(name: str | None) -> bool:
    from studio.rag.store import NAME

    return bool(name and NAME.match(name.strip()))
