"""RAG index speed and retrieval quality with the embedded all-MiniLM-L6-v2, against plain-library baselines.

(a) Ingest: writes `--pages` pages of prose (assets/general-text.txt cycled into ~180-word pages) as
`--files` PDFs and ingests them into a fresh collection of a temp workspace with `RagStore.ingest`
(parse, chunk, embed, index, manifest). The baseline does the same work with the libraries alone:
pypdf `extract_text` per page, naive word windows (as many chunks as the studio made for each file,
overlapping by a fifth like the default 40/200 tokens), `SentenceTransformer.encode(batch_size=64,
normalize_embeddings=True)` on the same model object, and one `collection.add` into a new cosine
Chroma collection. The two alternate (baseline, studio, ...) `--rounds` times each and the best of
each counts, so warm-up favours neither. Prints pages/s, chunks/s and studio / baseline (target >= 0.8).
(b) Query latency: a collection of `--chunks` chunks (default 10,000), synthesised: each chunk is 6-8
random sentences of the sample corpus and general text, its vector the normalised mean of those
sentences' real MiniLM vectors (embedding 10,000 chunks for real takes minutes and would not change
search time), written through the store's own collection and manifest so `RagStore.search` sees a
normal collection. Then `--questions` questions (the 40 sample questions, then sentence fragments)
per mode: p50 / p95 of `RagStore.search` (question embedding included), the first question on a
fresh store (which loads the saved BM25 index) on its own, the index build, and the parts of one search.
(c) Retrieval quality on the sample corpus (assets/rag) per mode: hit rate@5, MRR, nDCG@10, through
`studio.rag.evaluate.evaluate_retrieval` (skipped when that module is missing).

Times only; nothing is asserted. Run heavy things alone (it uses every core).

    .venv/bin/python bench/rag.py [--pages 200] [--files 8] [--chunks 10000] [--questions 100] [--rounds 2]
    .venv/bin/python bench/rag.py --quick        # small sizes, a smoke run of every part
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS_PER_PAGE = 180
OVERLAP = 0.2  # the default chunking repeats 40 of 200 tokens
SAMPLES = ROOT / "assets" / "rag"


# --- (a) ingest ------------------------------------------------------------------------------------
def prose_pages(pages: int) -> list[str]:
    """`pages` pages of ~180 words, paragraphs kept (blank line between), lines wrapped at 90 characters."""
    paragraphs = [p.split() for p in (ROOT / "assets" / "general-text.txt").read_text("utf-8").split("\n\n")
                  if p.strip()]
    out, para, at = [], 0, 0
    for _ in range(pages):
        blocks, count = [], 0
        while count < WORDS_PER_PAGE:
            words = paragraphs[para % len(paragraphs)][at:at + WORDS_PER_PAGE - count]
            blocks.append(textwrap.fill(" ".join(words), 90))
            count += len(words)
            at += len(words)
            if at >= len(paragraphs[para % len(paragraphs)]):
                para, at = para + 1, 0
        out.append("\n\n".join(blocks))
    return out


def write_pdfs(folder: Path, pages: int, files: int) -> list[Path]:
    from tests.rag_pdf import make_pdf

    texts = prose_pages(pages)
    per = -(-pages // files)
    return [make_pdf(folder / f"report-{i:02d}.pdf", texts[start:start + per])
            for i, start in enumerate(range(0, pages, per))]


def run_studio(paths: list[Path], embedder) -> dict:
    from studio.rag.store import RagStore
    from studio.workspace import Workspace

    with tempfile.TemporaryDirectory() as home:
        began = time.perf_counter()
        store = RagStore(Workspace.open(home))
        report = store.ingest("bench", paths, embedder)
        seconds = time.perf_counter() - began
        per_file = {name: entry["chunks"] for name, entry in store.manifest("bench")["files"].items()}
    return {"seconds": seconds, "pages": report.pages, "chunks": report.chunks, "per_file": per_file}


def naive_chunks(text: str, count: int) -> list[str]:
    """`count` windows of words over `text`, each overlapping the next by OVERLAP of its length."""
    words = text.split()
    stride = len(words) / count
    size = round(stride / (1 - OVERLAP))
    return [" ".join(words[round(i * stride):round(i * stride) + size]) for i in range(count)]


def run_baseline(paths: list[Path], model, per_file: dict[str, int]) -> dict:
    import chromadb
    from pypdf import PdfReader

    stages, began = {}, time.perf_counter()
    texts = {p.name: [page.extract_text() for page in PdfReader(p).pages] for p in paths}
    stages["parse"] = time.perf_counter() - began
    chunks = [c for name, pages in texts.items() for c in naive_chunks("\n".join(pages), per_file[name])]
    stages["chunk"] = time.perf_counter() - began - sum(stages.values())
    vectors = model.encode(chunks, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    stages["encode"] = time.perf_counter() - began - sum(stages.values())
    with tempfile.TemporaryDirectory() as folder:
        col = chromadb.PersistentClient(path=folder).create_collection(
            "plain", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
        col.add(ids=[str(i) for i in range(len(chunks))], embeddings=vectors, documents=chunks)
        stages["add"] = time.perf_counter() - began - sum(stages.values())
        seconds = time.perf_counter() - began  # like the studio's, without deleting the folder
    return {"seconds": seconds, "pages": sum(map(len, texts.values())), "chunks": len(chunks),
            "stages": stages, "texts": chunks}


def studio_stages(paths: list[Path], embedder) -> dict:
    """The studio's own parse and chunk steps timed alone (ingest does them inside one call)."""
    from studio.rag.chunking import chunk_document
    from studio.rag.parsing import read_document

    began = time.perf_counter()
    docs = [read_document(p) for p in paths]
    parse = time.perf_counter() - began
    chunks = [c for d in docs for c in chunk_document(d, embedder.tokenizer)]
    chunk = time.perf_counter() - began - parse
    tokens = [len(embedder.tokenizer(c.text, add_special_tokens=False)["input_ids"]) for c in chunks]
    return {"parse": parse, "chunk": chunk, "mean_tokens": statistics.mean(tokens)}


