"""`studio rag ingest/search/list/delete` on generated PDFs with the real embedded all-MiniLM-L6-v2."""
from __future__ import annotations

import json

import pytest

from studio.cli import main
from tests.rag_pdf import make_pdf


def test_ingest_search_list_and_delete_from_the_terminal(workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_HOME", str(workspace.home))
    manual = make_pdf(tmp_path / "manual.pdf", ["Unpack the printer and remove the orange tape.",
                                                 "To replace the toner, open the front cover and pull the cartridge."])
    assert main(["rag", "ingest", "office", str(manual), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["added"] == ["manual.pdf"] and report["pages"] == 2 and report["chunks"] == 2

    assert main(["rag", "search", "office", "How do I change the ink cartridge?", "--k", "1", "--json"]) == 0
    (hit,) = json.loads(capsys.readouterr().out)
    assert hit["file"] == "manual.pdf" and hit["pages"] == [2] and "toner" in hit["text"]

    assert main(["rag", "search", "office", "toner cover"]) == 0
    assert "[1] manual.pdf p. 2" in capsys.readouterr().out
    assert main(["rag", "ingest", "office", str(manual)]) == 0
    assert "0 added, 0 replaced, 1 unchanged" in capsys.readouterr().out
    assert main(["rag", "list"]) == 0
    assert "office: 1 files, 2 chunks, embedder all-minilm-l6-v2" in capsys.readouterr().out

    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    assert main(["rag", "ingest", "office", str(empty)]) == 1
    assert "empty.pdf" in capsys.readouterr().err
    assert main(["rag", "delete", "office"]) == 0 and main(["rag", "list"]) == 0
    assert "No collections yet" in capsys.readouterr().out


@pytest.mark.slow
def test_ask_answers_with_citations_and_refuses_what_the_documents_do_not_hold(workspace, tmp_path, monkeypatch,
                                                                               capsys):
    monkeypatch.setenv("STUDIO_HOME", str(workspace.home))
    manual = make_pdf(tmp_path / "manual.pdf", ["Unpack the printer and remove the orange tape.",
                                                 "To replace the toner, open the front cover and pull the cartridge.",
                                                 "Error E4 means that the paper is jammed in the rear tray."])
    assert main(["rag", "ingest", "office", str(manual)]) == 0
    capsys.readouterr()
    assert main(["rag", "ask", "office", "What does error E4 mean?", "--style", "quote", "--json"]) == 0
    quoted = json.loads(capsys.readouterr().out)
    assert quoted["found"] and quoted["answer"] == "Error E4 means that the paper is jammed in the rear tray. [1]"
    assert quoted["citations"][0]["page"] == 3 and quoted["citations"][0]["cited"]
    assert {"file", "page", "text", "score"} <= set(quoted["citations"][0])

    assert main(["rag", "ask", "office", "Who won the football world cup in 2010?"]) == 0
    assert capsys.readouterr().out.startswith("The documents do not contain an answer")

    assert main(["rag", "ask", "office", "How do I replace the toner?", "--max-new-tokens", "12", "--style",
                 "generate", "--json"]) == 0
    generated = json.loads(capsys.readouterr().out)
    assert generated["found"] and generated["answer"] and generated["stats"]["tokens"] <= 12
    assert generated["sources"][0]["page"] == 2 and generated["sources"][0]["file"] == "manual.pdf"
