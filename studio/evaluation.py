"""Evaluating models and finished runs on a dataset split: does fine-tuning beat the base, and prompting?

`evaluate` takes targets (a model alias/hub id/folder, or `run:<id>` of a completed generative
run), a dataset and a split. Each example becomes a prompt (its conversation up to the last
answer) and a reference (that answer). Every target answers every prompt greedily; the answers
are scored with `studio.metrics` (ROUGE-1/2/L, BLEU, exact match) and the reference answers'
perplexity under the target is measured by teacher forcing. The in-context baseline asks the
first target's base model again with k examples of the training split put before each prompt as
earlier turns (k = 0 is zero-shot), so a fine-tune can be compared with prompting. The forgetting
check measures perplexity on `assets/general-text.txt`, a general text written for the project:
a run whose perplexity there rose far above its base has forgotten general language.
Results are saved as JSON under `<workspace>/evaluations/` and under each evaluated run's folder.
Finished classification runs are scored instead with accuracy, macro-F1 and a confusion matrix
(`studio.evaluation_classify`).
"""
from __future__ import annotations

import difflib
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from studio.errors import StudioError
from studio.metrics import TEXT_METRICS, perplexity, text_metrics
from studio.models.refs import has_result, parse
from studio.phase import Phase

ASSETS = Path(__file__).resolve().parent.parent / "assets"
GENERAL_TEXT = ASSETS / "general-text.txt"
METRIC_GROUPS = {"rouge": ("rouge1", "rouge2", "rougeL"), "bleu": ("bleu",), "em": ("exact_match",),
                 "ppl": ("perplexity",)}
WINDOW = 256  # tokens per perplexity window on the general text


@dataclass
class Item:
    prompt: list[dict]  # the conversation before the answer
    reference: str


@dataclass
class Target:
    label: str
    model: str  # base model spec
    run_id: str | None = None
    stage: str | None = None


