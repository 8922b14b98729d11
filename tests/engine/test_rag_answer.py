"""Answers over a collection: follow-up rewriting, numbered sources, citations, the 'not in the documents' refusal,
quoted answers, background indexing with progress, page texts and feedback, on a real Chroma with the fake embedder
and a tiny random Llama (real SmolLM2 tokenizer)."""
from __future__ import annotations

import json
import threading

import pytest

from studio.errors import StudioError
from studio.generation import GenerationSettings, ModelPool
from studio.rag import answer as answer_mod
from studio.rag.answer import (NOT_FOUND, AskSettings, Source, build_messages, cited_numbers, is_followup,
                               standalone_query)
from studio.rag.feedback import save_feedback
from studio.rag.service import RagService
from tests.rag_fixtures import FakeEmbedder
from tests.rag_pdf import make_pdf

GREEDY = GenerationSettings(max_new_tokens=6, do_sample=False, repetition_penalty=1.0)
GENERATE = AskSettings(style="generate")


@pytest.fixture
def service(workspace, tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    embedder = FakeEmbedder()
    svc = RagService(workspace, embedder_loader=lambda name, ws: embedder)
    loads = []

    def load(spec, ws):
        loads.append(spec)
        return AutoModelForCausalLM.from_pretrained(tiny_llama_dir), AutoTokenizer.from_pretrained(tiny_llama_dir)

    svc.pool = ModelPool(workspace, loader=load)
    svc.loads = loads
    return svc


def indexed(svc, paths, name="home-docs"):
    job = svc.wait(svc.start_indexing(name, paths))
    assert job.state == "completed", job.error
    return job


def test_follow_ups_carry_the_previous_question_into_the_search():
    assert is_followup("and how long does it take?") and is_followup("¿y cuánto cuesta eso?")
    assert is_followup("What about basil?") and is_followup("why?")
    assert not is_followup("How often does a bike chain need oil?")
    previous = ["How often does a bike chain need oil?"]
    assert standalone_query("and in the rain?", previous) == "How often does a bike chain need oil? and in the rain?"
    assert standalone_query("What pressure do road tyres want?", previous) == "What pressure do road tyres want?"
    assert standalone_query("and in the rain?", []) == "and in the rain?"


def test_citation_markers_map_back_to_sources():
    assert cited_numbers("Six hours [2]. Water at the base [1, 2]; see [7] and [2].", 3) == [2, 1]
    assert cited_numbers("No markers here.", 3) == []
    sources = [Source(1, "garden.pdf", [1], "Tomatoes need sun.", 0.1, 0.8, "a"),
               Source(2, "bikes.pdf", [2], "Oil the chain.", 0.1, 0.5, "b")]
    messages = build_messages("How much sun?", sources, [{"role": "user", "content": "hi"},
                                                         {"role": "assistant", "content": "hello"}])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "[1] garden.pdf, page 1:\nTomatoes need sun." in messages[-1]["content"]
    assert "[2] bikes.pdf, page 2:" in messages[-1]["content"] and messages[-1]["content"].endswith(
        "cite them like [1]. Answer in English.")


def test_an_answer_streams_from_the_model_with_its_sources(service, corpus):
    indexed(service, corpus)
    updates = list(service.ask("home-docs", "How often does the chain need oil?", model="tiny",
                               generation=GREEDY, ask=GENERATE))
    final = updates[-1]
    assert final.done and final.found and final.stats["tokens"] == 6 and len(updates) >= 3
    assert final.sources[0].file == "bikes.pdf" and final.sources[0].pages == [2]
    assert "[1] bikes.pdf, page 2:" in final.messages[-1]["content"]
    assert service.loads == ["tiny"]
    data = final.as_dict()
    assert data["answer"] == final.text and data["citations"][0]["page"] == 2 and data["indexing"] is None
    list(service.ask("home-docs", "and in the rain?", model="tiny", generation=GREEDY, ask=GENERATE,
                     previous_queries=[final.query]))
    assert service.loads == ["tiny"]  # the model stays loaded between questions


def test_markers_in_the_answer_mark_their_sources_cited(service, corpus, monkeypatch):
    indexed(service, corpus)
    monkeypatch.setattr("studio.generation.stream_chat",
                        lambda *a, **k: iter(["Every 300", "Every 300 kilometres [1]."]))
    final = list(service.ask("home-docs", "How often does the chain need oil?", model="tiny", ask=GENERATE))[-1]
    assert [s.cited for s in final.sources][:2] == [True, False]
    assert [c["file"] for c in final.as_dict()["citations"]] == ["bikes.pdf"]


def test_unrelated_questions_get_the_documents_do_not_contain_it(service, corpus):
    indexed(service, corpus)
    final = list(service.ask("home-docs", "Mona Lisa painter?", model="tiny"))[-1]
    assert not final.found and final.text == NOT_FOUND and final.citations == []
    assert final.as_dict()["sources"] == [] and final.as_dict()["closest"]  # nothing listed as if it backed it
    assert service.loads == []  # the model is not even loaded


def test_quote_style_answers_with_the_documents_own_sentences(service, corpus):
    indexed(service, corpus)
    final = list(service.ask("home-docs", "How many hours of sun do tomatoes need?", model="tiny",
                             ask=AskSettings(style="quote")))[-1]
    assert final.text.startswith("Tomatoes need six hours of sun a day. [")
    cited = [s for s in final.sources if s.cited]
    assert cited and cited[0].file == "garden.pdf" and cited[0].pages == [1] and service.loads == []


def test_indexing_runs_in_the_background_and_questions_meanwhile_say_so(service, tmp_path):
    gate = threading.Event()
    fake = FakeEmbedder()
    slow = type("Slow", (), {"name": fake.name, "dim": fake.dim, "tokenizer": fake.tokenizer,
                             "encode": lambda self, texts: (gate.wait(10), fake.encode(texts))[1]})()
    service._load_embedder = lambda name, ws: slow
    pdf = make_pdf(tmp_path / "long.pdf", [f"Page {n} talks about topic number {n}." for n in range(1, 31)])
    job_id = service.start_indexing("long-docs", [pdf])
    with pytest.raises(StudioError) as busy:
        list(service.ask("long-docs", "topic number 7", model="tiny"))
    assert busy.value.key == "rag.service.indexing" and "still being indexed" in busy.value.message
    with pytest.raises(StudioError, match="being indexed"):
        service.delete("long-docs")
    gate.set()
    job = service.wait(job_id)
    assert job.state == "completed" and job.pages_done == job.pages_total == 30 and job.pages_per_s > 0
    assert job.as_dict()["report"]["added"] == ["long.pdf"]
    final = list(service.ask("long-docs", "topic number 7", model="tiny", ask=AskSettings(style="quote")))[-1]
    assert final.indexing is None and final.sources[0].pages == [7]


def test_a_bad_file_fails_its_job_and_keeps_what_was_indexed(service, corpus, tmp_path):
    indexed(service, corpus)
    fake = tmp_path / "notes.pdf"
    fake.write_text("not a pdf at all")
    with pytest.raises(StudioError, match="not a PDF file"):  # refused at once, before a job loads the embedder
        service.start_indexing("home-docs", [fake])
    job = service.wait(service.start_indexing("home-docs", [make_pdf(tmp_path / "scan.pdf", [""])]))
    assert job.state == "failed" and "no text" in job.error.message
    assert service.collections()[0]["files"] == 3
    with pytest.raises(StudioError, match="No files"):
        service.start_indexing("home-docs", [])
    with pytest.raises(StudioError, match="question is empty"):
        list(service.ask("home-docs", "  ", model="tiny"))


def test_page_text_shows_the_whole_page_of_a_source(service, corpus):
    indexed(service, corpus)
    assert service.page_text("home-docs", "garden.pdf", 2).startswith("Basil grows well")
    with pytest.raises(StudioError, match="pages 1-2, not 5"):
        service.page_text("home-docs", "garden.pdf", 5)
    with pytest.raises(StudioError, match="not in collection"):
        service.page_text("home-docs", "nothing.pdf", 1)


def test_feedback_becomes_preference_data_and_a_retrieval_test_set(service, corpus, monkeypatch, workspace):
    from studio.data import dataset_names

    indexed(service, corpus)
    monkeypatch.setattr("studio.generation.stream_chat", lambda *a, **k: iter(["Every 300 kilometres [1]."]))
    final = list(service.ask("home-docs", "How often does the chain need oil?", model="tiny", ask=GENERATE))[-1]
    answer = dict(final.as_dict(), messages=final.messages)
    up = service.save_feedback("home-docs", dict(answer, model="tiny"), rating="up")
    assert up["datasets"] == ["rag-feedback"] and up["evalset"] == "rag/evalsets/home-docs.jsonl"
    evalset = [json.loads(line) for line in open(service.evalset("home-docs"), encoding="utf-8")]
    assert evalset == [{"question": "How often does the chain need oil?", "file": "bikes.pdf", "page": [2]}]
    check = service.check_retrieval("home-docs", service.evalset("home-docs"), k=3)
    assert check["questions"] == 1 and check["modes"]["hybrid"]["hit_rate"] == 1.0
    better = save_feedback(workspace, "home-docs", answer, rating="down",
                           better="Every 300 km, or after riding in the rain [1].")
    assert set(better["datasets"]) == {"rag-feedback", "rag-preferences"}
    assert {"rag-feedback", "rag-preferences"} <= set(dataset_names(workspace))
    for bad, message in (({"rating": None}, "nothing to save"), ({"better": final.text}, "same as the model")):
        with pytest.raises(StudioError, match=message):
            save_feedback(workspace, "home-docs", answer, **bad)
    assert len(open(workspace.home / "rag" / "feedback.jsonl", encoding="utf-8").readlines()) == 2


def test_quote_answer_keeps_only_sentences_near_the_best(service):
    sources = [Source(1, "a.pdf", [1], "Tomatoes need sun every day. Bikes need oil often.", 0.1, 0.9, "x")]
    text = answer_mod.quote_answer("tomatoes need sun", sources, FakeEmbedder(), 0.1)
    assert text == "Tomatoes need sun every day. [1]"


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    """A random one-layer BERT cross-encoder (one relevance score) with the real MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from studio.models.embedded import minilm_path

    folder = tmp_path_factory.mktemp("cross-encoder")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64, num_labels=1)
                                  ).save_pretrained(folder)
    return folder


def test_a_cross_encoder_reorders_the_passages_it_is_given(service, corpus, tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    indexed(service, corpus)
    question = "How often does the chain need oil?"
    final = list(service.ask("home-docs", question, model="tiny",
                             ask=AskSettings(style="quote", k=2, reranker=str(tiny_cross_encoder))))[-1]
    candidates = service.store.search("home-docs", question, FakeEmbedder(), k=6)
    scores = CrossEncoder(str(tiny_cross_encoder)).predict([(question, h.text) for h in candidates])
    best = sorted(zip(candidates, scores), key=lambda pair: -float(pair[1]))[:2]
    assert [s.chunk_id for s in final.sources] == [h.id for h, _ in best]
    assert final.sources[0].score == pytest.approx(float(best[0][1]), abs=1e-5)
    with pytest.raises(StudioError, match="does not exist"):
        list(service.ask("home-docs", question, model="tiny", ask=AskSettings(reranker="./no/such/reranker")))


def test_a_small_model_answers_with_the_documents_own_sentences_by_default(service, corpus):
    indexed(service, corpus)
    final = list(service.ask("home-docs", "How often does the chain need oil?", model="tiny"))[-1]
    assert final.stats["style"] == "quote" and final.found and "[1]" in final.text
    assert final.text.startswith("A chain needs oil every 300 kilometres")


def test_a_looping_answer_is_cut_where_it_repeats_itself(service, corpus, monkeypatch):
    from studio.rag.grounding import repetition_cut

    looping = "The tank holds 1.8 litres [1]. Fill it daily. The tank holds 1.8 litres [1]. The tank"
    assert looping[:repetition_cut(looping)].rstrip() == "The tank holds 1.8 litres [1]. Fill it daily."
    assert repetition_cut("One two three four. Five six seven eight.") is None
    indexed(service, corpus)
    grown = [looping[:n] for n in range(10, len(looping) + 1, 10)]
    monkeypatch.setattr("studio.generation.stream_chat", lambda *a, **k: iter(grown))
    final = list(service.ask("home-docs", "How often does the chain need oil?", model="tiny", ask=GENERATE))[-1]
    assert final.text == "The tank holds 1.8 litres [1]. Fill it daily." and final.stats["stopped"] == "repetition"


def test_the_prompt_asks_for_an_answer_in_the_question_s_language():
    sources = [Source(1, "manual.pdf", [1], "The tank holds 1.8 litres.", 0.1, 0.8, "a")]
    spanish = build_messages("¿Cuánta agua cabe en el depósito de la cafetera?", sources)
    assert spanish[-1]["content"].endswith("cite them like [1]. Answer in Spanish.")
    english = build_messages("How much water does the coffee machine tank hold?", sources)
    assert english[-1]["content"].endswith("cite them like [1]. Answer in English.")
    assert build_messages("Tank?", sources)[-1]["content"].endswith("cite them like [1].")


def test_the_answer_language_is_named_only_when_the_question_makes_it_clear():
    from studio.rag.grounding import answer_language
    from studio.rag.translate import question_language

    assert answer_language("¿Cuánta agua cabe en el depósito?") == "Spanish"
    assert answer_language("How much water does the tank hold?") == "English"
    assert answer_language("¿Depósito?") is None  # too short to word a whole answer in
    assert question_language("¿Depósito?") == "es"  # but enough to translate for the search
    assert question_language("ok ok", sure=1.01) is None  # never that sure: no guess passes the bar
