"""The Export tab's handlers with the fake engine: each format shows its own options, a run that cannot merge is
offered 'adapter' only and says why, refusals read in Spanish, and a polled job ends with its report drawn."""
from __future__ import annotations

import json
import time

import gradio as gr
import pytest

from studio.export.pipeline import FORMATS
from studio.ui.common import UiShared
from studio.ui.export_report_view import completed_export, job_html, previous_table, show_export
from studio.export.service import ExportService
from studio.ui.export_tab import (OPTION_FORMAT, build_export, check_plan, describe_source, export_request,
                                  option_visibility, poll_export, source_choices, start_export)
from studio.ui.i18n import LOCALES_DIR, Localizer, Texts
from tests.unit.fake_engine import FakeEngine

OPTIONS = {"dtype": "fp32", "gguf_quant": "Q4_0", "bnb4_quant": "fp4", "double_quant": False,
           "calibration": "/tmp/calib.txt", "system": "  Be brief.  "}


@pytest.fixture(scope="module")
def texts():
    return Texts.load()


def add_run(ws, tmp_path, method: str, model: str = "smollm2-135m-instruct") -> str:
    result = tmp_path / f"{method}-result"
    result.mkdir()
    run_id = f"r-{method}"
    ws.insert_run({"id": run_id, "name": f"tiny-{method}", "model": model, "stage": "sft", "method": method,
                   "dataset": "d", "status": "completed", "run_dir": str(tmp_path), "result_dir": str(result),
                   "created_at": time.time()})
    return f"run:{run_id}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_shows_and_sends_only_its_own_options(fmt):
    shown = option_visibility(fmt)
    assert {name for name, visible in shown.items() if visible} == {n for n, f in OPTION_FORMAT.items() if f == fmt}
    request = export_request("run:x", fmt, OPTIONS, "  ", True, None)
    assert request["out"] is None and request["format"] == fmt
    assert request["quant"] == {"gguf": "Q4_0", "bnb4": "fp4"}.get(fmt)
    assert request["calibration"] == ("/tmp/calib.txt" if fmt == "int8" else None)
    assert request["system"] == ("Be brief." if fmt == "gguf" else None)


def test_a_run_that_cannot_merge_is_offered_adapter_only_and_says_why(workspace, tmp_path, texts):
    spec = add_run(workspace, tmp_path, "prompt_tuning")
    line, formats = describe_source(ExportService(workspace), spec, texts, "es")
    assert formats == ("adapter",)
    assert "Ejecución **tiny-prompt_tuning**" in line and "etapa sft" in line
    assert "su prompt suave es una entrada extra" in line and "Solo se exporta como adaptador" in line

    lora = add_run(workspace, tmp_path, "lora")
    assert describe_source(ExportService(workspace), lora, texts, "en")[1] == FORMATS
    line, formats = describe_source(ExportService(workspace), "smollm2-135m-instruct", texts, "en")
    assert "adapter" not in formats and "exported as it is" in line


def test_runs_come_first_in_the_source_list(texts):
    runs = [{"id": "ab12", "name": "tuned", "method": "lora"}]
    assert source_choices(runs, ["smollm2-135m-instruct"], texts, "en") == [
        ("tuned · lora · ab12", "run:ab12"), ("smollm2-135m-instruct", "smollm2-135m-instruct")]


def test_refusals_read_in_spanish_before_and_after_export_is_clicked(workspace, tmp_path, texts):
    spec = add_run(workspace, tmp_path, "prompt_tuning")
    request = export_request(spec, "merged", OPTIONS, "", True, None)
    default, problem = check_plan(ExportService(workspace), request, texts, "es")
    assert default == "" and "no se puede fusionar" in problem
    job_id, message = start_export(FakeEngine(workspace), request, texts, "es")
    assert job_id is None and message.startswith("⚠️ El método 'prompt_tuning' no se puede fusionar")
    _, message = start_export(FakeEngine(workspace), export_request("run:nope", "merged", {}, "", True, None),
                              texts, "es")
    assert "La ejecución 'nope' no existe" in message


def test_the_default_folder_is_shown_before_exporting(workspace, tmp_path, texts):
    spec = add_run(workspace, tmp_path, "lora")
    default, problem = check_plan(ExportService(workspace), export_request(spec, "bnb4", OPTIONS, "", True, None), texts, "en")
    assert problem == "" and default == str(workspace.home / "exports" / "tiny-lora-bnb4-fp4")


def test_the_plan_check_refuses_a_folder_of_user_files_before_export_is_clicked(workspace, tmp_path, texts):
    spec = add_run(workspace, tmp_path, "lora")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_bytes(b"my notes\n")
    for overwrite in (False, True):
        request = export_request(spec, "merged", OPTIONS, str(out), True, None, overwrite)
        assert request["overwrite"] is overwrite
        default, problem = check_plan(ExportService(workspace), request, texts, "en")
        assert default == str(workspace.home / "exports" / "tiny-lora-merged")  # the placeholder stays
        assert "holds files that are not a studio export (notes.txt); choose an empty or new folder" in problem
        _, problem = check_plan(ExportService(workspace), request, texts, "es")
        assert "contiene archivos que no son de una exportación del estudio (notes.txt)" in problem
        job_id, message = start_export(FakeEngine(workspace), request, texts, "es")
        assert job_id is None and "elige una carpeta vacía o nueva" in message
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_bytes() == b"my notes\n"


