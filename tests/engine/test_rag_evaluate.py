"""Retrieval evaluation: metrics checked by hand on tiny rankings and on a real Chroma with the deterministic fake
embedder, clear refusals of bad questions files, and the sample corpus and questions agreeing with each other."""
from __future__ import annotations

import math

import pytest

from studio.errors import StudioError
from studio.rag.evaluate import evaluate_retrieval, missed_by_every_mode, read_questions, score_ranking
from studio.rag.retrieval import Hit
from studio.rag.store import RagStore
from tests.rag_fixtures import FakeEmbedder
from tests.rag_pdf import make_pdf

TOOLS = ["Oil the chain with chain oil after rain. Oil keeps the chain quiet.",
         "The chain of a bike wears out after some years.",
         "Basil grows next to tomatoes."]


def hit(file: str, page: int) -> Hit:
    return Hit(id=f"{file}-{page}", text="", file=file, pages=[page], score=1.0)


def write(path, lines: list[str]):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_relevant_page_at_rank_two_scores_mrr_one_half_and_ndcg_one_over_log2_3():
    score = score_ranking([hit("a.pdf", 1), hit("a.pdf", 2), hit("b.pdf", 2)], "a.pdf", [2], k=1)
    assert score["rank"] == 2 and score["hit_rate"] == 0.0 and score["mrr"] == 0.5
    assert score["ndcg@10"] == pytest.approx(1 / math.log2(3))
    assert score_ranking([hit("a.pdf", 1), hit("a.pdf", 2)], "a.pdf", [2], k=2)["hit_rate"] == 1.0


