"""The header's job line in both languages."""
from __future__ import annotations

from studio.ui.i18n import Texts
from studio.ui.jobs_bar import jobs_line


def test_the_job_line_names_each_running_job_in_the_page_language():
    texts = Texts.load()
    jobs = [{"id": 7, "kind": "export", "title": "run:abc -> gguf", "status": "running", "progress": 0.84,
             "phase": "writing layer 12/30"},
            {"id": 6, "kind": "train", "title": "run-abc", "status": "cancelling", "progress": None, "phase": None}]
    assert jobs_line([], texts, "en") == ""
    assert jobs_line(jobs, texts, "en") == ("Running now (2): #7 export run:abc -> gguf · running 84% (writing layer "
                                            "12/30) · #6 training run-abc · stopping")
    assert jobs_line(jobs, texts, "es").startswith("En curso (2): #7 exportación run:abc -> gguf · en marcha 84%")


def test_the_jobs_panel_lists_every_state_in_the_page_language():
    from studio.ui.jobs_bar import COLUMNS, jobs_table

    texts = Texts.load()
    states = ("queued", "running", "cancelling", "completed", "failed", "cancelled", "interrupted")
    jobs = [{"id": i, "kind": "index", "status": s, "progress": 0.5 if s == "running" else None,
             "phase": "done" if s == "completed" else "page 3 of 16",
             "title": "manuals <- a.pdf", "created_at": 0, "error": "The studio stopped" if s == "interrupted" else None}
            for i, s in enumerate(states, 1)]
    table = jobs_table(jobs, texts, "es")["value"]
    assert table["headers"][:3] == ["#", "tipo", "estado"] and len(table["headers"]) == len(COLUMNS)
    assert [row[2] for row in table["data"]] == ["en cola", "en marcha", "deteniéndose", "completado", "fallido",
                                                 "cancelado", "interrumpido"]
    assert table["data"][1][1] == "indexado" and table["data"][1][3] == "50%"
    assert table["data"][-1][-1] == "The studio stopped"
    assert table["data"][3][4] == "terminado" and table["data"][1][4] == "page 3 of 16"
