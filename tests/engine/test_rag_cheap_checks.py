"""Files are checked before the embedder loads: a bad file is refused in one sentence at once, from the
terminal and from the service the UI calls, and the (slow) sentence embedder is never loaded for it."""
from __future__ import annotations

import pytest

from studio.cli import main
from studio.errors import StudioError
from studio.rag.service import RagService
from tests.rag_fixtures import FakeEmbedder
from tests.rag_pdf import make_pdf


def _never_load(*args, **kwargs):
    raise AssertionError("the embedder was loaded before the files were checked")


def _bad_files(folder):
    """(file, key of the refusal) for each way a file can be refused without parsing it."""
    (folder / "empty.pdf").write_bytes(b"")
    (folder / "letter.pdf").write_bytes(b"PK\x03\x04 this is a zip, really" * 10)
    (folder / "notes.odt").write_bytes(b"some bytes")
    (folder / "a-folder.pdf").mkdir()
    (folder / "broken.docx").write_bytes(b"not a zip at all")
    return [
        (folder / "empty.pdf", "rag.parse.empty_file"),
        (make_pdf(folder / "secret.pdf", ["classified"], password="s3cret"), "rag.parse.needs_password"),
        (folder / "letter.pdf", "rag.parse.not_pdf"),
        (folder / "notes.odt", "rag.parse.unsupported"),
        (make_pdf(folder / "nothing.pdf", []), "rag.parse.no_pages"),
        (folder / "missing.pdf", "rag.parse.missing_file"),
        (folder / "a-folder.pdf", "rag.parse.not_a_file"),
        (folder / "broken.docx", "rag.parse.corrupt_docx"),
    ]


@pytest.fixture
def bad_files(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    return _bad_files(folder)


def test_the_terminal_refuses_each_bad_file_without_loading_the_embedder(workspace, bad_files, tmp_path,
                                                                          monkeypatch, capsys):
    monkeypatch.setattr("studio.rag.embedder.load_embedder", _never_load)
    good = make_pdf(tmp_path / "good.pdf", ["fine text"])
    for path, _key in bad_files:
        assert main(["rag", "ingest", "office", str(good), str(path)]) == 1
        err = capsys.readouterr().err
        assert path.name in err and err.startswith("Error: ") and err.count("\n") == 1, err


def test_the_service_refuses_each_bad_file_at_once_without_loading_the_embedder(workspace, bad_files):
    service = RagService(workspace, embedder_loader=_never_load)
    try:
        for path, key in bad_files:
            with pytest.raises(StudioError) as info:
                service.start_indexing("office", [path])
            assert info.value.key == key and info.value.field == "rag.files", path
        assert service.store.names() == []
    finally:
        service.shutdown()


def test_upload_names_decide_the_format_and_are_named_in_the_refusal(workspace, tmp_path):
    upload = tmp_path / "tmp-upload-1234"
    upload.write_bytes(b"")
    service = RagService(workspace, embedder_loader=_never_load)
    try:
        with pytest.raises(StudioError) as info:
            service.start_indexing("office", [upload], names=["Quarterly report.pdf"])
        assert info.value.key == "rag.parse.empty_file" and info.value.params["file"] == "Quarterly report.pdf"
    finally:
        service.shutdown()


def test_good_files_still_index_through_the_checked_path(workspace, corpus):
    embedder = FakeEmbedder()
    service = RagService(workspace, embedder_loader=lambda name, ws: embedder)
    try:
        job = service.wait(service.start_indexing("home-docs", corpus))
        assert job.state == "completed" and job.report.added == ["garden.pdf", "bikes.pdf", "taxes.txt"]
        secret = make_pdf(corpus[0].parent / "secret.pdf", ["classified words"], password="s3cret")
        job = service.wait(service.start_indexing("home-docs", [secret], password="s3cret"))
        assert job.state == "completed" and job.report.added == ["secret.pdf"]
    finally:
        service.shutdown()


def test_searching_a_missing_collection_does_not_load_the_embedder(workspace, monkeypatch, capsys):
    monkeypatch.setattr("studio.rag.embedder.load_embedder", _never_load)
    assert main(["rag", "search", "nowhere", "a question"]) == 1
    assert "There is no collection 'nowhere'" in capsys.readouterr().err
    assert main(["rag", "ingest", "x" * 10_000, "some.pdf"]) == 1
    err = capsys.readouterr().err
    assert "Collection name" in err and len(err) < 400
