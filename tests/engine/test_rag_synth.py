"""Training data from documents: passages spread over a collection, a teacher's question/answer per passage with its
file and page, grounding marks, and the reviewed pairs saved as a versioned dataset plus a retrieval test set that
`studio rag eval` reads. The engine parts run with a scripted teacher; the slow test uses the embedded SmolLM2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.errors import StudioError
from studio.rag import synth
from studio.rag.evaluate import read_questions
from studio.rag.store import RagStore
from tests.rag_fixtures import FakeEmbedder


@pytest.fixture
def store(workspace, corpus) -> RagStore:
    store = RagStore(workspace)
    store.ingest("home", corpus, FakeEmbedder())
    return store


def test_clean_question_keeps_one_question_and_refuses_the_rest():
    assert synth.clean_question('"How often does the chain need oil?"\nMore text.') == "How often does the chain need oil?"
    assert synth.clean_question("Question: ¿Cuándo abre la biblioteca?") == "¿Cuándo abre la biblioteca?"
    assert synth.clean_question("The passage is about bikes.") is None
    assert synth.clean_question("Why?") is None


def test_pairs_keep_file_and_page_and_say_whether_they_come_from_the_passage(store):
    passages = synth.sample_passages(store, "home", 3)
    assert len(passages) == 3 and len({p["chunk_id"] for p in passages}) == 3
    assert {p["file"] for p in passages} <= {"garden.pdf", "bikes.pdf", "taxes.txt"}

    def ask(messages):
        passage = messages[0]["content"].rsplit("\n\n", 1)[0]
        return "What about the moon landing?" if "chain" in passage else f"What is said about {max(passage.split(), key=len).strip('.,')}?"

    answer = synth.quote_answerer(FakeEmbedder())
    done = []
    pairs = synth.write_pairs(passages, ask, answer, progress=lambda n, total: done.append((n, total)))
    assert done[-1] == (3, 3) and len(pairs) == 3
    for pair, passage in zip(pairs, passages):
        assert (pair["file"], pair["page"], pair["chunk_id"]) == (passage["file"], passage["page"],
                                                                  passage["chunk_id"])
        assert pair["answer"] and pair["answer"] in " ".join(passage["text"].split())  # the passage's own words
        assert "[1]" not in pair["answer"]
        assert pair["grounded"] == ("chain" not in passage["text"])  # a question off the passage is flagged
    assert synth.write_pairs(passages[:1], lambda m: "Not a question.", answer) == []


def test_saved_pairs_become_a_dataset_and_a_test_set_rag_eval_reads(workspace, store):
    pairs = [{"question": "How often does the chain need oil?", "answer": "Every 300 km.", "file": "bikes.pdf",
              "page": 2}, {"question": " ", "answer": "dropped: no question", "file": "bikes.pdf", "page": 1}]
    saved = synth.save_pairs(workspace, pairs, "bike-qa")
    assert saved["dataset"] == "bike-qa" and saved["rows"] == 1 and saved["version"] == 1
    from studio.data.library import DataLibrary

    rows = DataLibrary(workspace).rows("bike-qa")
    assert rows[0]["instruction"] == "How often does the chain need oil?" and rows[0]["output"] == "Every 300 km."
    questions = read_questions(Path(saved["test_set"]))
    assert questions[0]["file"] == "bikes.pdf" and questions[0]["pages"] == [2]
    assert synth.save_pairs(workspace, pairs, "bike-qa")["version"] == 2  # saving again makes a new version
    with pytest.raises(StudioError, match="no question and answer pairs"):
        synth.save_pairs(workspace, pairs[1:], "empty")
    with pytest.raises(StudioError, match="1 to 500 passages"):
        synth.sample_passages(store, "home", 0)


@pytest.mark.slow
def test_the_embedded_model_writes_grounded_pairs_from_the_sample_documents(workspace, tmp_path):
    from studio.rag.embedder import load_embedder
    from studio.rag.samples import write_sample_pdfs

    store = RagStore(workspace)
    store.ingest("samples", write_sample_pdfs(tmp_path / "samples"), load_embedder("all-minilm-l6-v2", workspace))
    embedder = load_embedder("all-minilm-l6-v2", workspace)
    passages = synth.sample_passages(store, "samples", 6)
    ask, answer, how = synth.teacher(workspace, "smollm2-135m-instruct", embedder)
    assert how == "quote"  # a 135M teacher invents answers: the passages' own sentences answer
    pairs = synth.write_pairs(passages, ask, answer)
    assert len(pairs) >= 3, pairs
    assert all(p["file"].endswith(".pdf") and p["page"] >= 1 and p["question"].endswith("?") for p in pairs)
    assert sum(p["grounded"] for p in pairs) >= 2, pairs
    saved = synth.save_pairs(workspace, pairs, "samples-qa")
    assert saved["rows"] == len(pairs)
    assert json.loads(Path(saved["test_set"]).read_text().splitlines()[0])["file"] == pairs[0]["file"]
