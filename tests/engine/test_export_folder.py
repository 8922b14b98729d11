"""An export never deletes a user's files: `out` must be new, empty, or a previous studio export that is replaced
only when asked (studio.export.staging.check_out, asked by check_request before any weights load and again by the
staged writer at the moment of replacing)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.errors import StudioError
from studio.export import pipeline
from studio.export.pipeline import ExportRequest, run_export
from studio.export.staging import check_out, folder_state, staged

from tests.engine.test_export_core import finished

USER_FILES = {"notes.txt": b"my notes\n", "data/train.jsonl": b'{"text": "mine"}\n'}


def put(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def contents(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def write_manifest(folder: Path, files: list[str] | None = None, **fields) -> None:
    """An export.json shaped like the pipeline's (`files` left out: as written before manifests listed them)."""
    manifest = {"format": "adapter", "quant": None, "source": "run:x", "path": str(folder), "created": 1.0,
                "request": {"source": "run:x", "format": "adapter"}, **fields}
    if files is not None:
        manifest["files"] = files
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "export.json").write_text(json.dumps(manifest), encoding="utf-8")


def never_load(*args, **kwargs):
    raise AssertionError("weights were loaded before the folder was refused")


@pytest.fixture
def lora_run(workspace, tiny_llama_dir) -> str:
    return finished(workspace, tiny_llama_dir, "lora", max_steps=1)


def test_a_folder_of_user_files_is_refused_before_loading_and_left_byte_identical(workspace, lora_run, tmp_path,
                                                                                   monkeypatch, capsys):
    from studio.cli import main

    out = tmp_path / "place" / "mine"
    put(out, USER_FILES)
    monkeypatch.setattr(pipeline, "load_source", never_load)
    for overwrite in (False, True):
        with pytest.raises(StudioError, match=r"holds files that are not a studio export \(.*notes\.txt.*\); "
                                              "choose an empty or new folder") as info:
            run_export(workspace, ExportRequest(lora_run, "merged", out=str(out), overwrite=overwrite))
        assert info.value.field == "out" and info.value.key == "export.staging.not_export"
        assert contents(out) == USER_FILES
    assert main(["export", lora_run, "--format", "adapter", "--out", str(out), "--overwrite"]) == 1
    assert "holds files that are not a studio export" in capsys.readouterr().err
    assert contents(out) == USER_FILES
    assert [p.name for p in (tmp_path / "place").iterdir()] == ["mine"]  # no staged folder left beside it


def test_a_previous_export_is_replaced_only_when_asked(workspace, lora_run, tmp_path, monkeypatch):
    out = tmp_path / "place" / "exp"
    run_export(workspace, ExportRequest(lora_run, "adapter", out=str(out)))
    before = contents(out)
    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "load_source", never_load)
        with pytest.raises(StudioError, match="holds a previous export; pass --overwrite to replace it") as info:
            run_export(workspace, ExportRequest(lora_run, "merged", out=str(out)))
    assert info.value.field == "out" and info.value.key == "export.staging.previous_export"
    assert contents(out) == before

    manifest = run_export(workspace, ExportRequest(lora_run, "merged", out=str(out), dtype="fp32", report=False,
                                                   overwrite=True))
    assert json.loads((out / "export.json").read_text())["format"] == "merged"
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").exists()
    assert manifest["files"] == sorted(contents(out))  # the manifest names every file the export wrote

    # A file the user adds to an export makes the folder theirs: even --overwrite leaves it alone.
    (out / "my-eval.txt").write_bytes(b"scores\n")
    with_note = contents(out)
    with pytest.raises(StudioError, match=r"not a studio export \(my-eval\.txt\)"):
        run_export(workspace, ExportRequest(lora_run, "adapter", out=str(out), overwrite=True))
    assert contents(out) == with_note
    assert [p.name for p in out.parent.iterdir()] == ["exp"]