def bench_ingest(args, embedder) -> None:
    print(f"\n== (a) ingest: {args.pages} pages in {args.files} PDFs ==")
    with tempfile.TemporaryDirectory() as folder:
        paths = write_pdfs(Path(folder), args.pages, args.files)
        first = run_studio(paths, embedder)  # the chunk count per file, which the baseline matches
        studio, baseline = [], []
        for _ in range(args.rounds):
            baseline.append(run_baseline(paths, embedder.model, first["per_file"]))
            studio.append(run_studio(paths, embedder))
        stages = studio_stages(paths, embedder)
    plain_tokens = statistics.mean(len(embedder.tokenizer(c, add_special_tokens=False)["input_ids"])
                                   for c in baseline[0]["texts"])
    best_s = min(studio, key=lambda r: r["seconds"])
    best_b = min(baseline, key=lambda r: r["seconds"])
    for label, r in (("baseline", best_b), ("studio", best_s)):
        print(f"{label:<9} {r['pages']} pages, {r['chunks']} chunks in {r['seconds']:.2f} s: "
              f"{r['pages'] / r['seconds']:.1f} pages/s, {r['chunks'] / r['seconds']:.1f} chunks/s")
    print(f"all runs (s): baseline {[round(r['seconds'], 2) for r in baseline]}, "
          f"studio {[round(r['seconds'], 2) for r in studio]}")
    print("baseline stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in best_b["stages"].items()))
    print(f"studio parse {stages['parse']:.2f} s, chunk {stages['chunk']:.2f} s (timed alone); mean chunk "
          f"{stages['mean_tokens']:.0f} word pieces vs baseline {plain_tokens:.0f}")
    print(f"studio / baseline (pages/s): {best_b['seconds'] / best_s['seconds']:.2f}  (target >= 0.8)")


# --- (b) query latency -----------------------------------------------------------------------------
def sentence_pool() -> list[str]:
    corpus = json.loads((SAMPLES / "corpus.json").read_text("utf-8"))
    text = " ".join(p for pages in corpus.values() for p in pages)
    text += " " + (ROOT / "assets" / "general-text.txt").read_text("utf-8")
    sentences = {s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if len(s.split()) >= 4}
    return sorted(sentences)


def sample_questions() -> list[str]:
    return [json.loads(line)["question"] for line in (SAMPLES / "questions.jsonl").read_text("utf-8").splitlines()
            if line.strip()]


def synth_collection(store, name: str, embedder, count: int, rng: random.Random) -> float:
    """Fill collection `name` with `count` synthetic chunks (see the module docstring); returns seconds."""
    import numpy as np

    pool = sentence_pool()
    vectors = np.asarray(embedder.encode(pool))
    col = store.collection(name, embedder, create=True)
    manifest = {"files": {}, "contents": {}}
    began, batch = time.perf_counter(), 1000
    for start in range(0, count, batch):
        ids, docs, embs, metas = [], [], [], []
        for i in range(start, min(start + batch, count)):
            picks = rng.sample(range(len(pool)), rng.randint(6, 8))
            mean = vectors[picks].mean(axis=0)
            file, page = f"synthetic-{i // 50:04d}.pdf", i % 50 // 2 + 1
            sha = hashlib.sha256(file.encode()).hexdigest()
            text = " ".join(pool[p] for p in picks)
            ids.append(f"{sha[:16]}-{i % 50}")
            docs.append(text)
            embs.append((mean / np.linalg.norm(mean)).tolist())
            metas.append({"file": file, "doc_sha256": sha, "pages": str(page), "start": 0, "end": len(text),
                          "chunk_sha256": hashlib.sha256(text.encode()).hexdigest()})
            manifest["files"][file] = {"sha256": sha, "version": 1, "pages": 25, "chunks": 50}
            manifest["contents"][sha] = [file]
        col.add(ids=ids, embeddings=embs, documents=docs, metadatas=metas)
    store._save_manifest(name, manifest)
    return time.perf_counter() - began


def questions(count: int, rng: random.Random) -> list[str]:
    out = sample_questions()
    pool = sentence_pool()
    while len(out) < count:  # fragments of corpus sentences, as people type them
        words = rng.choice(pool).rstrip(".!?").split()
        out.append(" ".join(words[:rng.randint(4, 9)]) + "?")
    return out[:count]


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def bench_queries(args, embedder) -> None:
    from studio.rag.store import RagStore
    from studio.workspace import Workspace

    print(f"\n== (b) query latency: {args.chunks} chunks, {args.questions} questions per mode ==")
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as home:
        ws = Workspace.open(home)
        seconds = synth_collection(RagStore(ws), "latency", embedder, args.chunks, rng)
        print(f"built the collection in {seconds:.1f} s (synthetic chunks, real MiniLM sentence vectors)")
        asked = questions(args.questions, rng)
        builder = RagStore(ws)
        began = time.perf_counter()
        builder.word_index("latency")
        built = time.perf_counter() - began
        print(f"BM25 index built from every chunk and saved: {built * 1000:.0f} ms (before: every process, on its "
              "first question)")
        store = RagStore(ws)  # a fresh process's store: the saved index is loaded, not rebuilt
        began = time.perf_counter()
        store.search("latency", asked[0], embedder, k=5, mode="hybrid")
        first = time.perf_counter() - began
        print(f"first question of a fresh store (loads the saved index): {first * 1000:.0f} ms")
        modes = ["dense", "bm25", "hybrid"]
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for n, question in enumerate(asked):  # modes interleaved, order rotated: a busy spell hits all alike
            for mode in modes[n % 3:] + modes[:n % 3]:
                began = time.perf_counter()
                store.search("latency", question, embedder, k=5, mode=mode)
                times[mode].append(time.perf_counter() - began)
        for mode, values in times.items():
            print(f"{mode:<7} p50 {pct(values, 50) * 1000:6.1f} ms   p95 {pct(values, 95) * 1000:6.1f} ms")
        parts(store, embedder, asked)


def parts(store, embedder, asked: list[str]) -> None:
    """Medians of the pieces one search is made of, to show where the time goes."""
    col = store.collection("latency", embedder)
    bm25 = store.word_index("latency", col)
    timings = {"encode question": [], "chroma query (k=20)": [], "BM25 top": [], "collection check": []}
    for question in asked:
        marks = [time.perf_counter()]
        vector = embedder.encode([question])[0]
        marks.append(time.perf_counter())
        col.query(query_embeddings=[vector], n_results=20, include=["distances"])
        marks.append(time.perf_counter())
        bm25.top(question, 20)
        marks.append(time.perf_counter())
        store.collection("latency", embedder)
        marks.append(time.perf_counter())
        for (label, values), a, b in zip(timings.items(), marks, marks[1:]):
            values.append(b - a)
    print("parts (p50): " + ", ".join(f"{k} {statistics.median(v) * 1000:.1f} ms" for k, v in timings.items()))
    print(f"BM25 top alone: p95 {pct(timings['BM25 top'], 95) * 1000:.1f} ms (target <= 50 ms at 100k chunks)")


# --- (c) retrieval quality -------------------------------------------------------------------------
def bench_quality(args, embedder) -> None:
    print("\n== (c) retrieval quality on the sample corpus (assets/rag) ==")
    try:
        from studio.rag.evaluate import evaluate_retrieval
        from studio.rag.samples import sample_questions as load_questions
        from studio.rag.samples import write_sample_pdfs
    except ImportError as exc:  # they come with the evaluation feature; (a) and (b) do not need them
        print(f"skipped: {exc}")
        return
    from studio.rag.store import RagStore
    from studio.workspace import Workspace

    with tempfile.TemporaryDirectory() as home:
        store = RagStore(Workspace.open(Path(home) / "ws"))
        report = store.ingest("samples", write_sample_pdfs(Path(home) / "samples"), embedder)
        print(f"{report.pages} pages, {report.chunks} chunks")
        for name in ("questions.jsonl", "questions-es-over-en.jsonl"):
            for translate in ("off", "auto"):  # auto: Apertium translates a question in another language
                result = evaluate_retrieval(store, "samples", embedder, load_questions(name), k=5,
                                            translate=translate)
                print(f"{name}, {result['questions']} questions, translate {translate}:")
                for mode, scores in result["modes"].items():
                    print(f"  {mode:<7} hit_rate@5 {scores['hit_rate']:.3f}   MRR {scores['mrr']:.3f}   "
                          f"nDCG@10 {scores['ndcg@10']:.3f}   recall@5 {scores['recall']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200, help="pages to ingest in (a)")
    parser.add_argument("--files", type=int, default=8, help="PDFs the pages are spread over in (a)")
    parser.add_argument("--rounds", type=int, default=2, help="baseline/studio alternations in (a); best counts")
    parser.add_argument("--chunks", type=int, default=10_000, help="chunks in the latency collection (b)")
    parser.add_argument("--questions", type=int, default=100, help="questions per mode in (b)")
    parser.add_argument("--only", choices=("ingest", "queries", "quality"), help="run one part")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every part")
    args = parser.parse_args()
    if args.quick:
        args.pages, args.files, args.chunks, args.questions = 20, 2, 1000, 20

    import torch

    from studio.rag.embedder import load_embedder
    from studio.workspace import Workspace

    with tempfile.TemporaryDirectory() as home:
        began = time.perf_counter()
        embedder = load_embedder("all-minilm-l6-v2", Workspace.open(home))
        print(f"all-MiniLM-L6-v2 loaded in {time.perf_counter() - began:.1f} s on {embedder.model.device}, "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    parts_to_run = {"ingest": bench_ingest, "queries": bench_queries, "quality": bench_quality}
    for name, run in parts_to_run.items():
        if args.only in (None, name):
            run(args, embedder)
    # Other work on the same cores slows every figure above; a high load here means rerun.
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
