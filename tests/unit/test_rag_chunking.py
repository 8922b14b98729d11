"""Chunks fit the embedder whole, on the real all-MiniLM-L6-v2 tokenizer, and map back to their pages and text.

Documents are built here by hand; only the tokenizer files of the embedded model are read (no weights).
"""
from __future__ import annotations

import pytest

from studio.errors import StudioError
from studio.rag.chunking import ChunkSettings, chunk_document, document_text, token_limit
from studio.rag.parsing import Document, Page
from studio.settings import parse_settings

LONG_TEXTS = {
    "english": "The quick brown fox jumps over the lazy dog near the old riverbank. " * 60,
    "spanish": "¿Dónde está la biblioteca municipal? Está junto a la estación de autobuses del centro. " * 50,
    "german": "Die Donaudampfschifffahrtsgesellschaft veröffentlichte ihren Jahresbericht pünktlich. " * 50,
    "russian": "Московский метрополитен перевозит миллионы пассажиров каждый день без задержек. " * 50,
    "japanese": "東京は日本の首都であり、世界有数の大都市です。多くの人々が毎日電車で通勤しています。" * 40,
    "chinese without stops": "北京上海广州深圳" * 300,
    "one hyphenated run": "-".join(["state", "of", "the", "art"] * 250),
}


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from studio.models.embedded import minilm_path

    return AutoTokenizer.from_pretrained(str(minilm_path()))


def doc(*pages: str, name: str = "notes.pdf") -> Document:
    empty = [number for number, text in enumerate(pages, start=1) if not text.strip()]
    return Document(name=name, pages=[Page(n, t) for n, t in enumerate(pages, start=1)], sha256="0" * 64,
                    empty_pages=empty)


def n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_token_limit_of_minilm_is_its_256_pieces_less_cls_and_sep(tokenizer):
    # The tokenizer file says 512; the sentence-transformers folder says the model reads 256.
    assert token_limit(tokenizer) == 254


def test_token_limit_caps_a_tokenizer_that_reports_no_limit():
    class Unlimited:
        model_max_length = int(1e30)
        name_or_path = ""

        def num_special_tokens_to_add(self):
            return 2

    assert token_limit(Unlimited()) == 510


