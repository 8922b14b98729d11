"""The Arena (a sub-tab of Preferences): two models or runs answer the same prompt side by side, unnamed and in a
random order; the user votes 1, 2, tie or both bad, then sees who was who. The leaderboard ranks every model by
Bradley-Terry rating with 95% bootstrap intervals (`PrefService.leaderboard`), and the votes export as preference
pairs (`PrefService.arena_export`).
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.ui.common import error_notice, UiShared
from studio.ui.guard import allow, caller_of
from studio.ui.playground_tab import target_choices

OUTCOMES = ("1", "2", "tie", "both_bad")


def build_arena(engine: Any, ui: UiShared) -> None:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731
    prompt = loc.label(gr.Textbox(label=t("arena.prompt"), lines=2, elem_id="studio-arena-prompt"), "arena.prompt")
    with gr.Row(equal_height=True):
        model_a = loc.label(gr.Dropdown(choices=[], label=t("arena.model_a"), elem_id="studio-arena-a"),
                            "arena.model_a")
        model_b = loc.label(gr.Dropdown(choices=[], label=t("arena.model_b"), elem_id="studio-arena-b"),
                            "arena.model_b")
        fight = loc.value(gr.Button(t("arena.go"), variant="primary", elem_id="studio-arena-go"), "arena.go")
    with gr.Row():
        answer_1 = gr.Markdown("", elem_id="studio-arena-answer-1")
        answer_2 = gr.Markdown("", elem_id="studio-arena-answer-2")
    with gr.Row():
        votes = [loc.value(gr.Button(t(f"arena.vote.{o}"), elem_id=f"studio-arena-vote-{o}"), f"arena.vote.{o}")
                 for o in OUTCOMES]
    reveal = gr.Markdown("", elem_id="studio-arena-reveal")
    board = gr.Dataframe(headers=_board_headers(texts, lang), value=[], interactive=False,
                         elem_id="studio-arena-board")
    with gr.Row(equal_height=True):
        export_name = loc.label(gr.Textbox(value="arena-votes", label=t("prefs.export.name")), "prefs.export.name")
        export = loc.value(gr.Button(t("arena.export"), elem_id="studio-arena-export"), "arena.export")
    duel = gr.State(None)

    @allow("arena")
    def refresh(lang):
        choices = target_choices(engine.model_choices(), engine.finished_runs(), texts, lang, False)
        return gr.update(choices=choices), gr.update(choices=choices), _board(engine, texts, lang)

    ui.demo.load(refresh, [ui.lang], [model_a, model_b, board], api_visibility="private", show_progress="hidden")

    @allow("arena")
    def on_fight(lang, prompt, a, b):
        try:
            result = engine.prefs.arena_duel((prompt or "").strip(), a or "", b or "")
        except StudioError as exc:
            return None, "", "", error_notice(texts, lang, exc)
        return (result["duel_id"], f"**{texts.t(lang, 'arena.answer', n=1)}**\n\n{result['answer_1']}",
                f"**{texts.t(lang, 'arena.answer', n=2)}**\n\n{result['answer_2']}", texts.t(lang, "arena.vote_now"))

    fight.click(on_fight, [ui.lang, prompt, model_a, model_b], [duel, answer_1, answer_2, reveal],
                concurrency_limit=1, concurrency_id="studio-generate", api_visibility="private")

    def voting(outcome: str):
        @allow("arena")
        def on_vote(request: gr.Request, lang, duel_id):
            if not duel_id:
                return None, texts.t(lang, "arena.no_duel"), gr.update()
            try:
                who = engine.prefs.arena_vote(duel_id, outcome, caller_of(engine, request).name)
            except StudioError as exc:
                return duel_id, error_notice(texts, lang, exc), gr.update()
            revealed = texts.t(lang, "arena.revealed", one=who["model_1"], two=who["model_2"])
            return None, revealed, _board(engine, texts, lang)
        return on_vote

    for outcome, button in zip(OUTCOMES, votes):
        button.click(voting(outcome), [ui.lang, duel], [duel, reveal, board], api_visibility="private")

    def on_export(lang, name):
        try:
            result = engine.prefs.arena_export((name or "").strip() or None)
        except StudioError as exc:
            return error_notice(texts, lang, exc)
        return texts.t(lang, "prefs.export.done", rows=result["rows"], items=result.get("items", result["rows"]),
                       dropped=result.get("dropped", 0), dataset=result["dataset"])

    export.click(on_export, [ui.lang, export_name], [reveal], api_visibility="private")


BOARD_COLUMNS = ("model", "rating", "interval", "wins", "losses", "ties", "votes")


def _board_headers(texts: Any, lang: str) -> list[str]:
    return [texts.t(lang, f"arena.col.{c}") for c in BOARD_COLUMNS]


def _board(engine: Any, texts: Any, lang: str) -> dict:
    rows = engine.prefs.leaderboard(rounds=200)
    return {"headers": _board_headers(texts, lang),
            "data": [[r["model"], round(r["rating"]), _interval(r), r["wins"], r["losses"], r["ties"], r["votes"]]
                     for r in rows]}


def _interval(row: dict) -> str:
    low, high = row.get("low"), row.get("high")
    return "—" if low is None or high is None else f"{round(low)}–{round(high)}"
