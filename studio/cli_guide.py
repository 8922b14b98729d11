"""`studio guide`: the guided first path in the terminal, as the Train tab's Simple mode offers it.

    studio guide                      the goals, each with its preset, stage and sample dataset
    studio guide extract              the recipe for the goal on its sample, and why (two sentences)
    studio guide format --data faq    ... on your own dataset; --write FILE saves the recipe, --start trains it
"""
from __future__ import annotations

import json

from studio.cli_common import table, train_foreground


def cmd_guide(args) -> int:
    from studio.engine import Engine

    engine = Engine(start_jobs=False)
    if not args.goal:
        rows = [{"goal": goal, "title": p.title["en"], "stage": p.recipe.get("stage", "sft"),
                 "dataset": (p.recipe.get("data") or {}).get("dataset", ""), "preset": f"presets/{p.path.name}"}
                for goal, p in engine.guide_goals().items()]
        print(json.dumps(rows, ensure_ascii=False) if args.json else table(rows, list(rows[0]) if rows else []))
        return 0
    plan = engine.guide(args.goal, args.data)
    import yaml

    text = yaml.safe_dump(plan["recipe"], sort_keys=False, allow_unicode=True)
    if args.write:
        with open(args.write, "w", encoding="utf-8") as out:
            out.write(text)
    if args.json:
        keep = ("goal", "preset", "method", "top", "switched", "peak", "free", "why", "recipe")
        print(json.dumps({k: plan[k] for k in keep}, ensure_ascii=False))
    else:
        print(f"{plan['title']['en']}: {plan['why']}")
        from studio.methods import METHODS

        print(f"Methods that fit this goal: {', '.join(METHODS.get(m).title or m for m in plan['top'])}.")
        print(f"Saved the recipe to {args.write}." if args.write else text.rstrip())
    if args.start:
        from studio.config import parse_recipe

        return train_foreground(parse_recipe(plan["recipe"]))
    return 0


def add_guide_parser(sub) -> None:
    guide = sub.add_parser("guide", help="a ready recipe for a goal (format, extract, classify, summarise, prefer, "
                                         "documents), chosen for this machine, and why")
    guide.add_argument("goal", nargs="?", default=None, help="leave out to list the goals")
    guide.add_argument("--data", default=None, help="your dataset (a studio dataset, sample name or file); "
                                                    "default: the goal's sample")
    guide.add_argument("--write", default=None, metavar="FILE", help="save the recipe as YAML to FILE")
    guide.add_argument("--start", action="store_true", help="train the recipe now, in the foreground")
    guide.add_argument("--json", action="store_true")
    guide.set_defaults(func=cmd_guide)