@pytest.mark.parametrize("language", LONG_TEXTS)
@pytest.mark.parametrize("size", [200, 1000, 16])
def test_no_chunk_exceeds_the_size_or_the_embedder_limit(tokenizer, language, size):
    document = doc(LONG_TEXTS[language])
    chunks = chunk_document(document, tokenizer, ChunkSettings(chunk_tokens=size, overlap_tokens=size // 5))
    assert len(chunks) > 1
    assert max(n_tokens(tokenizer, c.text) for c in chunks) <= min(size, 254)


@pytest.mark.parametrize("language", LONG_TEXTS)
def test_every_character_lands_in_a_chunk_at_its_exact_offsets(tokenizer, language):
    document = doc("Intro paragraph.\n\n" + LONG_TEXTS[language], "", "A closing line on page three.")
    text = document_text(document)
    chunks = chunk_document(document, tokenizer)
    covered = set()
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert c.file == "notes.pdf"
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


class PrefixedCharTokenizer:
    """One token per visible character, plus a zero-width marker token at the start of every input:
    a span cut out of the text tokenizes one longer than its share of the whole text's tokens."""

    model_max_length = 24
    name_or_path = ""

    def num_special_tokens_to_add(self):
        return 0

    def __call__(self, text, **kwargs):
        if isinstance(text, list):
            return {"offset_mapping": [self(one)["offset_mapping"] for one in text]}
        offsets = [(0, 0)] + [(i, i + 1) for i, ch in enumerate(text) if not ch.isspace()]
        return {"input_ids": [0] * len(offsets), "offset_mapping": offsets}


@pytest.mark.parametrize("overlap", [0, 4])
def test_the_limit_holds_when_a_cut_out_span_tokenizes_longer(overlap):
    tokenizer = PrefixedCharTokenizer()
    document = doc("abc de. " * 20 + "\n\n" + "x" * 100)
    text = document_text(document)
    chunks = chunk_document(document, tokenizer, ChunkSettings(chunk_tokens=100, overlap_tokens=overlap * 4))
    assert all(n_tokens(tokenizer, c.text) <= 24 for c in chunks)
    covered = {i for c in chunks for i in range(c.start, c.end)}
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_a_short_paragraph_is_never_split(tokenizer):
    short = [f"Short paragraph number {i} says one thing and stops." for i in range(12)]
    long = LONG_TEXTS["english"]
    document = doc("\n\n".join([short[0], long, *short[1:6], long, *short[6:]]))
    chunks = chunk_document(document, tokenizer, ChunkSettings(chunk_tokens=64, overlap_tokens=8))
    for paragraph in short:
        assert any(paragraph in c.text for c in chunks), paragraph


def test_paragraphs_are_packed_together_up_to_the_size(tokenizer):
    paragraphs = [f"Paragraph {i} is short." for i in range(6)]
    chunks = chunk_document(doc("\n\n".join(paragraphs)), tokenizer, ChunkSettings(chunk_tokens=200))
    assert [c.text for c in chunks] == ["\n\n".join(paragraphs)]


def test_each_chunk_repeats_the_end_of_the_previous_one_from_a_word_start(tokenizer):
    document = doc(LONG_TEXTS["english"])
    text = document_text(document)
    chunks = chunk_document(document, tokenizer, ChunkSettings(chunk_tokens=100, overlap_tokens=30))
    for before, after in zip(chunks, chunks[1:]):
        assert before.start < after.start < before.end
        repeated = text[after.start:before.end]
        assert 15 <= n_tokens(tokenizer, repeated) <= 30
        assert text[after.start - 1].isspace()


def test_overlap_prefers_a_sentence_start(tokenizer):
    sentences = " ".join(f"Sentence {i} has exactly a handful of words." for i in range(40))
    chunks = chunk_document(doc(sentences), tokenizer, ChunkSettings(chunk_tokens=60, overlap_tokens=20))
    assert all(c.text.startswith("Sentence ") for c in chunks)


def test_chunks_stay_on_one_page_so_citations_name_it(tokenizer):
    document = doc("Page one ends with this sentence.", "Page two starts here and goes on.")
    assert [c.pages for c in chunk_document(document, tokenizer)] == [[1], [2]]
    many = doc(LONG_TEXTS["english"], LONG_TEXTS["spanish"])
    pages = [c.pages for c in chunk_document(many, tokenizer)]
    assert pages[0] == [1] and pages[-1] == [2] and all(len(p) == 1 for p in pages)
    assert pages == sorted(pages)


def test_identical_text_gives_identical_sha256(tokenizer):
    (a,) = chunk_document(doc("Same words here.\nOn two lines.", name="a.pdf"), tokenizer)
    (b,) = chunk_document(doc("Same  words here. On two\tlines.", name="b.md"), tokenizer)
    (c,) = chunk_document(doc("Different words here."), tokenizer)
    assert a.sha256 == b.sha256 != c.sha256


def test_empty_pages_produce_no_chunks(tokenizer):
    assert chunk_document(doc("", "  \n\n ", ""), tokenizer) == []
    assert chunk_document(doc(), tokenizer) == []
    chunks = chunk_document(doc("First page text.", "", "\n", "Fourth page text."), tokenizer)
    assert [c.pages for c in chunks] == [[1], [4]]


@pytest.mark.parametrize("values, field, key", [
    ({"chunk_tokens": 8, "overlap_tokens": 2}, "rag.chunk_tokens", "rag.chunk.too_small"),
    ({"chunk_tokens": 100, "overlap_tokens": 100}, "rag.overlap_tokens", "rag.chunk.overlap_too_big"),
    ({"chunk_tokens": 100, "overlap_tokens": 150}, "rag.overlap_tokens", "rag.chunk.overlap_too_big"),
    ({"chunk_tokens": 100, "overlap_tokens": -1}, "rag.overlap_tokens", "rag.chunk.negative_overlap"),
])
def test_bad_settings_name_the_field(values, field, key):
    with pytest.raises(StudioError) as caught:
        ChunkSettings(**values)
    assert (caught.value.field, caught.value.key) == (field, key)


def test_settings_parsed_from_a_dict_are_checked_too():
    with pytest.raises(StudioError) as caught:
        parse_settings(ChunkSettings, {"chunk_tokens": 50, "overlap_tokens": 60}, "rag")
    assert caught.value.field == "rag.overlap_tokens"
    assert parse_settings(ChunkSettings, {"chunk_tokens": "300"}, "rag") == ChunkSettings(300, 40)
