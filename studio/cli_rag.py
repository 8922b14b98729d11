"""`studio rag ...`: build and search document collections from a terminal.

`ingest` parses, chunks, embeds and indexes files into a collection (created on first use);
`search` shows the chunks that best match a question, with file, page and scores; `list` and
`delete` manage collections. Each prints a human summary, or JSON with `--json`.
"""
from __future__ import annotations

import json
from pathlib import Path


def _store():
    from studio.rag.store import RagStore
    from studio.workspace import Workspace

    ws = Workspace.open()
    return ws, RagStore(ws)


def cmd_ingest(args) -> int:
    from studio.rag.chunking import ChunkSettings
    from studio.rag.embedder import load_embedder

    ws, store = _store()
    settings = ChunkSettings(chunk_tokens=args.chunk_size, overlap_tokens=args.overlap)
    embedder = load_embedder(args.embedder, ws)
    report = store.ingest(args.collection, [Path(f) for f in args.files], embedder, settings)
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

    ws, store = _store()
    embedder = load_embedder(args.embedder, ws)
    hits = store.search(args.collection, args.question, embedder, k=args.k, mode=args.mode)
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

    ws, store = _store()
    questions = read_questions(Path(args.questions))
    embedder = load_embedder(args.embedder, ws)
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    report = evaluate_retrieval(store, args.collection, embedder, questions, k=args.k, modes=modes)
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


def cmd_list(args) -> int:
    _, store = _store()
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
    _, store = _store()
    store.delete(args.collection)
    print(f"Deleted collection {args.collection}.")
    return 0


def add_rag_parser(sub) -> None:
    from studio.rag.embedder import DEFAULT_EMBEDDER

    rag = sub.add_parser("rag", help="build and search document collections (PDF, TXT, MD)")
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
    search.set_defaults(func=cmd_search)
    evaluate = rsub.add_parser("eval", help="score retrieval on questions whose answer pages are known")
    evaluate.add_argument("collection")
    evaluate.add_argument("questions", help=".jsonl (or .csv) with question, file, page on each line")
    evaluate.add_argument("--k", type=int, default=5, help="a question is a hit when its page is in the top k")
    evaluate.add_argument("--modes", default="hybrid,dense,bm25", help="comma-separated retrieval modes")
    evaluate.add_argument("--embedder", default=DEFAULT_EMBEDDER)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_eval)
    listing = rsub.add_parser("list", help="collections with their files and chunks")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    delete = rsub.add_parser("delete", help="delete a collection and its index")
    delete.add_argument("collection")
    delete.set_defaults(func=cmd_delete)
