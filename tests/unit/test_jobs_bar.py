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


def test_a_stored_error_reads_in_the_page_language(workspace):
    from studio.errors import StudioError
    from studio.jobs.records import JobRecords, cancelled_sentence, interrupted_sentence
    from studio.ui.jobs_bar import jobs_table

    texts, records = Texts.load(), JobRecords(workspace)
    stopped, cancelled, plain = (records.create("index", "manuals <- a.pdf", {}) for _ in range(3))
    records.finish(stopped, "interrupted", error=interrupted_sentence("index", "page 3 of 16", stopped))
    records.finish(cancelled, "cancelled", error=cancelled_sentence("generate"))
    records.finish(plain, "failed", error=StudioError("Something only English knows."))
    rows = [records.get(job_id) for job_id in (stopped, cancelled, plain)]
    assert rows[0]["error"].startswith("The studio stopped while this index job was at 'page 3 of 16'")
    assert rows[0]["error_params"] == {"kind": "index", "phase": "page 3 of 16", "job_id": str(stopped)}
    spanish = [row[-1] for row in jobs_table(rows, texts, "es")["value"]["data"]]
    assert spanish[0].startswith("El estudio se detuvo mientras este trabajo de indexado estaba en 'page 3 of 16'")
    assert spanish[1] == "El trabajo de candidatas se canceló."
    assert spanish[2] == "Something only English knows."
    assert [row[-1] for row in jobs_table(rows, texts, "en")["value"]["data"]][1] == "The generate job was cancelled."


def test_a_recorded_phase_and_the_phase_an_interrupted_job_stopped_at_read_in_the_page_language(workspace):
    from studio.jobs.records import JobRecords, interrupted_sentence
    from studio.phase import Phase
    from studio.ui.jobs_bar import jobs_table

    texts, records = Texts.load(), JobRecords(workspace)
    running, stopped = records.create("index", "manuals <- a.pdf", {}), records.create("export", "run:x -> gguf", {})
    records.progress(running, 0.3, Phase("page 3 of 10", "page", done=3, total=10), force=True)
    records.progress(stopped, 0.5, Phase("writing blk.3.attn_q.weight", "writing", name="blk.3.attn_q.weight"),
                     force=True)
    row = records.get(stopped)
    records.finish(stopped, "interrupted", error=interrupted_sentence("export", row["phase"], stopped))
    rows = [records.get(job_id) for job_id in (running, stopped)]
    assert rows[0]["phase"] == "page 3 of 10" and rows[0]["phase_params"] == {"done": 3, "total": 10}
    spanish = jobs_table(rows, texts, "es")["value"]["data"]
    assert spanish[0][4] == "página 3 de 10"
    assert spanish[1][-1].startswith("El estudio se detuvo mientras este trabajo de exportación estaba en "
                                     "'escribiendo blk.3.attn_q.weight'")
    assert jobs_table(rows, texts, "en")["value"]["data"][0][4] == "page 3 of 10"


def test_the_panel_says_which_devices_ran_each_training_job():
    from studio.ui.jobs_bar import COLUMNS, jobs_table

    texts = Texts.load()
    jobs = [{"id": 1, "kind": "train", "status": "running", "devices": "0,1", "created_at": 0},
            {"id": 2, "kind": "train", "status": "completed", "devices": "cpu", "created_at": 0},
            {"id": 3, "kind": "export", "status": "queued", "created_at": 0}]
    table = jobs_table(jobs, texts, "es")["value"]
    column = COLUMNS.index("devices")
    assert table["headers"][column] == "dispositivos"
    assert [row[column] for row in table["data"]] == ["GPU 0, 1", "CPU", ""]
