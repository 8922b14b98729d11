"""`studio prefs ...`: preference data from a terminal.

`pairs` converts rankings collected elsewhere (JSONL, one item per line with tie groups by
candidate text; see `studio.prefs.ranking.read_rankings_jsonl`) into TRL preference rows
{prompt, chosen, rejected} by a pairing strategy, or into KTO rows {prompt, completion, label},
standard or conversational, written as .jsonl or .parquet:

    studio prefs pairs rankings.jsonl --strategy best_vs_rest --out pairs.jsonl

It prints "N items -> M pairs (D dropped: chosen == rejected)", or a JSON summary with `--json`.

The other commands work on the workspace's task sets through `studio.prefs.service.PrefService`:

    studio prefs generate faq-round1 --prompts prompts.txt --models smollm2-135m-instruct,run:abc --k 4
    studio prefs generate faq-round2 --prompts prompts.txt --models smollm2-135m-instruct --k 2 \\
        --slot "temperature=0.3,max_new_tokens=64,seed=1" --slot "model=run:abc,top_p=0.8,seed=2"
    studio prefs import faq-round1 rankings.jsonl
    studio prefs export faq-round1 --strategy best_vs_rest --format dpo
    studio prefs agreement faq-round1 --json
    studio prefs arena leaderboard
    studio prefs arena export --name arena-pairs
    studio prefs arena duel --model-a smollm2-135m-instruct --model-b run:abc --prompts prompts.txt
    studio prefs arena vote 3f2a9c41d0be a --voter ana
    studio prefs list
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from studio.errors import StudioError

OUT_FORMATS = (".jsonl", ".parquet")


def _write(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), out)
        return
    with out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def cmd_pairs(args) -> int:
    from studio.prefs.ranking import kto_rows, pairs_rows, read_rankings_jsonl

    out = Path(args.out)
    if out.suffix.lower() not in OUT_FORMATS:
        raise StudioError(f"--out '{out.name}' must end in .jsonl or .parquet.", field="prefs.out",
                          key="prefs.cli.bad_out", file=out.name)
    items = read_rankings_jsonl(args.rankings)
    if args.format == "kto":
        result, unit = kto_rows(items, conversational=args.conversational), "rows"
        why = "labelled both ways"
    else:
        result, unit = pairs_rows(items, args.strategy, conversational=args.conversational), "pairs"
        why = "chosen == rejected"
    if not result.rows:
        raise StudioError(f"None of the {result.items} items gives a {args.format.upper()} row: every item ties all "
                          "its candidates or ranks identical texts apart; rank at least two different answers apart.",
                          field="prefs.rankings_file", key="prefs.pairs.none", items=result.items)
    _write(result.rows, out)
    summary = {"items": result.items, unit: len(result.rows), "dropped": result.dropped,
               "duplicates": result.duplicates, "items_without_rows": result.empty_items,
               "strategy": None if args.format == "kto" else args.strategy, "format": args.format,
               "conversational": args.conversational, "out": str(out)}
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    print(f"{result.items} items -> {len(result.rows)} {unit} ({result.dropped} dropped: {why})")
    if result.duplicates:
        print(f"  {result.duplicates} repeated {unit} from identical candidates kept once")
    if result.empty_items:
        print(f"  {result.empty_items} items gave no {unit} (all candidates tied)")
    print(f"  written to {out}")
    return 0


def _service():
    from studio.prefs.service import PrefService
    from studio.workspace import Workspace

    return PrefService(Workspace.open())


def _print_json(data) -> int:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    return 0


def cmd_generate(args) -> int:
    from studio.prefs.slots import candidate_settings, slot_plan
    from studio.prefs.sources import read_prompts_file

    svc = _service()
    if args.prompts:
        prompts = read_prompts_file(args.prompts, limit=args.limit)
    else:
        prompts = svc.load_prompts("dataset", args.dataset, column=args.column, limit=args.limit)
    base = candidate_settings(args.k, args.temperatures, args.max_new_tokens)
    targets, settings = slot_plan(args.k, (args.models or "").split(","), args.slot or [], base)
    models = list(dict.fromkeys(targets))
    job_id = svc.start_generation(args.task_set, prompts, targets, args.k, settings, overlap=args.overlap,
                                  guidelines=args.guidelines, created_by=args.created_by)
    while (job := svc.job(job_id))["state"] in ("queued", "running"):
        if not args.json:
            print(f"\r  {job['done']}/{job['total']} candidates", end="", file=sys.stderr, flush=True)
        time.sleep(0.2)
    if not args.json:
        print(f"\r  {job['done']}/{job['total']} candidates", file=sys.stderr)
    if job["state"] != "completed":
        raise svc.failure(job_id)
    if args.json:
        return _print_json(job)
    made = job["result"]
    print(f"Task set '{made['name']}': {made['items']} prompts x {made['k']} candidates from {', '.join(models)} "
          f"({job['seconds']:.1f} s); overlap {made['overlap']}")
    return 0


def cmd_import(args) -> int:
    from studio.prefs.ranking import read_rankings_jsonl

    svc = _service()
    report = svc.store.import_rankings(args.task_set, read_rankings_jsonl(args.rankings), source=args.rankings,
                                       created_by=args.created_by)
    if args.json:
        return _print_json(report)
    print(f"{report['stored']} rankings stored in '{report['task_set']}' as annotator '{report['annotator']}' "
          f"({report['items_added']} new items, {report['items_matched']} matched, {report['already']} already there)")
    return 0


def cmd_export(args) -> int:
    result = _service().export(args.task_set, strategy=args.strategy, fmt=args.format,
                               conversational=args.conversational, name=args.name,
                               min_annotators=args.min_annotators)
    if args.json:
        return _print_json(result)
    unit, why = ("rows", "labelled both ways") if args.format == "kto" else ("pairs", "chosen == rejected")
    print(f"{result['items']} items -> {result['rows']} {unit} ({result['dropped']} dropped: {why}) -> dataset "
          f"'{result['dataset']}'")
    if result["skipped_items"]:
        print(f"  {result['skipped_items']} items left out: fewer than {args.min_annotators} ranking(s)")
    print(f"  {result['jsonl']}\n  {result['parquet']}")
    return 0


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def cmd_agreement(args) -> int:
    result = _service().agreement(args.task_set)
    if args.json:
        return _print_json(result)
    print(f"Task set '{args.task_set}': {len(result['items'])} ranked items, Krippendorff's alpha (ordinal) "
          f"{_num(result['alpha'])}; consensus by Borda")
    for who, row in sorted(result["annotators"].items()):
        print(f"  {who}: tau {_num(row['tau'])} with the others over {row['items']} items")
    if result["contested"]:
        print("Most contested (Kendall's W):")
        for row in result["contested"][:5]:
            print(f"  item {row['item_id']}  W {_num(row['w'])}  {row['prompt'][:60]}")
    for name, judge in (result.get("judge") or {}).get("judges", {}).items():
        print(f"Judge '{name}': mean tau {_num(judge['mean'])} with the consensus over {judge['compared']} items")
    return 0


def cmd_arena_leaderboard(args) -> int:
    rows = _service().leaderboard(rounds=args.rounds)
    if args.json:
        return _print_json(rows)
    if not rows:
        print("No arena votes yet.")
        return 0
    for place, r in enumerate(rows, start=1):
        interval = f"[{r['low']:.0f}, {r['high']:.0f}]" if r["low"] is not None else ""
        print(f"{place:>2}. {r['model']:<40} {r['rating']:7.1f} {interval:>14}  {r['wins']}W {r['losses']}L "
              f"{r['ties']}T ({r['count']} votes)")
    return 0


def cmd_arena_export(args) -> int:
    result = _service().arena_export(name=args.name, conversational=args.conversational)
    if args.json:
        return _print_json(result)
    print(f"{result['votes']} votes -> {result['rows']} pairs -> dataset '{result['dataset']}'")
    print(f"  {result['jsonl']}\n  {result['parquet']}")
    return 0


# The terminal's vote words -> the service's outcomes (sides 1 and 2 are shown as A and B).
CLI_VOTES = {"a": "1", "b": "2", "tie": "tie", "bad": "both_bad"}


def _duel_prompt(svc, args) -> dict:
    """{"prompt", "system"}: --prompt as given, or one drawn at random from a prompts file, dataset or exchanges."""
    import random

    from studio.prefs.sources import read_prompts_file

    if args.prompt is not None:
        return {"prompt": args.prompt, "system": args.system}
    if args.prompts:
        prompts = read_prompts_file(args.prompts)
    elif args.dataset:
        prompts = svc.load_prompts("dataset", args.dataset, column=args.column)
    else:
        prompts = svc.load_prompts("exchanges", args.exchanges)
    return random.choice(prompts)


def _ask_vote() -> str | None:
    """A vote word read from stdin (asked again until it is one of CLI_VOTES); None at an empty line or its end."""
    while True:
        print(f"Vote {'/'.join(CLI_VOTES)} (Enter: leave the duel open): ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        word = line.strip().lower()
        if not word:
            return None
        if word in CLI_VOTES:
            return word
        print(f"'{word}' is not a vote.", file=sys.stderr)


def _reveal(svc, duel_id: str, vote: str, voter: str) -> dict:
    shown = svc.arena_vote(duel_id, CLI_VOTES[vote], voter=voter)
    return {"duel_id": duel_id, "vote": vote, "model_a": shown["model_1"], "model_b": shown["model_2"]}


def cmd_arena_duel(args) -> int:
    from studio.generation import GenerationSettings

    svc = _service()
    prompt = _duel_prompt(svc, args)
    settings = GenerationSettings(temperature=args.temperature, max_new_tokens=args.max_new_tokens)
    duel = svc.arena_duel(prompt["prompt"], args.model_a, args.model_b, settings, system=prompt["system"])
    shown = {"duel_id": duel["duel_id"], "prompt": prompt["prompt"], "system": prompt["system"],
             "answer_a": duel["answer_1"], "answer_b": duel["answer_2"]}
    if not args.json:
        print(f"Prompt: {prompt['prompt']}\n\n--- A ---\n{duel['answer_1']}\n\n--- B ---\n{duel['answer_2']}\n")
    # --json never asks: a script votes with --vote now or `arena vote DUEL_ID` later.
    vote = args.vote or (None if args.json else _ask_vote())
    result = {**shown, **(_reveal(svc, duel["duel_id"], vote, args.voter) if vote else {"vote": None})}
    if args.json:
        return _print_json(result)
    if vote:
        print(f"Voted {vote}: A was {result['model_a']}, B was {result['model_b']}")
    else:
        print(f"Duel {duel['duel_id']} left open; vote later with `studio prefs arena vote {duel['duel_id']} "
              f"{'|'.join(CLI_VOTES)}`")
    return 0


def cmd_arena_vote(args) -> int:
    result = _reveal(_service(), args.duel_id, args.vote, args.voter)
    if args.json:
        return _print_json(result)
    print(f"Voted {args.vote}: A was {result['model_a']}, B was {result['model_b']}")
    return 0


def cmd_list(args) -> int:
    sets = _service().task_sets()
    if args.json:
        return _print_json(sets)
    if not sets:
        print("No task sets yet; create one with `studio prefs generate` or `studio prefs import`.")
    for t in sets:
        print(f"{t['name']:<32} K={t['k']} overlap {t['overlap']}  {t['complete']}/{t['items']} items complete"
              + (f"  ({t['source']})" if t["source"] else ""))
    return 0


def add_prefs_parser(sub) -> None:
    from studio.prefs.ranking import STRATEGIES

    prefs = sub.add_parser("prefs", help="preference data: task sets, rankings, exports, arena, judge")
    psub = prefs.add_subparsers(dest="prefs_command", required=True)
    pairs = psub.add_parser("pairs", help="convert rankings (JSONL, tie groups by candidate text) to preference rows")
    pairs.add_argument("rankings", help='.jsonl: {"prompt", "candidates": [...], "ranking": [["B"], ["A", "C"]]}')
    pairs.add_argument("--strategy", default="all_pairs", choices=STRATEGIES,
                       help="all_pairs: every two answers in different groups; best_vs_rest: the best group against "
                            "each lower one; adjacent: each group against the next (ties never make a pair)")
    pairs.add_argument("--format", default="dpo", choices=("dpo", "kto"),
                       help="dpo: prompt/chosen/rejected; kto: prompt/completion/label (top group true, bottom false)")
    pairs.add_argument("--conversational", action="store_true",
                       help="rows of chat messages instead of plain strings (the system prompt joins the prompt)")
    pairs.add_argument("--out", required=True, help="output file, .jsonl or .parquet")
    pairs.add_argument("--json", action="store_true")
    pairs.set_defaults(func=cmd_pairs)

    gen = psub.add_parser("generate", help="a ranking task set: K candidate answers per prompt from models or runs")
    gen.add_argument("task_set", help="name of the new task set")
    source = gen.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts", help="a .txt file (one prompt per line) or .jsonl ({\"prompt\", \"system\"?})")
    source.add_argument("--dataset", help="a studio dataset or sample whose prompts to use")
    gen.add_argument("--column", help="with --dataset: the column holding the prompt (default: the format's own)")
    gen.add_argument("--limit", type=int, help="use at most this many prompts")
    gen.add_argument("--models", default="", help="comma list of models or run:<id>; candidate j uses model j "
                                                  "modulo their number unless its --slot names a model")
    gen.add_argument("--k", type=int, default=4, help="candidates per prompt, 2 to 6")
    gen.add_argument("--overlap", type=int, default=1, help="annotators needed per item")
    gen.add_argument("--temperatures", default="0.7,1.0", help="comma list used in turn by the candidates (each "
                                                               "also gets its own seed)")
    gen.add_argument("--max-new-tokens", type=int, default=128)
    gen.add_argument("--slot", action="append", metavar="KEY=VALUE,...",
                     help="settings of the next candidate slot (repeat per slot, in order; \"\" keeps the defaults): "
                          "model, temperature, top_p, top_k, max_new_tokens, seed, e.g. "
                          "\"temperature=0.7,top_p=0.9,max_new_tokens=128,seed=3\"")
    gen.add_argument("--guidelines", default="", help="markdown shown to the annotators")
    gen.add_argument("--created-by", default="", help="who made the task set")
    gen.add_argument("--json", action="store_true")
    gen.set_defaults(func=cmd_generate)

    imp = psub.add_parser("import", help="add rankings collected elsewhere (JSONL) to a task set")
    imp.add_argument("task_set", help="the task set (created when missing)")
    imp.add_argument("rankings", help='.jsonl: {"prompt", "candidates": [...], "ranking": [["B"], ["A", "C"]]}')
    imp.add_argument("--created-by", default="")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=cmd_import)

    exp = psub.add_parser("export", help="a task set's consensus rankings as a DPO or KTO dataset")
    exp.add_argument("task_set")
    exp.add_argument("--strategy", default="all_pairs", choices=STRATEGIES)
    exp.add_argument("--format", default="dpo", choices=("dpo", "kto"))
    exp.add_argument("--conversational", action="store_true",
                     help="the JSONL/Parquet files hold chat messages (the studio dataset stays plain text)")
    exp.add_argument("--name", help="dataset name (default: <task set>-dpo or -kto)")
    exp.add_argument("--min-annotators", type=int, default=1, help="leave out items with fewer rankings")
    exp.add_argument("--json", action="store_true")
    exp.set_defaults(func=cmd_export)

    agr = psub.add_parser("agreement", help="how much the annotators (and the AI judge) agree")
    agr.add_argument("task_set")
    agr.add_argument("--json", action="store_true")
    agr.set_defaults(func=cmd_agreement)

    arena = psub.add_parser("arena", help="blind A/B votes between models: duels, votes, leaderboard and pairs")
    asub = arena.add_subparsers(dest="arena_command", required=True)
    board = asub.add_parser("leaderboard", help="Bradley-Terry ratings with 95%% bootstrap intervals")
    board.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds (0: no intervals)")
    board.add_argument("--json", action="store_true")
    board.set_defaults(func=cmd_arena_leaderboard)
    aexp = asub.add_parser("export", help="the decisive votes as a preference dataset (winner chosen)")
    aexp.add_argument("--name", help="dataset name (default: arena-pairs)")
    aexp.add_argument("--conversational", action="store_true")
    aexp.add_argument("--json", action="store_true")
    aexp.set_defaults(func=cmd_arena_export)

    duel = asub.add_parser("duel", help="two models answer one prompt unnamed as A and B; vote, then see who was who")
    duel.add_argument("--model-a", required=True, help="a model or run:<id>")
    duel.add_argument("--model-b", required=True, help="another model or run:<id> (the sides are shuffled)")
    ask = duel.add_mutually_exclusive_group(required=True)
    ask.add_argument("--prompt", help="the prompt both answer")
    ask.add_argument("--prompts", help="draw the prompt at random from a .txt (one per line) or .jsonl file")
    ask.add_argument("--dataset", help="draw the prompt at random from a studio dataset or sample")
    ask.add_argument("--exchanges", help="draw the prompt at random from saved playground/RAG exchanges")
    duel.add_argument("--column", help="with --dataset: the column holding the prompt")
    duel.add_argument("--system", default="", help="with --prompt: a system prompt")
    duel.add_argument("--temperature", type=float, default=0.7)
    duel.add_argument("--max-new-tokens", type=int, default=128)
    duel.add_argument("--vote", choices=tuple(CLI_VOTES), help="vote at once instead of reading it from stdin")
    duel.add_argument("--voter", default="", help="who votes")
    duel.add_argument("--json", action="store_true", help="print the duel as JSON (never asks; use --vote)")
    duel.set_defaults(func=cmd_arena_duel)
    vote = asub.add_parser("vote", help="vote on an open duel (from `duel --json` without --vote)")
    vote.add_argument("duel_id")
    vote.add_argument("vote", choices=tuple(CLI_VOTES), help="a, b, tie or bad (both bad)")
    vote.add_argument("--voter", default="")
    vote.add_argument("--json", action="store_true")
    vote.set_defaults(func=cmd_arena_vote)

    lst = psub.add_parser("list", help="the workspace's task sets and how far their annotation is")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)