def test_a_page_counts_once_so_two_chunks_of_it_never_lift_ndcg_above_one():
    hits = [hit("a.pdf", 2), hit("a.pdf", 2), hit("a.pdf", 5)]
    score = score_ranking(hits, "a.pdf", [2, 5], k=2)
    assert score["rank"] == 1 and score["mrr"] == 1.0 and score["recall"] == 0.5
    ideal = 1 + 1 / math.log2(3)
    assert score["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / ideal)
    assert score_ranking([hit("a.pdf", 2), hit("a.pdf", 2)], "a.pdf", [2], k=5)["ndcg@10"] == pytest.approx(1.0)


def test_a_copy_indexed_under_two_names_matches_either_name_and_misses_score_zero():
    assert score_ranking([hit("a.pdf = b.pdf", 3)], "b.pdf", [3], k=5)["rank"] == 1
    missed = score_ranking([hit("a.pdf", 3), hit("b.pdf", 4)], "b.pdf", [3], k=5)
    assert missed == {"rank": None, "hit_rate": 0.0, "mrr": 0.0, "ndcg@10": 0.0, "recall": 0.0}


def test_questions_read_numbers_lists_ranges_and_csv(tmp_path):
    jsonl = write(tmp_path / "q.jsonl", ['{"question": "Q1", "file": "a.pdf", "page": 3}', "",
                                         '{"question": "Q2", "file": "a.pdf", "page": "2-4"}',
                                         '{"question": "Q3", "file": "b.pdf", "pages": [5, 1]}'])
    assert [(q["question"], q["pages"], q["page"], q["line"]) for q in read_questions(jsonl)] == [
        ("Q1", [3], 3, 1), ("Q2", [2, 3, 4], 2, 3), ("Q3", [1, 5], 1, 4)]
    table = write(tmp_path / "q.csv", ["question,file,page", "\"Where, exactly?\",a.pdf,7", "Q2,a.pdf,\"1, 2\""])
    assert [(q["question"], q["pages"], q["line"]) for q in read_questions(table)] == [
        ("Where, exactly?", [7], 2), ("Q2", [1, 2], 3)]


@pytest.mark.parametrize("name, lines, key, words", [
    ("q.jsonl", ['{"question": "Q", "file": "a.pdf", "page": 1}', "{not json"], "rag.eval.not_json", "Line 2"),
    ("q.jsonl", ['{"file": "a.pdf", "page": 1}'], "rag.eval.missing_field", "has no 'question'"),
    ("q.jsonl", ['{"question": "Q", "file": "a.pdf"}'], "rag.eval.missing_field", "has no 'page'"),
    ("q.jsonl", ['{"question": "Q", "file": "a.pdf", "page": "three"}'], "rag.eval.bad_page", "range like"),
    ("q.jsonl", ['{"question": "Q", "file": "a.pdf", "page": 0}'], "rag.eval.bad_page", "Line 1"),
    ("q.jsonl", ['["Q", "a.pdf", 1]'], "rag.eval.not_object", "not an object"),
    ("q.jsonl", ["", "  "], "rag.eval.empty", "has no questions"),
    ("q.csv", ["question,file", "Q,a.pdf"], "rag.eval.missing_field", "Line 2 of 'q.csv' has no 'page'"),
    ("q.txt", ["Q"], "rag.eval.bad_format", "must be .jsonl"),
])
def test_a_bad_questions_file_is_refused_with_its_line_and_the_fix(tmp_path, name, lines, key, words):
    with pytest.raises(StudioError) as info:
        read_questions(write(tmp_path / name, lines))
    assert info.value.key == key and words in info.value.message and info.value.field == "rag.questions"


def test_a_missing_questions_file_is_refused(tmp_path):
    with pytest.raises(StudioError) as info:
        read_questions(tmp_path / "nowhere.jsonl")
    assert info.value.key == "rag.eval.no_file"


@pytest.fixture
def tools_store(workspace, tmp_path):
    store = RagStore(workspace)
    store.ingest("tools", [make_pdf(tmp_path / "tools.pdf", TOOLS)], FakeEmbedder())
    return store


def test_evaluation_scores_each_mode_on_a_real_collection(tools_store, tmp_path):
    questions = read_questions(write(tmp_path / "q.jsonl", [
        '{"question": "chain oil", "file": "tools.pdf", "page": 2}',
        '{"question": "basil tomatoes", "file": "tools.pdf", "page": 3}']))
    report = evaluate_retrieval(tools_store, "tools", FakeEmbedder(), questions, k=1)
    assert report["k"] == 1 and report["questions"] == 2 and list(report["modes"]) == ["hybrid", "dense", "bm25"]
    for mode, figures in report["modes"].items():
        assert figures["hit_rate"] == 0.5 and figures["mrr"] == 0.75, mode
        assert figures["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1) / 2, abs=1e-4), mode
        assert figures["seconds"] >= 0
    chain, basil = report["rows"]
    assert chain["rank"] == {"hybrid": 2, "dense": 2, "bm25": 2}
    assert chain["top"]["bm25"] == {"file": "tools.pdf", "pages": [1]} and basil["rank"]["dense"] == 1
    assert missed_by_every_mode(report) == [chain]


def test_a_question_about_a_file_outside_the_collection_names_the_files_it_has(tools_store):
    question = {"question": "Q", "file": "other.pdf", "pages": [1], "page": 1, "line": 1}
    with pytest.raises(StudioError) as info:
        evaluate_retrieval(tools_store, "tools", FakeEmbedder(), [question])
    assert info.value.key == "rag.eval.unknown_file" and "'other.pdf'" in info.value.message
    assert info.value.params["files"] == "tools.pdf"
    with pytest.raises(StudioError) as info:
        evaluate_retrieval(tools_store, "tools", FakeEmbedder(), [question], k=0)
    assert info.value.key == "rag.eval.bad_k"


def test_every_sample_question_points_at_a_page_of_its_document():
    from studio.rag.samples import sample_corpus, sample_questions, unanswerable_questions

    corpus = sample_corpus()
    questions = sample_questions()
    assert len(corpus) == 4 and all(6 <= len(pages) <= 10 for pages in corpus.values())
    assert len(questions) == 40 and len(unanswerable_questions()) == 20
    assert sum(q["file"] == "guia-biblioteca.pdf" for q in questions) >= 8
    for q in questions:
        assert 1 <= q["page"] <= len(corpus[q["file"]]), q
    for name, pages in corpus.items():
        for text in pages:
            text.encode("cp1252")  # the PDF writer draws WinAnsi only
            assert max(len(line) for line in text.split("\n")) <= 95, name


def test_sample_pdfs_read_back_page_by_page(tmp_path):
    from studio.rag.parsing import read_document
    from studio.rag.samples import sample_corpus, write_sample_pdfs

    paths = write_sample_pdfs(tmp_path / "samples")
    assert [p.name for p in paths] == list(sample_corpus())
    doc = read_document(paths[-1])
    assert len(doc.pages) == len(sample_corpus()[paths[-1].name]) and not doc.empty_pages
    assert "Rosalía de Castro" in doc.pages[0].text and "préstamo interbibliotecario" in doc.pages[6].text
