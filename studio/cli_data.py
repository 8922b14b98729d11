"""`studio data ...`: import, list, show and export studio datasets from a terminal.

Each subcommand calls one function of `studio.data.builder` and prints a human summary, or JSON
with `--json`. Row-level problems are listed with their row numbers; nothing is half-saved.
"""
from __future__ import annotations

import json
import sys

from studio.cli_common import bars_wanted
from studio.errors import StudioError


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise StudioError(f"'{flag} {item}' must look like field=column, e.g. {flag} output=answer.", field=flag,
                              key="data.cli.pair", flag=flag, item=item)
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _split(text: str | None):
    from studio.data.cleaning import SplitConfig

    if not text:
        return SplitConfig()
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise StudioError(f"--split '{text}' must be shares like 0.9,0.1 or 0.8,0.1,0.1.", field="--split",
                          key="data.cli.split_number", value=text) from None
    if len(parts) not in (2, 3) or abs(sum(parts) - 1) > 1e-6:
        raise StudioError(f"--split '{text}' must be 2 or 3 shares adding up to 1 (train,validation[,test]).",
                          field="--split", key="data.cli.split_sum", value=text)
    return SplitConfig(validation=parts[1], test=parts[2] if len(parts) == 3 else 0.0)


def cmd_import(args) -> int:
    from tqdm import tqdm

    from studio.data.builder import ImportRequest, import_dataset
    from studio.workspace import Workspace

    req = ImportRequest(source=args.source, name=args.name, format=args.format, mapping=_pairs(args.map, "--map"),
                        template=args.template, split=_split(args.split), text_mode=args.text_mode,
                        heldout={k: v for k, v in (("validation", args.validation), ("test", args.test)) if v})
    with tqdm(total=0, unit="B", unit_scale=True, desc="reading", file=sys.stderr,
              disable=not bars_wanted(args)) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = import_dataset(Workspace.open(), req, progress=progress)
    if args.json:
        print(json.dumps({"name": result.name, "version": result.version, "path": result.path,
                          "format": result.format, "mapping": result.mapping, "read": result.read,
                          "imported": result.imported, "removed": result.removed(), "text_mode": result.text_mode,
                          "skipped": result.skipped, "problems": result.problems, "cleaning": result.cleaning,
                          "splits": result.splits, "heldout": result.heldout}, indent=2, ensure_ascii=False))
        return 0
    print(f"format {result.format}, mapping " + ", ".join(f"{k}={v}" for k, v in result.mapping.items()))
    print("cleaning: " + ", ".join(f"{k} {v}" for k, v in result.cleaning.items()))
    print("splits: " + ", ".join(f"{k} {v}" for k, v in result.splits.items()))
    for row, reason in result.problems[:20]:
        print(f"  skipped row {row}: {reason}")
    if result.skipped > 20:
        print(f"  ... and {result.skipped - 20} more (see --json)")
    print(result.summary())
    return 0


def cmd_mix(args) -> int:
    from studio.data.builder import mix_datasets
    from studio.workspace import Workspace

    sources = []
    for name, amount in _pairs(args.sources, "SOURCE=AMOUNT").items():
        try:
            value = float(amount)
        except ValueError:
            raise StudioError(f"'{name}={amount}' needs a share (0.3) or a count (200).", field="mix",
                              key="data.cli.mix_amount", name=name, amount=amount) from None
        sources.append((name, int(value) if value >= 1 and value.is_integer() else value))
    result = mix_datasets(Workspace.open(), args.name, sources, _split(args.split), args.seed, args.template)
    print(json.dumps({"name": result.name, "version": result.version, "rows": result.splits}) if args.json
          else result.summary())
    return 0


def cmd_list(args) -> int:
    from studio.data.builder import list_datasets
    from studio.workspace import Workspace

    rows = list_datasets(Workspace.open())
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("No studio datasets yet; import one with `studio data import FILE --name NAME`.")
    else:
        for r in rows:
            sizes = ", ".join(f"{k} {v}" for k, v in r["rows"].items() if v)
            print(f"{r['name']:24} v{r['version']:<3} {r['format']:14} {r['template']:8} {sizes}")
    return 0


