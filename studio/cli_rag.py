"""`studio rag ...`: build and search document collections from a terminal.

`ingest` parses, chunks, embeds and indexes files into a collection (created on first use);
`search` shows the chunks that best match a question, with file, page and scores; `ask` answers
from them, citing file and page; `eval` scores retrieval on questions whose answer page is known;
`list` and `delete` manage collections. Each prints a human summary, or JSON with `--json`.
`--chroma-url` (or `$STUDIO_CHROMA_URL`) uses a Chroma server instead of the workspace's index.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from studio.cli_common import bars_wanted
from studio.rag.translate import TRANSLATE


def _service(args):
    from studio.rag.service import RagService
    from studio.workspace import Workspace

    return RagService(Workspace.open(), url=getattr(args, "chroma_url", None))


def _store(args=None):
    service = _service(args)
    return service.ws, service.store


def cmd_ingest(args) -> int:
    from studio.rag.chunking import ChunkSettings
    from studio.rag.embedder import load_embedder
    from studio.rag.parsing import check_files
    from studio.rag.store import check_name

    # What takes milliseconds first: a bad name or file is refused before the index opens or the embedder loads.
    check_name(args.collection)
    settings = ChunkSettings(chunk_tokens=args.chunk_size, overlap_tokens=args.overlap)
    check_files([Path(f) for f in args.files])
    ws, store = _store(args)
    embedder = load_embedder(args.embedder, ws)
    began = time.perf_counter()

    bars = bars_wanted(args)

    def progress(done: int, total: int) -> None:
        if bars:
            rate = done / max(time.perf_counter() - began, 1e-9)
            print(f"\r  {done}/{total} pages ({rate:.1f} pages/s)", end="", file=sys.stderr, flush=True)

    report = store.ingest(args.collection, [Path(f) for f in args.files], embedder, settings, progress=progress)
    if bars:
        print(file=sys.stderr)
    summary = {"collection": args.collection, "added": report.added, "replaced": report.replaced,
               "unchanged": report.unchanged, "aliased": report.aliased, "pages": report.pages,
               "chunks": report.chunks, "seconds": round(report.seconds, 2),
               "pages_per_s": round(report.pages_per_s, 1), "chunks_per_s": round(report.chunks_per_s, 1),
               "empty_pages": report.empty_pages}
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    print(f"{args.collection}: {len(report.added)} added, {len(report.replaced)} replaced, "
          f"{len(report.unchanged)} unchanged, {len(report.aliased)} indexed under another name; "
          f"{report.pages} pages, {report.chunks} chunks in {report.seconds:.1f} s "
          f"({report.pages_per_s:.1f} pages/s)")
    for file, pages in report.empty_pages.items():
        print(f"  {file}: no text found on pages {pages}")
    return 0


def cmd_search(args) -> int:
    from studio.rag.embedder import load_embedder

    ws, store = _store(args)
    store.require(args.collection)
    embedder = load_embedder(args.embedder, ws)
    from studio.rag.translate import cross_language

    cross = cross_language(store, args.collection, args.question, args.translate)
    hits = store.search(args.collection, args.question, embedder, k=args.k, mode=args.mode, also=cross["also"])
    if cross["also"] and not args.json:
        print(f"(also searched in translation, {cross['by']}: {cross['also'][0]})")
    rows = [{"file": h.file, "pages": h.pages, "score": round(h.score, 4),
             "similarity": None if h.similarity is None else round(h.similarity, 4), "text": h.text} for h in hits]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for n, row in enumerate(rows, start=1):
        pages = ", ".join(map(str, row["pages"]))
        print(f"[{n}] {row['file']} p. {pages}  score {row['score']}  similarity {row['similarity']}")
        print(f"    {' '.join(row['text'].split())[:240]}")
    return 0


def cmd_eval(args) -> int:
    """Score retrieval against questions whose answer pages are known: hit@k, MRR, nDCG@10 per mode."""
    from studio.rag.embedder import load_embedder
    from studio.rag.evaluate import evaluate_retrieval, missed_by_every_mode, read_questions

    ws, store = _store(args)
    questions = read_questions(Path(args.questions))
    store.require(args.collection)
    embedder = load_embedder(args.embedder, ws)
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    report = evaluate_retrieval(store, args.collection, embedder, questions, k=args.k, modes=modes,
                                translate=args.translate)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    print(f"{args.collection}: {report['questions']} questions, embedder {embedder.name}")
    header = f"{'mode':<8}  {'hit@' + str(report['k']):>7}  {'MRR':>6}  {'nDCG@10':>7}  {'seconds':>7}"
    print(header)
    print("-" * len(header))
    for mode, m in report["modes"].items():
        print(f"{mode:<8}  {m['hit_rate']:>7.3f}  {m['mrr']:>6.3f}  {m['ndcg@10']:>7.3f}  {m['seconds']:>7.2f}")
    missed = missed_by_every_mode(report)
    if missed:
        print(f"\nMissed by every mode (answer page not in the top {report['k']}):")
    for row in missed:
        pages = ", ".join(map(str, row["pages"]))
        print(f"  - {row['question']}  ({row['file']} p. {pages})")
    return 0


def cmd_ask(args) -> int:
    """Answer a question from a collection's documents, citing file and page."""
    from studio.evaluation import resolve_target
    from studio.generation import GenerationSettings
    from studio.rag.answer import AskSettings

    service = _service(args)
    target = resolve_target(service.ws, args.model)
    ask = AskSettings(k=args.k, mode=args.mode, style=args.style, reranker=args.reranker or "",
                      translate=args.translate)
    if args.min_similarity is not None:
        ask.min_similarity = args.min_similarity
    generation = GenerationSettings(do_sample=False, max_new_tokens=args.max_new_tokens)
    printed = 0
    final = None
    for final in service.ask(args.collection, args.question, model=target.model, run_id=target.run_id,
                             generation=generation, ask=ask):
        if not args.json and final.text[printed:]:
            print(final.text[printed:], end="", flush=True)
            printed = len(final.text)
    if args.json:
        print(json.dumps(final.as_dict(), indent=2, ensure_ascii=False))
        return 0
    print()
    if final.query != final.question:
        print(f"(searched for: {final.query})")
    if final.translation:
        print(f"(also searched in translation: {final.translation})")
    for source in final.citations:
        mark = "" if source.cited else " (retrieved, not cited)"
        pages = ", ".join(map(str, source.pages))
        print(f"[{source.n}] {source.file} p. {pages}  score {source.score:.4f}{mark}\n    {source.snippet}")
    return 0