def test_an_empty_existing_folder_takes_the_export(workspace, lora_run, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    manifest = run_export(workspace, ExportRequest(lora_run, "adapter", out=str(out)))
    assert manifest["path"] == str(out) and (out / "adapter_config.json").exists()


def test_exporting_a_run_again_to_the_default_folder_takes_a_new_name_unless_asked(workspace, lora_run):
    base = workspace.home / "exports" / "tiny-lora-adapter"
    first = run_export(workspace, ExportRequest(lora_run, "adapter"))
    second = run_export(workspace, ExportRequest(lora_run, "adapter"))
    assert (first["path"], second["path"]) == (str(base), f"{base}-2")
    assert (base / "export.json").exists() and (Path(f"{base}-2") / "export.json").exists()
    again = run_export(workspace, ExportRequest(lora_run, "adapter", overwrite=True))
    assert again["path"] == str(base) and not Path(f"{base}-3").exists()


def test_files_that_appear_while_exporting_are_never_replaced(workspace, lora_run, tmp_path, monkeypatch):
    out = tmp_path / "place" / "busy"
    out.mkdir(parents=True)
    real = pipeline.save_adapter

    def user_saves_meanwhile(source, folder):
        details = real(source, folder)
        put(out, USER_FILES)  # after check_request passed, before the staged folder takes the name
        return details

    monkeypatch.setattr(pipeline, "save_adapter", user_saves_meanwhile)
    with pytest.raises(StudioError, match="holds files that are not a studio export") as info:
        run_export(workspace, ExportRequest(lora_run, "adapter", out=str(out), overwrite=True))
    assert info.value.key == "export.staging.not_export"
    assert contents(out) == USER_FILES
    assert [p.name for p in out.parent.iterdir()] == ["busy"]


def test_the_staged_writer_looks_again_at_the_moment_of_replacing(tmp_path):
    out = tmp_path / "landed"
    with pytest.raises(StudioError, match="holds a previous export") as info:
        with staged(out) as tmp:
            (tmp / "model.bin").write_bytes(b"new")
            write_manifest(out, files=["export.json"])  # another export finished there meanwhile
    assert info.value.key == "export.staging.previous_export"
    assert contents(out) == {"export.json": (out / "export.json").read_bytes()}
    assert [p.name for p in tmp_path.iterdir()] == ["landed"]
    with staged(out, overwrite=True) as tmp:
        (tmp / "model.bin").write_bytes(b"new")
    assert contents(out) == {"model.bin": b"new"}


def test_only_a_studio_manifest_marks_a_folder_as_a_previous_export(tmp_path):
    assert folder_state(tmp_path / "missing") == "free"
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert folder_state(tmp_path / "empty") == "free"  # empty folders hold nobody's work

    legacy = tmp_path / "legacy"  # written before manifests listed their files
    write_manifest(legacy)
    put(legacy, {"adapter_model.safetensors": b"w"})
    assert folder_state(legacy) == "export"
    listed = tmp_path / "listed"
    write_manifest(listed, files=["adapter_model.safetensors", "export.json"])
    put(listed, {"adapter_model.safetensors": b"w", ".DS_Store": b"finder"})
    assert folder_state(listed) == "export"
    check_out(listed, overwrite=True)

    for name, text in [("other-tool", json.dumps({"format": "csv", "rows": 3})), ("broken", "{not json"),
                       ("list", "[]"), ("mismatch", json.dumps({"format": "gguf", "source": "s", "path": "p",
                                                                "created": 1, "request": {"format": "merged"}}))]:
        folder = tmp_path / name
        put(folder, {"export.json": text.encode()})
        assert folder_state(folder) == "other", name
        with pytest.raises(StudioError, match=r"not a studio export \(export\.json\)"):
            check_out(folder, overwrite=True)

    (tmp_path / "a-file").write_bytes(b"x")
    with pytest.raises(StudioError, match="exists and is not a folder") as info:
        check_out(tmp_path / "a-file", overwrite=True)
    assert info.value.key == "export.staging.not_folder" and (tmp_path / "a-file").read_bytes() == b"x"