def cmd_show(args) -> int:
    from studio.data.builder import dataset_card, load_split
    from studio.data.template_store import get_template
    from studio.data.templates import preview_spans, render_example
    from studio.models.loading import load_tokenizer
    from studio.workspace import Workspace

    ws = Workspace.open()
    card = dataset_card(ws, args.name, args.version)
    records = load_split(ws, args.name, "train", args.version)[: max(args.rendered, 0)]
    rendered = []
    if records:
        tokenizer = load_tokenizer(args.model, ws, light=True)
        template = get_template(card.get("template") or "chat", ws)
        for i, rec in enumerate(records):
            example = render_example(template, rec, system_prompt=card.get("system_prompt", ""), index=i)
            rendered.append(preview_spans(tokenizer, example))
    if args.json:
        print(json.dumps({"card": card, "rendered": [[{"text": t, "loss": l} for t, l in spans] for spans in rendered]},
                         indent=2, ensure_ascii=False))
        return 0
    print(json.dumps({k: v for k, v in card.items() if k != "problems"}, indent=2, ensure_ascii=False))
    for i, spans in enumerate(rendered):
        # Text that counts for the loss is shown between [[ ]].
        print(f"\n--- example {i + 1} ([[...]] = trained on) ---")
        print("".join(f"[[{t}]]" if loss else t for t, loss in spans))
    return 0


def cmd_export(args) -> int:
    from studio.data.builder import export_dataset
    from studio.workspace import Workspace

    print(export_dataset(Workspace.open(), args.name, args.out, args.format, args.split, args.version))
    return 0


def add_data_parser(sub) -> None:
    data = sub.add_parser("data", help="import, list, show and export datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)
    imp = dsub.add_parser("import", help="import a file or hub dataset as a studio dataset")
    imp.add_argument("source", help="file path (csv, tsv, json, jsonl, parquet, xlsx, txt) or hub id owner/name[:config]")
    imp.add_argument("--name", required=True)
    imp.add_argument("--format", default="auto",
                     choices=["auto", "instruction", "chat", "text", "classification", "seq2seq", "preference",
                              "feedback"])
    imp.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN")
    imp.add_argument("--template", default="chat")
    imp.add_argument("--split", default=None, metavar="0.9,0.1[,0.0]")
    imp.add_argument("--text-mode", default="auto", choices=["auto", "document", "paragraphs"],
                     help="plain text: auto = one row per paragraph of a file, one per file of a folder")
    imp.add_argument("--validation", default=None, metavar="FILE",
                     help="a separate file (same columns) that becomes the validation split whole")
    imp.add_argument("--test", default=None, metavar="FILE",
                     help="a separate file (same columns) that becomes the test split whole, e.g. held-out phrasings")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=cmd_import)
    mix = dsub.add_parser("mix", help="build one dataset from several, by share or count each")
    mix.add_argument("sources", nargs="+", metavar="DATASET=AMOUNT", help="e.g. mytask=0.7 general=500")
    mix.add_argument("--name", required=True)
    mix.add_argument("--split", default=None, metavar="0.9,0.1[,0.0]")
    mix.add_argument("--seed", type=int, default=42)
    mix.add_argument("--template", default="chat")
    mix.add_argument("--json", action="store_true")
    mix.set_defaults(func=cmd_mix)
    lst = dsub.add_parser("list", help="list studio datasets")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)
    show = dsub.add_parser("show", help="show a dataset's card and rendered examples with their loss masks")
    show.add_argument("name")
    show.add_argument("--version", type=int, default=None)
    show.add_argument("--rendered", type=int, default=3)
    show.add_argument("--model", default="smollm2-135m-instruct", help="whose tokenizer renders the examples")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    exp = dsub.add_parser("export", help="write a split as jsonl, csv or parquet")
    exp.add_argument("name")
    exp.add_argument("out")
    exp.add_argument("--format", default=None, choices=["jsonl", "csv", "parquet"])
    exp.add_argument("--split", default="train", choices=["train", "validation", "test"])
    exp.add_argument("--version", type=int, default=None)
    exp.set_defaults(func=cmd_export)