def cmd_list(args) -> int:
    _, store = _store(args)
    rows = store.describe()
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("No collections yet; `studio rag ingest NAME FILES...` creates one.")
    else:
        for row in rows:
            print(f"{row['name']}: {row['files']} files, {row['chunks']} chunks, embedder {row['embedder']}")
    return 0


def cmd_delete(args) -> int:
    _, store = _store(args)
    store.delete(args.collection)
    print(f"Deleted collection {args.collection}.")
    return 0


TRANSLATE_HELP = ("a question in another language than the documents is also searched in translation: auto "
                  "(Apertium when installed), apertium, off")


def add_rag_parser(sub) -> None:
    from studio.rag.embedder import DEFAULT_EMBEDDER

    rag = sub.add_parser("rag", help="build and search document collections (PDF, Word, TXT, MD)")
    rag.add_argument("--chroma-url", default=None, help="a Chroma server (http://host:port) instead of the "
                     "workspace's own index; default: $STUDIO_CHROMA_URL")
    rsub = rag.add_subparsers(dest="rag_command", required=True)
    ingest = rsub.add_parser("ingest", help="add files to a collection (created on first use)")
    ingest.add_argument("collection")
    ingest.add_argument("files", nargs="+")
    ingest.add_argument("--chunk-size", type=int, default=200, help="embedder word pieces per chunk")
    ingest.add_argument("--overlap", type=int, default=40, help="word pieces shared with the previous chunk")
    ingest.add_argument("--embedder", default=DEFAULT_EMBEDDER)
    ingest.add_argument("--json", action="store_true")
    ingest.set_defaults(func=cmd_ingest)
    search = rsub.add_parser("search", help="the chunks that best match a question, with file and page")
    search.add_argument("collection")
    search.add_argument("question")
    search.add_argument("--k", type=int, default=5)
    search.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "bm25"))
    search.add_argument("--embedder", default=DEFAULT_EMBEDDER)
    search.add_argument("--json", action="store_true")
    search.add_argument("--translate", default="auto", choices=("auto", "apertium", "off"), help=TRANSLATE_HELP)
    search.set_defaults(func=cmd_search)
    evaluate = rsub.add_parser("eval", help="score retrieval on questions whose answer pages are known")
    evaluate.add_argument("collection")
    evaluate.add_argument("questions", help=".jsonl (or .csv) with question, file, page on each line")
    evaluate.add_argument("--k", type=int, default=5, help="a question is a hit when its page is in the top k")
    evaluate.add_argument("--modes", default="hybrid,dense,bm25", help="comma-separated retrieval modes")
    evaluate.add_argument("--embedder", default=DEFAULT_EMBEDDER)
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--translate", default="auto", choices=("auto", "apertium", "off"), help=TRANSLATE_HELP)
    evaluate.set_defaults(func=cmd_eval)
    ask = rsub.add_parser("ask", help="answer a question from a collection, citing file and page")
    ask.add_argument("collection")
    ask.add_argument("question")
    ask.add_argument("--model", default="smollm2-135m-instruct", help="model alias, hub id, folder, or run:<id>")
    ask.add_argument("--k", type=int, default=4, help="passages the model reads")
    ask.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "bm25"))
    ask.add_argument("--style", default="auto", choices=("auto", "generate", "quote"),
                     help="quote: the passages' closest sentences; generate: the model writes the answer; auto: quote "
                          "with models under 1B parameters")
    ask.add_argument("--min-similarity", type=float, default=None,
                     help="below this similarity the answer says the documents do not contain it")
    ask.add_argument("--reranker", default=None, help="optional cross-encoder (hub id or folder) that re-orders "
                     "the passages found")
    ask.add_argument("--max-new-tokens", type=int, default=200)
    ask.add_argument("--json", action="store_true")
    ask.add_argument("--translate", default="auto", choices=TRANSLATE, help="a question in another language than the "
                     "documents is also searched in translation: auto (Apertium when installed), apertium, model "
                     "(the answering model), off")
    ask.set_defaults(func=cmd_ask)
    listing = rsub.add_parser("list", help="collections with their files and chunks")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    delete = rsub.add_parser("delete", help="delete a collection and its index")
    delete.add_argument("collection")
    delete.set_defaults(func=cmd_delete)
    from studio.cli_rag_qa import add_qa_parser

    add_qa_parser(rsub)
