"""The RAG index on a real Chroma in a temp workspace: ingestion with dedup and versions, embedder checks, and
dense / BM25 / hybrid retrieval on a small fixture corpus, with a deterministic fake embedder (words hashed into
a unit vector) and, in the slow suite, the real all-MiniLM-L6-v2."""
from __future__ import annotations

import pytest

from studio.errors import StudioError
from studio.rag.store import RagStore
from tests.rag_fixtures import FakeEmbedder
from tests.rag_pdf import make_pdf


@pytest.fixture
def store(workspace) -> RagStore:
    return RagStore(workspace)


def test_ingest_then_search_cites_file_and_page(store, corpus):
    embedder = FakeEmbedder()
    report = store.ingest("home-docs", corpus, embedder)
    assert report.added == ["garden.pdf", "bikes.pdf", "taxes.txt"] and report.pages == 6 and report.chunks >= 3
    for mode in ("dense", "bm25", "hybrid"):
        hits = store.search("home-docs", "How often does the chain need oil?", embedder, k=3, mode=mode)
        assert hits[0].file == "bikes.pdf" and hits[0].pages == [2], mode
        assert 0 < hits[0].similarity <= 1.0001
    late = store.search("home-docs", "fee for late forms", embedder, k=1)[0]
    assert late.file == "taxes.txt" and late.pages == [2]  # the form feed starts page 2
    assert store.describe() == [{"name": "home-docs", "embedder": "fake-words", "files": 3,
                                 "chunks": report.chunks}]


def test_same_bytes_are_a_no_op_changed_files_replace_and_copies_keep_both_names(store, corpus, tmp_path):
    embedder = FakeEmbedder()
    first = store.ingest("docs", corpus, embedder)
    again = store.ingest("docs", corpus, embedder)
    assert again.unchanged == ["garden.pdf", "bikes.pdf", "taxes.txt"] and again.chunks == 0
    count = store.collection("docs", embedder).count()
    assert count == first.chunks

    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "taxes-2026.txt").write_bytes(corpus[2].read_bytes())
    aliased = store.ingest("docs", [copy / "taxes-2026.txt"], embedder)
    assert aliased.aliased == ["taxes-2026.txt"] and store.collection("docs", embedder).count() == count
    assert store.search("docs", "tax form deadline", embedder, k=1)[0].file == "taxes.txt = taxes-2026.txt"

    changed = copy / "bikes.pdf"
    make_pdf(changed, ["Brakes: replace the pads when the groove is gone."])
    replaced = store.ingest("docs", [changed], embedder)
    assert replaced.replaced == ["bikes.pdf"] and store.manifest("docs")["files"]["bikes.pdf"]["version"] == 2
    hits = store.search("docs", "chain oil kilometres", embedder, k=5, mode="bm25")
    assert all("chain" not in h.text for h in hits)  # the old version's chunks are gone
    assert store.search("docs", "brake pads groove", embedder, k=1)[0].file == "bikes.pdf"


def test_another_embedder_empty_collections_and_bad_names_are_refused(store, corpus):
    embedder = FakeEmbedder()
    store.ingest("docs", corpus[:1], embedder)
    other = FakeEmbedder()
    other.name = "other-model"
    with pytest.raises(StudioError, match="built with the embedder 'fake-words'") as info:
        store.search("docs", "tomatoes", other)
    assert info.value.field == "rag.embedder"
    with pytest.raises(StudioError, match="no collection 'nothing-here'"):
        store.search("nothing-here", "tomatoes", embedder)
    with pytest.raises(StudioError, match="must be 3-64 letters"):
        store.ingest("a b", corpus[:1], embedder)
    with pytest.raises(StudioError, match="mode 'fuzzy'"):
        store.search("docs", "tomatoes", embedder, mode="fuzzy")
    store.delete("docs")
    assert store.names() == [] and not store.manifest("docs")["files"]


def test_a_bad_file_stops_before_anything_of_it_is_indexed_and_keeps_what_was_there(store, corpus, tmp_path):
    embedder = FakeEmbedder()
    store.ingest("docs", corpus[:1], embedder)
    fake = tmp_path / "notes.pdf"
    fake.write_text("this is not a pdf")
    with pytest.raises(StudioError):
        store.ingest("docs", [corpus[1], fake], embedder)
    assert list(store.manifest("docs")["files"]) == ["garden.pdf"]
    assert store.search("docs", "basil", embedder, k=1)[0].file == "garden.pdf"


@pytest.mark.slow
def test_the_real_minilm_finds_paraphrases(store, corpus, workspace):
    from studio.rag.embedder import load_embedder

    embedder = load_embedder("all-minilm-l6-v2", workspace)
    store.ingest("docs", corpus, embedder)
    hit = store.search("docs", "How frequently should I lubricate my bicycle?", embedder, k=1, mode="dense")[0]
    assert hit.file == "bikes.pdf" and hit.pages == [2]
    unrelated = store.search("docs", "Who won the football world cup in 1998?", embedder, k=1, mode="dense")[0]
    assert unrelated.similarity < hit.similarity


def test_a_500_page_pdf_is_indexed_with_progress_along_the_way(store, tmp_path):
    pages = [f"Page {n}. Section {n} explains rule number {n} of the long manual in a few words." for n in
             range(1, 501)]
    reports = []
    report = store.ingest("long-manual", [make_pdf(tmp_path / "manual.pdf", pages)], FakeEmbedder(),
                          progress=lambda done, total: reports.append((done, total)))
    assert report.pages == 500 and report.chunks >= 500 and report.pages_per_s > 0
    assert len(reports) >= 4 and reports[-1] == (500, 500)  # a batch at a time, not only at the end
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    hit = store.search("long-manual", "rule number 377", FakeEmbedder(), k=1, mode="bm25")[0]
    assert hit.pages == [377]
