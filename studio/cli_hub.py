"""`studio models search QUERY [--limit N] [--json]` and `studio models download HUB_ID`: the hub model browser
(`studio.models.hub_browser`) in the terminal. Offline, search lists the models already downloaded and says why."""
from __future__ import annotations

import json
import sys


def add_hub_parsers(models_sub) -> None:
    search = models_sub.add_parser("search", help="search the Hugging Face Hub for text-generation models (size, "
                                                  "licence, whether LoRA/QLoRA fit here)")
    search.add_argument("query", nargs="?", default="")
    search.add_argument("--limit", type=int, default=20)
    search.add_argument("--json", action="store_true")
    search.set_defaults(func=cmd_search)
    download = models_sub.add_parser("download", help="download a hub model into the local cache")
    download.add_argument("hub_id")
    download.set_defaults(func=cmd_download)


def _fit(value) -> str:
    return "-" if value is None else "yes" if value else "no"


def cmd_search(args) -> int:
    from studio.cli_common import table
    from studio.models.hub_browser import search
    from studio.workspace import Workspace

    found = search(args.query, Workspace.open(), limit=args.limit)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    if found["why"]:
        print(found["why"], file=sys.stderr)
    rows = [{"model": m["id"], "params": f"{m['params'] / 1e9:.2f}B" if m["params"] else "-",
             "licence": m["license"] or "-", "downloads": m["downloads"] if m["downloads"] is not None else "-",
             "LoRA fits": _fit(m["lora"]), "QLoRA fits": _fit(m["qlora"]),
             "here": "cached" if m["cached"] else ""} for m in found["models"]]
    print(table(rows, list(rows[0])) if rows else "No models found.")
    return 0


def cmd_download(args) -> int:
    from studio.models.hub_browser import download

    def progress(done: int, total: int) -> None:
        print(f"\r{done / 2**20:,.0f} of {total / 2**20:,.0f} MB", end="", file=sys.stderr, flush=True)

    path = download(args.hub_id, progress)
    print(f"\n{args.hub_id} is ready at {path}", file=sys.stderr)
    return 0