def test_a_previous_export_asks_for_the_box_and_the_default_folder_moves_on(workspace, tmp_path, texts):
    engine = FakeEngine(workspace)
    spec = add_run(workspace, tmp_path, "lora")
    default = str(workspace.home / "exports" / "tiny-lora-merged")
    job_id, _ = start_export(engine, export_request(spec, "merged", OPTIONS, "", True, None), texts, "en")
    poll_export(engine, job_id, texts, "en")
    assert poll_export(engine, job_id, texts, "en")[0]["result"]["path"] == default
    # Exporting the same run again with the folder left empty goes to a new folder, without a question...
    assert check_plan(ExportService(workspace), export_request(spec, "merged", OPTIONS, "", True, None), texts, "en") == (
        f"{default}-2", "")
    # ...or replaces the previous one when the box is ticked.
    assert check_plan(ExportService(workspace), export_request(spec, "merged", OPTIONS, "", True, None, True), texts, "en") == (
        default, "")
    # Naming that folder without the box says which box to tick, in either language.
    request = export_request(spec, "merged", OPTIONS, default, True, None)
    _, problem = check_plan(ExportService(workspace), request, texts, "en")
    assert "holds a previous export; tick 'Replace the previous export in this folder'" in problem
    assert "--overwrite" not in problem
    job_id, message = start_export(engine, request, texts, "es")
    assert job_id is None and "marca 'Reemplazar la exportación anterior en esta carpeta'" in message
    assert check_plan(ExportService(workspace), {**request, "overwrite": True}, texts, "en")[1] == ""


def test_polling_a_job_to_completion_draws_the_report_files_and_previous_exports(workspace, tmp_path, texts):
    engine = FakeEngine(workspace)
    spec = add_run(workspace, tmp_path, "lora")
    job_id, message = start_export(engine, export_request(spec, "merged", OPTIONS, "", True, None), texts, "en")
    assert job_id and message.startswith("Exporting in the background")
    job, bar = poll_export(engine, job_id, texts, "en")
    assert job["state"] == "running" and 'data-status="running"' in bar and "50%" in bar
    job, bar = poll_export(engine, job_id, texts, "es")
    assert job["state"] == "completed" and "tiny-lora exportado como Modelo fusionado" in bar

    assert job["result"]["report"] is True  # the job says there is a report; the tab reads it from the folder
    result, files, table, chart, samples, download = show_export(completed_export(job), texts, "es")
    assert result["visible"] and download["visible"] is False
    assert table["value"]["headers"][:3] == ["Artefacto", "Formato", "Tamaño (MB)"]
    assert [row[0] for row in table["value"]["data"]] == ["fp32", "merged"]
    assert chart["value"] is not None and len(samples["value"]["data"]) == 3
    assert samples["column_widths"] == ["25%", "38%", "38%"]  # the answers side by side get the room
    assert "`model.safetensors` · 2.0 kB" in files and "**Artefacto:**" in files

    listed = previous_table(engine.exports.exports(), texts, "en")
    assert listed["data"][0][1:5] == ["tiny-lora", "Merged model", "", 0.0 + 2.0]
    # A previous export's row shows the same report.
    again = show_export(engine.exports.exports()[0], texts, "en")
    assert again[2]["value"]["data"] == table["value"]["data"]


def test_an_export_without_a_report_says_so_and_hides_the_table(workspace, tmp_path, texts):
    engine = FakeEngine(workspace)
    spec = add_run(workspace, tmp_path, "lora")
    job_id, _ = start_export(engine, export_request(spec, "adapter", {}, str(tmp_path / "out"), True, None),
                             texts, "en")
    poll_export(engine, job_id, texts, "en")
    job, _ = poll_export(engine, job_id, texts, "en")
    _, files, table, *_ = show_export(completed_export(job), texts, "en")
    assert table["visible"] is False and "No report for this export" in files


def test_a_cancelled_job_says_the_previous_export_is_kept_in_spanish(workspace, tmp_path, texts):
    engine = FakeEngine(workspace)
    job_id, _ = start_export(engine, export_request(add_run(workspace, tmp_path, "lora"), "merged", {}, "", True,
                                                    None), texts, "es")
    engine.exports.cancel(job_id)
    job, bar = poll_export(engine, job_id, texts, "es")
    assert job["state"] == "cancelled" and "la exportación anterior en esa carpeta no ha cambiado" in bar
    assert "No hay ninguna exportación en curso" in job_html(None, texts, "es")


def test_the_tab_builds_with_every_widget_labelled_in_both_languages(workspace, texts):
    with gr.Blocks() as demo:
        ui = UiShared(texts, Localizer(texts), gr.State("en"), demo)
        with gr.Tab("Export") as tab:
            view = build_export(FakeEngine(workspace), ui, tab)
    assert set(view.options) == set(OPTION_FORMAT)
    labels = {str(update.get("label")) for update in ui.localizer.redraw("es") if isinstance(update, dict)}
    assert {"Qué exportar", "Formato", "Tipo GGUF", "Exportaciones anteriores",
            "Reemplazar la exportación anterior en esta carpeta"} <= labels
    assert view.overwrite.value is False


def test_english_and_spanish_export_texts_have_the_same_keys():
    en = json.loads((LOCALES_DIR / "en" / "export.json").read_text(encoding="utf-8"))
    es = json.loads((LOCALES_DIR / "es" / "export.json").read_text(encoding="utf-8"))
    assert set(en) == set(es)
    assert all(f"export.format.{f}" in en and f"export.explain.{f}" in en for f in FORMATS)
