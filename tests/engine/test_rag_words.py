"""The BM25 word index (bm25s) is saved beside its collection: built once after an ingest, loaded by a later
process instead of rebuilt, rebuilt when another process changed the collection, stemmed in its language."""
from __future__ import annotations

import pytest

from studio.rag import words_index
from studio.rag.store import RagStore
from studio.rag.words_index import WordIndex
from tests.rag_fixtures import FakeEmbedder


def refuse_builds(monkeypatch):
    def build(*args, **kwargs):
        raise AssertionError("the saved index should have been loaded, not rebuilt")

    monkeypatch.setattr(WordIndex, "build", classmethod(lambda cls, *a, **k: build()))


def test_a_later_process_loads_the_saved_index_instead_of_rebuilding_it(workspace, corpus, monkeypatch):
    embedder = FakeEmbedder()
    RagStore(workspace).ingest("docs", corpus, embedder)
    assert (workspace.home / "rag" / "words" / "docs" / words_index.META).is_file()
    refuse_builds(monkeypatch)
    later = RagStore(workspace)  # what another process (the CLI, a worker) opens
    hit = later.search("docs", "How often does the chain need oil?", embedder, k=1, mode="bm25")[0]
    assert hit.file == "bikes.pdf" and hit.pages == [2] and hit.bm25 > 0


def test_a_collection_changed_elsewhere_is_reindexed_and_a_deleted_one_loses_its_index(workspace, corpus, tmp_path):
    embedder = FakeEmbedder()
    reader, writer = RagStore(workspace), RagStore(workspace)
    reader.ingest("docs", corpus[:1], embedder)
    before = reader.word_index("docs")
    writer.ingest("docs", corpus[1:], embedder)
    after = reader.word_index("docs")  # the reader's own copy is stale: the stamp says so
    assert after.size > before.size and after.stamp != before.stamp
    assert reader.search("docs", "chain oil", embedder, k=1, mode="bm25")[0].file == "bikes.pdf"
    reader.delete("docs")
    assert not (workspace.home / "rag" / "words" / "docs").exists()


def test_words_are_stemmed_in_the_collection_language():
    spanish = ["Si pierdes la tarjeta, llama al banco de inmediato para bloquearla.",
               "Las vacaciones se piden con dos semanas de antelación al responsable.",
               "El horario de la oficina es de nueve a cinco de lunes a viernes."]
    index = WordIndex.build(["a", "b", "c"], spanish)
    assert index.language == "es"
    assert index.top("¿Qué hago si pierdo mi tarjeta?", 1)[0][0] == 0  # pierdo ~ pierdes, tarjeta
    english = ["Printers need new toner when pages come out faint.",
               "The kitchen is cleaned every Friday afternoon.",
               "Badge 7 opens the server room on floor 3."]
    index = WordIndex.build(["a", "b", "c"], english)
    assert index.language == "en"
    assert index.top("printer toner", 1)[0][0] == 0
    assert index.top("which floor is the server room, badge 7?", 1)[0][0] == 2  # numbers stay words
    assert index.idf("printer") < index.idf("unicorn")  # a word no chunk holds weighs the most


def test_an_empty_index_scores_nothing():
    index = WordIndex.build([], [])
    assert index.top("anything", 5) == [] and index.idf("anything") == pytest.approx(0.6931, abs=1e-3)


def test_the_manifest_keeps_chunk_sizes_and_embedder_and_refuses_a_mix(workspace, corpus):
    from studio.errors import StudioError
    from studio.rag.chunking import ChunkSettings

    embedder = FakeEmbedder()
    store = RagStore(workspace)
    store.ingest("docs", corpus[:1], embedder)
    manifest = store.manifest("docs")
    assert manifest["chunking"] == {"chunk_tokens": 200, "overlap_tokens": 40}
    assert manifest["embedder"] == embedder.name
    count = store.collection("docs", embedder).count()
    with pytest.raises(StudioError, match="same chunk settings") as refused:
        store.ingest("docs", corpus[1:], embedder, settings=ChunkSettings(chunk_tokens=100, overlap_tokens=20))
    assert refused.value.field == "rag.chunk_tokens"
    assert store.collection("docs", embedder).count() == count and list(store.manifest("docs")["files"]) == [
        corpus[0].name]
