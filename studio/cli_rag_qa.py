"""`studio rag qa COLLECTION [--teacher MODEL] [--passages N] [--answers auto|quote|teacher] [--out FILE]
[--save NAME] [--grounded-only] [--json]`: question/answer pairs written from a collection's passages
(`studio.rag.synth`). `--out` writes them as JSONL to review and edit (then `studio data import FILE` and
`studio rag eval COLLECTION FILE` take it); `--save` makes the dataset and the retrieval test set at once."""
from __future__ import annotations

import json
import sys


def add_qa_parser(rsub) -> None:
    from studio.models.catalogue import DEFAULT_MODEL
    from studio.rag.synth import ANSWERS

    qa = rsub.add_parser("qa", help="write question/answer pairs from a collection's passages (training data and a "
                                    "retrieval test set)")
    qa.add_argument("collection")
    qa.add_argument("--teacher", default=DEFAULT_MODEL, help="model alias, hub id, folder or run:<id> that writes "
                                                             "the questions")
    qa.add_argument("--passages", type=int, default=20, help="passages to write from, spread over the collection")
    qa.add_argument("--answers", default="auto", choices=ANSWERS, help="who writes the answers: the teacher, or "
                                                                       "the passage's own sentences (quote; auto: "
                                                                       "quote for teachers under 1B parameters)")
    qa.add_argument("--out", default=None, help="write the pairs to this JSONL file to review")
    qa.add_argument("--save", default=None, metavar="NAME", help="save the pairs as dataset NAME and a test set")
    qa.add_argument("--grounded-only", action="store_true", help="keep only pairs whose question and answer come "
                                                                 "from their passage")
    qa.add_argument("--json", action="store_true")
    qa.set_defaults(func=cmd_qa)


def cmd_qa(args) -> int:
    from pathlib import Path

    from studio.rag import synth
    from studio.rag.embedder import load_embedder
    from studio.rag.service import RagService
    from studio.workspace import Workspace

    service = RagService(Workspace.open(), url=getattr(args, "chroma_url", None))
    ws, store = service.ws, service.store
    name = store.require(args.collection)
    col = store.client.get_collection(name, embedding_function=None)
    embedder = load_embedder((col.metadata or {}).get("embedder"), ws)
    passages = synth.sample_passages(store, name, args.passages)
    ask, answer, how = synth.teacher(ws, args.teacher, embedder, args.answers)

    def progress(done: int, total: int) -> None:
        if not args.json:
            print(f"\r{done}/{total} passages", end="" if done < total else "\n", file=sys.stderr, flush=True)

    pairs = synth.write_pairs(passages, ask, answer, progress)
    if args.grounded_only:
        pairs = [p for p in pairs if p["grounded"]]
    out = {"passages": len(passages), "pairs": len(pairs), "grounded": sum(p["grounded"] for p in pairs),
           "answers": how}
    if args.out:
        Path(args.out).write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
        out["out"] = args.out
    if args.save:
        out["saved"] = synth.save_pairs(ws, pairs, args.save)
    if args.json:
        print(json.dumps({**out, "rows": pairs}, indent=2, ensure_ascii=False))
        return 0
    print(f"{out['pairs']} pairs from {out['passages']} passages ({out['grounded']} grounded; answers: {how})")
    for p in pairs if not args.out else []:
        mark = "" if p["grounded"] else "  (not grounded)"
        print(f"- {p['question']}{mark}\n  {p['answer']}\n  [{p['file']} p. {p['page']}]")
    if args.out:
        print(f"Written to {args.out}: edit it, then `studio data import {args.out}` and "
              f"`studio rag eval {name} {args.out}`.")
    if args.save:
        print(f"Saved dataset {out['saved']['dataset']} v{out['saved']['version']} and test set "
              f"{out['saved']['test_set']}.")
    return 0
