"""Export jobs in worker processes, the list of exports, hub push refusals, zips and `studio export`."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from studio.errors import StudioError
from studio.export.hub import push_to_hub, zip_export
from studio.export.pipeline import ExportRequest, run_export
from studio.export.service import ExportService

from tests.engine.test_export_core import finished


@pytest.fixture
def lora_run(workspace, tiny_llama_dir) -> str:
    return finished(workspace, tiny_llama_dir, "lora", max_steps=1)


def test_an_export_job_runs_in_a_worker_and_is_listed(workspace, lora_run, tmp_path):
    service = ExportService(workspace)
    job_id = service.start({"source": lora_run, "format": "merged", "dtype": "fp32", "report": False})
    status = service.wait(job_id, timeout=300)
    assert status["state"] == "completed", status
    assert status["fraction"] == 1.0 and status["seconds"] > 0
    manifest = status["result"]
    assert manifest["path"] == str(workspace.home / "exports" / "tiny-lora-merged")
    assert service.failure(job_id) is None
    listed = service.exports()
    assert [m["path"] for m in listed] == [manifest["path"]] and listed[0]["format"] == "merged"
    # A second export to another folder is listed first; the folder recorded in the index is found again.
    other = tmp_path / "elsewhere"
    second = service.wait(service.start(ExportRequest(lora_run, "adapter", out=str(other))), timeout=300)
    assert second["state"] == "completed", second
    assert [m["path"] for m in service.exports()] == [str(other.resolve()), manifest["path"]]


def test_bad_requests_fail_at_once_and_worker_failures_are_reported(workspace, lora_run, tmp_path):
    service = ExportService(workspace)
    with pytest.raises(StudioError, match="Unknown export format"):
        service.start({"source": lora_run, "format": "tflite"})
    with pytest.raises(StudioError, match="held-out text file .* does not exist") as info:
        service.start({"source": lora_run, "format": "merged", "heldout": str(tmp_path / "missing.txt")})
    assert info.value.key == "export.pipeline.heldout_missing"
    # A damaged adapter passes the checks and fails in the worker: the job says why and leaves nothing behind.
    adapter = Path(workspace.get_run(lora_run)["result_dir"]) / "adapter_model.safetensors"
    adapter.write_bytes(b"not safetensors")
    job_id = service.start({"source": lora_run, "format": "merged", "out": str(tmp_path / "m"), "report": False})
    status = service.wait(job_id, timeout=300)
    assert status["state"] == "failed" and status["error"]
    assert service.failure(job_id).key in ("export.service.failed", "model.weights_unloadable")
    assert not (tmp_path / "m").exists() and not list(tmp_path.glob(".m.partial-*"))


def test_cancelling_an_export_keeps_the_previous_one(workspace, lora_run, tmp_path):
    out = tmp_path / "kept"
    run_export(workspace, ExportRequest(lora_run, "merged", out=str(out), report=False))
    before = sorted(p.name for p in out.iterdir())
    service = ExportService(workspace)
    job_id = service.start({"source": lora_run, "format": "merged", "out": str(out), "report": False,
                            "overwrite": True})
    with pytest.raises(StudioError, match="already running"):
        service.start({"source": lora_run, "format": "merged", "out": str(out), "overwrite": True})
    assert [j["id"] for j in service.running()] == [job_id]  # what a reopened Export tab follows again
    service.cancel(job_id)
    status = service.wait(job_id, timeout=60)
    assert status["state"] == "cancelled"
    assert service.failure(job_id).key == "export.service.cancelled"
    assert sorted(p.name for p in out.iterdir()) == before
    assert not list(tmp_path.glob(".kept.partial-*"))


def test_hub_push_needs_a_token_a_valid_id_and_a_network(workspace, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(StudioError, match="not a Hub repository id") as info:
        push_to_hub(tmp_path, "no-slash", "hf_x")
    assert info.value.field == "repo_id"
    with pytest.raises(StudioError, match="needs an access token") as info:
        push_to_hub(tmp_path, "team/model", "")
    assert info.value.key == "export.hub.no_token"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StudioError, match="cannot be reached .* download the zip") as info:
        push_to_hub(tmp_path, "team/model", "hf_x")
    assert info.value.key == "export.hub.offline"


def test_zip_holds_the_whole_export(workspace, lora_run, tmp_path):
    out = tmp_path / "zipped"
    run_export(workspace, ExportRequest(lora_run, "adapter", out=str(out)))
    archive = zip_export(out)
    names = zipfile.ZipFile(archive).namelist()
    assert archive.name == "zipped.zip"
    assert {"zipped/export.json", "zipped/adapter_config.json", "zipped/README.md"} <= set(names)
    with pytest.raises(StudioError, match="not a finished export"):
        zip_export(tmp_path)


def test_studio_export_prints_the_artifact_and_json(workspace, lora_run, tmp_path, capsys):
    from studio.cli import main

    out = tmp_path / "cli"
    assert main(["export", lora_run, "--format", "adapter", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out.strip().splitlines()[-1] == str(out.resolve())
    assert "[100%] done" in printed.err
    # The folder now holds that export: it is replaced only when asked.
    assert main(["export", lora_run, "--format", "merged", "--out", str(out)]) == 1
    assert "holds a previous export; pass --overwrite" in capsys.readouterr().err
    assert main(["export", lora_run, "--format", "merged", "--dtype", "fp32", "--out", str(out), "--no-report",
                 "--json", "--overwrite"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["format"] == "merged" and manifest["request"]["dtype"] == "fp32"
    assert main(["export", "run:missing", "--format", "merged"]) == 1
    assert "Run 'missing' does not exist" in capsys.readouterr().err