def parse_metrics(text: str | list[str] | None) -> tuple[str, ...]:
    """('rouge', 'bleu', ...) from 'rouge,bleu,em,ppl'; StudioError for an unknown name."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text or []) if n.strip()]
    unknown = [n for n in names if n not in METRIC_GROUPS]
    if unknown:
        raise StudioError(f"Unknown metric(s) {', '.join(unknown)}; choose among {', '.join(METRIC_GROUPS)}.",
                          field="metrics", key="eval.unknown_metric", names=", ".join(unknown),
                          known=", ".join(METRIC_GROUPS))
    return tuple(names) or tuple(METRIC_GROUPS)


def resolve_target(ws, spec: str) -> Target:
    """A model spec or 'run:<id>' (or a bare run id) as a Target; refuses runs that cannot be evaluated here."""
    ref = parse(spec, ws)
    spec, run_id = ref.spec, ref.run_id
    if run_id is None:
        from studio.models.catalogue import check_model

        check_model(spec, ws)
        return Target(label=spec, model=spec)
    run = ws.get_run(run_id)
    if run is None:
        raise StudioError(f"Run '{run_id}' does not exist; pick one from the Runs list.", field="targets",
                          key="eval.no_run", run_id=run_id)
    if not has_result(run):
        raise StudioError(f"Run '{run['name']}' is {run['status']}; only a completed run with a saved result can "
                          "be evaluated.", field="targets", key="eval.not_completed", name=run["name"],
                          status=run["status"])
    if not evaluated(run["stage"]):
        raise StudioError(f"Run '{run['name']}' is a {run['stage']} run, which this evaluation does not cover; its "
                          "stage scores it itself (ROUGE, BLEU and exact match at each evaluation, in the run's "
                          "charts).", field="targets", key="eval.not_generative", name=run["name"], stage=run["stage"])
    return Target(label=f"{run['name']} ({run_id[-4:]})", model=run["model"], run_id=run_id, stage=run["stage"])


def evaluated(stage: str) -> bool:
    """Whether this evaluation covers runs of `stage` (its class says what it measures: `Stage.evaluation`)."""
    from studio.stages.base import capability

    return capability(stage, "evaluation") is not None


def whole_file(ws, dataset: str) -> bool:
    """A data file that is not a studio dataset is a test set of its own: every row of it is scored."""
    from studio.data.examples import is_studio_dataset

    return Path(dataset).expanduser().is_file() and not is_studio_dataset(ws, dataset)


def load_items(ws, dataset: str, split: str, limit: int | None = None,
               seed: int = 42) -> tuple[list[Item], list[Item], int]:
    """(evaluation items of `split`, or of the whole file for a data file; training items for few-shot examples;
    how many items there were before `limit`) of a dataset, sample or file."""
    from studio.config import DataConfig
    from studio.data.builder import load_split
    from studio.data.examples import is_studio_dataset, recipe_records
    from studio.data.formats import record_to_messages

    whole = whole_file(ws, dataset)
    records = recipe_records(DataConfig(dataset=dataset, validation=0.0 if whole else 0.1), seed, ws)
    if whole:
        chosen = records.train
    elif split == "test" and is_studio_dataset(ws, dataset):
        chosen = load_split(ws, dataset, "test") or records.validation
    else:
        chosen = records.train if split == "train" else records.validation

    def items(rows: list[dict]) -> list[Item]:
        out = []
        for row in rows:
            messages = row["messages"] if "messages" in row else record_to_messages(row, records.format)
            last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
            if last is None or not str(messages[last]["content"]).strip():
                continue
            out.append(Item(messages[:last], str(messages[last]["content"]).strip()))
        return out

    available = items(chosen)
    evaluated = available[:limit] if limit else available
    if not evaluated:
        raise StudioError(f"Split '{split}' of '{dataset}' has no example with a reference answer; pick another "
                          "split or a dataset with answers.", field="dataset", key="eval.no_references",
                          split=split, dataset=dataset)
    return evaluated, items(records.train), len(available)


def with_shots(prompt: list[dict], shots: list[Item]) -> list[dict]:
    """The prompt with solved examples inserted as earlier turns, after any system message."""
    head = [m for m in prompt[:1] if m["role"] == "system"]
    turns = [m for item in shots for m in (*[m for m in item.prompt if m["role"] != "system"],
                                          {"role": "assistant", "content": item.reference})]
    return head + turns + prompt[len(head):]


def _prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    from studio.generation import build_prompt

    return tokenizer(build_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]


def answer_nll(model, tokenizer, prompts: list[list[int]], references: list[str],
               done: Callable[[int], None] | None = None) -> tuple[float, int]:
    """(summed NLL, token count) of each reference given its prompt, by teacher forcing; `done(rows)` after each."""
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    end = tokenizer.eos_token or ""
    with torch.no_grad():
        for row, (prompt, reference) in enumerate(zip(prompts, references), start=1):
            answer = tokenizer(reference + end, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + answer], device=device)
            labels = ids.clone()
            labels[0, :len(prompt)] = -100
            out = model(input_ids=ids, labels=labels)
            n = len(answer)
            total += float(out.loss) * n
            count += n
            if done:
                done(row)
    return total, count


def text_perplexity(model, tokenizer, text: str) -> float:
    """Perplexity of a plain text, in windows of WINDOW tokens."""
    import torch

    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids), WINDOW):
            window = ids[start:start + WINDOW]
            if len(window) < 2:
                continue
            t = torch.tensor([window], device=device)
            total += float(model(input_ids=t, labels=t).loss) * (len(window) - 1)
            count += len(window) - 1
    return perplexity(total / max(count, 1))


def word_diff(reference: str, output: str) -> list[tuple[str, str]]:
    """(op, words) pieces turning the reference into the output: op is 'same', 'added' or 'removed'."""
    ref, out = reference.split(), output.split()
    pieces: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=ref, b=out, autojunk=False).get_opcodes():
        if tag == "equal":
            pieces.append(("same", " ".join(ref[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(("removed", " ".join(ref[i1:i2])))
        if j2 > j1:
            pieces.append(("added", " ".join(out[j1:j2])))
    return pieces


def example_scores(output: str, reference: str, metrics: tuple[str, ...]) -> dict[str, float]:
    """One example's scores: ROUGE-L, sentence BLEU and exact match as asked (`metrics` groups), exact match
    always (it decides what counts as a miss)."""
    from studio.metrics import bleu, exact_match, rouge

    scores = {}
    if "rouge" in metrics:
        scores["rougeL"] = rouge([output], [reference])["rougeL"]
    if "bleu" in metrics:
        scores["bleu"] = bleu([output], [reference])
    scores["exact_match"] = exact_match([output], [reference])
    return scores


def _score_target(model, tokenizer, prompts: list[list[dict]], references: list[str], metrics: tuple[str, ...],
                  max_new_tokens: int, done: Callable[[int], None] | None = None
                  ) -> tuple[dict, list[str], list[dict[str, float]]]:
    """(the target's row of metrics, its outputs, each example's scores); `done(rows)` as rows are answered (and
    again as they are scored for perplexity)."""
    from studio.stages.generation_eval import generate

    ids = [_prompt_ids(tokenizer, p) for p in prompts]
    row: dict[str, float] = {}
    outputs: list[str] = []
    per_example: list[dict[str, float]] = []
    if set(metrics) - {"ppl"}:
        outputs = generate(model, tokenizer, ids, max_new_tokens, False, next(model.parameters()).device, done=done)
        scores = text_metrics(outputs, references)
        row.update({k: v for group in metrics if group != "ppl" for k, v in scores.items()
                    if k in METRIC_GROUPS[group]})
        per_example = [example_scores(o, r, metrics) for o, r in zip(outputs, references)]
    if "ppl" in metrics:
        nll, count = answer_nll(model, tokenizer, ids, references, done=done)
        row["perplexity"] = perplexity(nll / max(count, 1))
    return row, outputs, per_example


def evaluate(ws, targets: list[str], dataset: str, split: str = "test", metrics: str | list[str] | None = None,
             limit: int | None = None, shots: list[int] | None = None, forgetting: bool = False,
             max_new_tokens: int = 256, emit: Callable[[str], None] | None = None,
             rows_done: Callable[[str, int, int], None] | None = None) -> dict:
    """Score each target (and the in-context baseline) on the split (every row unless `limit`; a data file that is
    no studio dataset: all of it); save and return the results. `rows_done(target, done, total)` as rows are
    answered."""
    from studio.generation import ModelPool

    say = emit or (lambda message: None)
    if not targets:
        raise StudioError("Pick at least one model or run to evaluate.", field="targets", key="eval.no_target")
    if split not in ("train", "validation", "test"):
        raise StudioError(f"Split '{split}' does not exist; choose train, validation or test.", field="split",
                          key="eval.bad_split", split=split)
    groups = parse_metrics(metrics)
    resolved = [resolve_target(ws, t) for t in targets]
    classifiers = [t for t in resolved if t.stage == "classify"]
    if classifiers:
        return _evaluate_classifiers(ws, resolved, classifiers, dataset, split, limit, say)
    items, train_items, available = load_items(ws, dataset, split, limit)
    if whole_file(ws, dataset):
        split = "file"
    references = [i.reference for i in items]
    general = GENERAL_TEXT.read_text(encoding="utf-8") if forgetting else None
    pool = ModelPool(ws, capacity=1)
    rows, outputs, per_example, forgetting_ppl = [], {}, {}, {}  # forgetting_ppl: label or base spec -> ppl
    base = resolved[0].model
    already = any(t.run_id is None and t.model == base for t in resolved)  # zero-shot base is then a target
    plan = [(t, 0) for t in resolved] + [(Target(f"{base} · {k}-shot", base), k) for k in sorted(set(shots or []))
                                        if k or not already]
    began = time.perf_counter()
    for target, k in plan:
        say(Phase(f"Evaluating {target.label} on {len(items)} examples", "evaluating_target", target=target.label,
                  n=len(items)))
        loaded = pool.get(target.model, target.run_id)
        example_shots = train_items[:k]
        prompts = [with_shots(i.prompt, example_shots) if k else i.prompt for i in items]
        with loaded.lock:
            row, outs, scores = _score_target(
                loaded.model, loaded.tokenizer, prompts, references, groups, max_new_tokens,
                done=(lambda n, label=target.label: rows_done(label, n, len(items))) if rows_done else None)
            if general is not None and k == 0:
                forgetting_ppl[target.label] = text_perplexity(loaded.model, loaded.tokenizer, general)
        kind = "run" if target.run_id else ("in-context" if k or target not in resolved else "model")
        rows.append({"target": target.label, "kind": kind, "shots": k, **row})
        if outs:
            outputs[target.label], per_example[target.label] = outs, scores
    forgetting_rows = []
    if general is not None:
        for target in resolved:  # each run beside its base: before and after fine-tuning
            base = target.model
            if target.run_id and base not in forgetting_ppl:
                loaded = pool.get(base, None)
                with loaded.lock:
                    forgetting_ppl[base] = text_perplexity(loaded.model, loaded.tokenizer, general)
            after = forgetting_ppl[target.label]
            before = forgetting_ppl[base] if target.run_id else None
            forgetting_rows.append({"target": target.label, "perplexity": after, "base": base if target.run_id else None,
                                    "base_perplexity": before,
                                    "change": (after / before - 1) if before else None})
    examples = []
    for index, item in enumerate(items):
        answers = {label: outs[index] for label, outs in outputs.items()}
        scores = {label: s[index] for label, s in per_example.items()}
        rouge_l = {label: s.get("rougeL", s["exact_match"]) for label, s in scores.items()}
        examples.append({"index": index, "prompt": item.prompt[-1]["content"] if item.prompt else "",
                         "reference": item.reference, "outputs": answers, "rougeL": rouge_l, "scores": scores,
                         "missed": [label for label, s in scores.items() if not s["exact_match"]],
                         "spread": (max(rouge_l.values()) - min(rouge_l.values())) if len(rouge_l) > 1 else 0.0})
    result = {"dataset": dataset, "split": split, "n": len(items), "available": available, "limit": limit,
              "metrics": list(groups), "example_score": "rougeL" if "rouge" in groups else "exact_match",
              "columns": [m for g in groups for m in METRIC_GROUPS[g]], "rows": rows, "examples": examples,
              "forgetting": forgetting_rows, "seconds": round(time.perf_counter() - began, 2),
              "created_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    result["saved"] = _save(ws, result, [t for t in resolved if t.run_id])
    return result


def evaluate_recorded(ws, targets: list[str], dataset: str, owner: str | None = None, **options: Any) -> dict:
    """`evaluate`, recorded as a job row (kind 'evaluate') with each target's phase: `studio jobs` lists it, and
    `studio jobs cancel` stops it when the next target starts (KeyboardInterrupt here, as Ctrl-C would)."""
    from studio.jobs.records import foreground

    emit = options.pop("emit", None) or (lambda message: None)
    rows_done = options.pop("rows_done", None)
    params = {"targets": list(targets), "dataset": dataset, **options}
    with foreground(ws, "evaluate", f"{', '.join(targets)} on {dataset}"[:200], params, owner=owner) as job:
        def say(message: str) -> None:
            emit(message)
            job.progress(None, message)

        def rows(target: str, done: int, total: int) -> None:
            if rows_done:
                rows_done(target, done, total)
            job.progress(done / total if total else None,
                         Phase(f"{target}: {done} of {total} rows", "eval_rows", target=target, done=done, total=total))

        result = evaluate(ws, targets, dataset, emit=say, rows_done=rows, **options)
        job.result = {"saved": str(result["saved"]), "n": result["n"], "rows": result["rows"]}
    return result


def _evaluate_classifiers(ws, resolved: list[Target], classifiers: list[Target], dataset: str, split: str,
                          limit: int, say) -> dict:
    """Classification runs only: accuracy, macro-F1 and confusion matrices (`studio.evaluation_classify`)."""
    from studio.evaluation_classify import evaluate_classifiers

    if len(classifiers) != len(resolved):
        raise StudioError("Classification runs are scored by accuracy and F1, answer-writing models by ROUGE and "
                          "BLEU; evaluate them separately.", field="targets", key="eval.mixed")
    began = time.perf_counter()
    result = evaluate_classifiers(ws, [(t.label, ws.get_run(t.run_id)) for t in classifiers], dataset, split, limit,
                                  say)
    result.update({"dataset": dataset, "split": split, "metrics": ["accuracy", "f1"], "forgetting": [],
                   "example_score": "correct", "seconds": round(time.perf_counter() - began, 2),
                   "created_at": time.strftime("%Y-%m-%d %H:%M:%S")})
    result["saved"] = _save(ws, result, classifiers)
    return result


def _save(ws, result: dict, runs: list[Target]) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = Path(ws.home) / "evaluations"
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, ensure_ascii=False, indent=1)
    for n in itertools.count(1):  # two evaluations finishing in the same second each keep their own file
        path = folder / (f"eval-{stamp}.json" if n == 1 else f"eval-{stamp}-{n}.json")
        try:
            with open(path, "x", encoding="utf-8") as out:
                out.write(text)
            break
        except FileExistsError:
            continue
    for target in runs:
        folder = Path(ws.get_run(target.run_id)["run_dir"]) / "evaluations"
        folder.mkdir(exist_ok=True)
        (folder / path.name).write_text(text, encoding="utf-8")
    return str(path)


__all__ = ["evaluate", "parse_metrics", "resolve_target", "word_diff", "TEXT_METRICS"]
