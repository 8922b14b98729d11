"""Calibrate "the documents do not contain it": which simple rule best tells answerable questions from the rest.

Ingests the sample documents (assets/rag) into a fresh collection with the real all-MiniLM-L6-v2 and the
default chunking, asks every sample question (40 answerable, 20 unanswerable) through `RagStore.search`
(hybrid, `--k` 4), and computes per question the signals a refusal could rest on:
- `sim`: the best dense cosine similarity of the retrieved hits (the current rule: refuse under 0.3);
- coverage: the share of the question's content words (lower-cased \\w+ words of 3+ characters, minus an
  English + Spanish stopword list that also drops words saying what kind of answer is wanted: mean, happen,
  need...) that occur in the top-k hits' text (`cov`), in the collection's vocabulary (`cov_voc`), and both
  again weighted by the collection's BM25 idf (`icov`, `icov_voc`; a word the collection never uses gets the
  idf of a word in no chunk, the highest there is); `cov4`, `icov4`, `icov4_voc` likewise, with words of 4+
  letters matching any word that shares its first 4 letters (a crude stemmer: sick, sickness; pierdo, pierdes);
- `gap`: the best similarity minus the mean of the other hits';
- `bm25`: the best BM25 score of the hits, and `agree`: the most similar hit is also the best BM25 hit.
Then it searches, per family of rules, the thresholds that maximise balanced accuracy (the mean of the share
of answerable questions answered and the share of unanswerable ones refused) among the rules that answer at
least `--floor` of the answerable ones (a false refusal costs more than a rare hedged answer); ties go to the
middle of the plateau (balanced accuracy averaged over neighbouring thresholds, then the centre of the tied
points). 60 questions is few, so each family is also scored held out: leave-one-out and `--splits` random
stratified 2-fold splits (fit on one half, score the other). `--extra FILE` (JSONL: question, answerable,
optionally file and page) scores the rules fitted on all 60 on questions that took no part in fitting.

Prints the per-question table, each family's fitted thresholds and accuracies, the trade-off between the
floor and the refusals for the plain-similarity baseline and the chosen family, and the chosen rule
(`answerable` below, the function for studio/rag/answer.py) against today's "refuse under 0.3". Nothing is
asserted. It takes about a minute on two cores.

    .venv/bin/python bench/rag_calibrate.py [--extra questions.jsonl] [--k 4] [--floor 0.975] [--splits 100]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# --- the rule: studio.rag.answerable, which this script calibrated --------------------------------------
from studio.rag.answerable import (MIN_COVERAGE, MIN_SIMILARITY, PREFIX,  # noqa: E402
                                   SURE_SIMILARITY, answerable, content_words)

MIN_WORD = 3
_WORD = re.compile(r"\w+", re.UNICODE)


# --- measuring ---------------------------------------------------------------------------------------
def coverage(terms: list[str], vocabulary: set[str], idf: dict | None, unseen: float, prefix: int | None) -> float:
    """The share of `terms` found in `vocabulary` (idf-weighted when `idf` is given); with `prefix`, a word of
    that many letters or more matches any word sharing its first `prefix` letters (sick: sickness)."""
    if not terms:
        return 1.0
    if prefix:
        stems = {w[:prefix] for w in vocabulary}
        found = [w in vocabulary or (len(w) >= prefix and w[:prefix] in stems) for w in terms]
    else:
        found = [w in vocabulary for w in terms]
    weights = [idf.get(w, unseen) if idf is not None else 1.0 for w in terms]
    return sum(wt for wt, ok in zip(weights, found) if ok) / sum(weights)


def signals(question: str, hits, bm25) -> dict:
    terms = content_words(question)
    present = {w for h in hits for w in _WORD.findall(h.text.lower())}
    unseen = math.log(1 + (bm25.size + 0.5) / 0.5)
    idf = {w: bm25.idf(w) for w in terms}
    vocabulary = {w for w in terms if idf[w] < unseen}  # the question's words some chunk holds (as stems)
    sims = sorted((h.similarity for h in hits if h.similarity is not None), reverse=True) or [0.0]
    by_sim = max(hits, key=lambda h: h.similarity if h.similarity is not None else -1.0)
    by_bm25 = max(hits, key=lambda h: h.bm25 or 0.0)
    out = {"sim": sims[0], "gap": sims[0] - (sum(sims[1:]) / (len(sims) - 1) if len(sims) > 1 else 0.0),
           "bm25": max((h.bm25 or 0.0 for h in hits), default=0.0),
           "agree": float(by_sim.id == by_bm25.id and (by_bm25.bm25 or 0.0) > 0)}
    for prefix, tag in ((None, ""), (PREFIX, str(PREFIX))):
        out[f"cov{tag}"] = coverage(terms, present, None, unseen, prefix)
        out[f"icov{tag}"] = coverage(terms, present, idf, unseen, prefix)
        out[f"cov{tag}_voc"] = coverage(terms, vocabulary, None, unseen, prefix)
        out[f"icov{tag}_voc"] = coverage(terms, vocabulary, idf, unseen, prefix)
    out["missing"] = [w for w in terms if w not in present and not (len(w) >= PREFIX and any(
        x.startswith(w[:PREFIX]) for x in present))]
    out["verdict"] = answerable(question, hits, bm25)
    return out


def measure(store, embedder, questions: list[dict], k: int) -> list[dict]:
    """One row per question: its label, whether its expected page was retrieved, and its signals."""
    bm25 = store.word_index("samples", store.collection("samples", embedder))
    rows = []
    for q in questions:
        hits = store.search("samples", q["question"], embedder, k=k, mode="hybrid")
        found = any(h.file == q.get("file") and q.get("page") in h.pages for h in hits) if q.get("file") else None
        rows.append({**q, "found": found, **signals(q["question"], hits, bm25)})
    return rows


COLUMNS = ("sim", "gap", "cov", "icov", "icov_voc", "cov4", "icov4", "icov4_voc", "bm25", "agree")


def print_table(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    print("   " + " ".join(f"{c[:8]:>8}" for c in COLUMNS)
          + "  pg rule  question  [its words not in the hits, matching on 4-letter prefixes]")
    for r in sorted(rows, key=lambda r: (-r["answerable"], r["sim"])):
        page = "" if r["found"] is None else ("ok" if r["found"] else "--")
        wrong = "!" if r["verdict"] != r["answerable"] else " "
        print(f"{'A' if r['answerable'] else 'U'}{wrong} " + " ".join(f"{float(r[c]):8.2f}" for c in COLUMNS)
              + f"  {page:>2} {'ans' if r['verdict'] else 'ref':>4}  {r['question'][:64]}  {r['missing']}")


# --- fitting -----------------------------------------------------------------------------------------
SIM = np.round(np.arange(0.10, 0.901, 0.01), 2)
COV = np.round(np.arange(0.0, 1.001, 0.05), 2)
GAP = np.round(np.arange(0.0, 0.401, 0.01), 2)
BM25_GRID = np.arange(0.0, 30.01, 0.5)
WEIGHT = np.round(np.arange(0.0, 1.001, 0.05), 2)
SCORE = np.round(np.arange(0.2, 1.801, 0.01), 2)
COVERAGES = ("cov", "icov", "cov_voc", "icov_voc", "cov4", "icov4", "icov4_voc")
SIGNALS = ("sim", "gap", "bm25", "agree", *COVERAGES)


BASELINE = "sim >= a"
CHOSEN = "sim >= a or (sim >= b and icov4 >= c)"  # its thresholds at the default floor are the constants above


def families() -> dict[str, tuple[list[tuple[str, str, np.ndarray]], object]]:
    """name -> (axes [(parameter, signal it thresholds, values)], rule(signals, *grid) -> answer?)."""
    out = {"sim >= a": ([("a", "sim", SIM)], lambda s, a: s["sim"] >= a),
           "bm25 >= t": ([("t", "bm25", BM25_GRID)], lambda s, t: s["bm25"] >= t),
           "sim >= a or (sim >= b and agree)": ([("a", "sim", SIM), ("b", "sim", SIM)],
                                                lambda s, a, b: (s["sim"] >= a) | ((s["sim"] >= b) & (s["agree"] > 0))),
           "sim >= a or (sim >= b and bm25 >= t)": (
               [("a", "sim", SIM), ("b", "sim", SIM), ("t", "bm25", BM25_GRID)],
               lambda s, a, b, t: (s["sim"] >= a) | ((s["sim"] >= b) & (s["bm25"] >= t))),
           "sim >= a or (sim >= b and gap >= g)": (
               [("a", "sim", SIM), ("b", "sim", SIM), ("g", "gap", GAP)],
               lambda s, a, b, g: (s["sim"] >= a) | ((s["sim"] >= b) & (s["gap"] >= g)))}
    for cov in COVERAGES:
        out[f"{cov} >= c"] = ([("c", cov, COV)], lambda s, c, cov=cov: s[cov] >= c)
        out[f"sim >= b and {cov} >= c"] = ([("b", "sim", SIM), ("c", cov, COV)],
                                           lambda s, b, c, cov=cov: (s["sim"] >= b) & (s[cov] >= c))
        out[f"sim >= a or (sim >= b and {cov} >= c)"] = (
            [("a", "sim", SIM), ("b", "sim", SIM), ("c", cov, COV)],
            lambda s, a, b, c, cov=cov: (s["sim"] >= a) | ((s["sim"] >= b) & (s[cov] >= c)))
    for cov in ("icov", "icov4"):
        out[f"sim + w * {cov} >= t"] = ([("w", cov, WEIGHT), ("t", "sim", SCORE)],
                                        lambda s, w, t, cov=cov: s["sim"] + w * s[cov] >= t)
    return out


def predictions(axes, rule, rows: list[dict]) -> np.ndarray:
    """Boolean array (*grid, questions): whether each rule of the grid answers each question."""
    n = len(axes)
    grids = [values.reshape([-1 if i == j else 1 for j in range(n)] + [1]) for i, (_, _, values) in enumerate(axes)]
    data = {key: np.array([float(r[key]) for r in rows]).reshape([1] * n + [-1]) for key in SIGNALS}
    return np.asarray(rule(data, *grids))


def pick(pred: np.ndarray, labels: np.ndarray, mask: np.ndarray, floor: float, axes) -> tuple:
    """The grid index of the best rule on the questions in `mask` (see the module docstring for 'best')."""
    pos, neg = labels & mask, ~labels & mask
    recall = (pred & pos).sum(-1) / max(pos.sum(), 1)
    refusal = (~pred & neg).sum(-1) / max(neg.sum(), 1)
    balanced = (recall + refusal) / 2
    sizes = [5 if signal == "sim" else 3 for _, signal, _ in axes]  # neighbours: +-0.02 similarity, +-1 step otherwise
    smooth = uniform_filter(balanced, size=sizes, mode="nearest")
    allowed = recall >= floor - 1e-9
    if not allowed.any():
        allowed = recall >= recall.max() - 1e-9
    score = np.where(allowed, balanced + 1e-3 * recall + 1e-6 * smooth, -1.0)
    tied = np.argwhere(score >= score.max() - 1e-12)
    centre = tied.mean(0)
    best = tied[np.argmin(((tied - centre) ** 2).sum(1))]
    return tuple(int(i) for i in best)


def rates(answered: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    recall = answered[labels].mean() if labels.any() else float("nan")
    refusal = (~answered[~labels]).mean() if (~labels).any() else float("nan")
    return recall, refusal, (recall + refusal) / 2


def held_out(pred, labels, floor, axes, splits: int, seed: int = 0) -> tuple[tuple, float]:
    """(leave-one-out (recall, refusal, balanced), mean balanced accuracy over stratified 2-fold splits)."""
    n = len(labels)
    loo = np.zeros(n, dtype=bool)
    for i in range(n):
        mask = np.ones(n, dtype=bool)
        mask[i] = False
        loo[i] = pred[pick(pred, labels, mask, floor, axes)][i]
    rng = np.random.default_rng(seed)
    folds = [float("nan")]
    for _ in range(splits):
        half = np.zeros(n, dtype=bool)
        for cls in (True, False):
            idx = np.flatnonzero(labels == cls)
            half[rng.permutation(idx)[: len(idx) // 2]] = True
        for train in (half, ~half):
            answered = pred[pick(pred, labels, train, floor, axes)]
            folds.append(rates(answered[~train], labels[~train])[2])
    return rates(loo, labels), float(np.nanmean(folds)) if splits else float("nan")


def describe(axes, index) -> str:
    return ", ".join(f"{name}={values[j]:g}" for (name, _, values), j in zip(axes, index))


# --- main --------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extra", type=Path, help="JSONL of further questions (question, answerable, file, page)")
    parser.add_argument("--k", type=int, default=4, help="hits retrieved per question (the chat's default is 4)")
    parser.add_argument("--floor", type=float, default=0.975, help="least share of answerable questions answered")
    parser.add_argument("--splits", type=int, default=100, help="random 2-fold splits for the held-out figure")
    args = parser.parse_args()

    from studio.rag.embedder import load_embedder
    from studio.rag.samples import sample_questions, unanswerable_questions, write_sample_pdfs
    from studio.rag.store import RagStore
    from studio.workspace import Workspace

    questions = [{"question": q["question"], "file": q["file"], "page": q["page"], "answerable": True}
                 for q in sample_questions()] + [{"question": q, "answerable": False} for q in unanswerable_questions()]
    extra = []
    if args.extra:
        extra = [json.loads(line) for line in args.extra.read_text("utf-8").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as home:
        ws = Workspace.open(Path(home) / "ws")
        embedder = load_embedder("all-minilm-l6-v2", ws)
        store = RagStore(ws)
        report = store.ingest("samples", write_sample_pdfs(Path(home) / "pdfs"), embedder)
        print(f"{len(report.added)} files, {report.chunks} chunks, k={args.k}, hybrid search, all-MiniLM-L6-v2")
        rows = measure(store, embedder, questions, args.k)
        extra_rows = measure(store, embedder, extra, args.k) if extra else []
    print_table(rows, "Sample questions (A answerable, U unanswerable; ! = the chosen rule gets it wrong; "
                      "pg: expected page retrieved)")
    if extra_rows:
        print_table(extra_rows, f"Extra questions from {args.extra} (not used for fitting)")

    labels = np.array([r["answerable"] for r in rows])
    extra_labels = np.array([bool(r["answerable"]) for r in extra_rows])
    print(f"\nRules fitted on the {len(rows)} sample questions (floor: answer >= {args.floor:.1%} of answerable); "
          f"held out: leave-one-out, and the mean of {args.splits} stratified 2-fold splits")
    print(f"{'family':<44} {'thresholds':<22} {'answered':>8} {'refused':>7} {'balanced':>8} "
          f"{'LOO bal':>7} {'2fold':>6} {'extra ans':>9} {'extra ref':>9}")
    everything = np.ones(len(rows), dtype=bool)
    for name, (axes, rule) in families().items():
        pred = predictions(axes, rule, rows)
        best = pick(pred, labels, everything, args.floor, axes)
        recall, refusal, balanced = rates(pred[best], labels)
        (_, _, loo), twofold = held_out(pred, labels, args.floor, axes, args.splits)
        extra_text = ""
        if extra_rows:
            e_recall, e_refusal, _ = rates(predictions(axes, rule, extra_rows)[best], extra_labels)
            extra_text = f"{e_recall:9.1%} {e_refusal:9.1%}"
        twofold_text = "-" if math.isnan(twofold) else f"{twofold:.1%}"
        print(f"{name:<44} {describe(axes, best):<22} {recall:8.1%} {refusal:7.1%} {balanced:8.1%} "
              f"{loo:7.1%} {twofold_text:>6} {extra_text}")

    print("\nTrade-off: the least share of answerable questions answered (the floor) against what each rule then "
          "refuses, fitted on the sample; LOO = leave-one-out balanced accuracy")
    print(f"{'floor':>6}  {'family':<44} {'thresholds':<22} {'answered':>8} {'refused':>7} {'balanced':>8} "
          f"{'LOO bal':>7} {'extra ans':>9} {'extra ref':>9}")
    for floor in (1.0, 0.975, 0.95, 0.9, 0.0):
        for name in (BASELINE, CHOSEN):
            axes, rule = families()[name]
            pred = predictions(axes, rule, rows)
            best = pick(pred, labels, everything, floor, axes)
            recall, refusal, balanced = rates(pred[best], labels)
            (_, _, loo), _ = held_out(pred, labels, floor, axes, 0)
            extra_text = ""
            if extra_rows:
                e_recall, e_refusal, _ = rates(predictions(axes, rule, extra_rows)[best], extra_labels)
                extra_text = f"{e_recall:9.1%} {e_refusal:9.1%}"
            print(f"{floor:6.1%}  {name:<44} {describe(axes, best):<22} {recall:8.1%} {refusal:7.1%} {balanced:8.1%} "
                  f"{loo:7.1%} {extra_text}")

    print(f"\nChosen rule, answerable(): answer when sim >= {SURE_SIMILARITY}, or when sim >= {MIN_SIMILARITY} and "
          f"icov4 (word_coverage of the top-{args.k} hits) >= {MIN_COVERAGE}")
    axes, rule = families()[CHOSEN]
    (recall, refusal, balanced), _ = held_out(predictions(axes, rule, rows), labels, args.floor, axes, 0)
    print(f"  sample  leave-one-out       answered {recall:6.1%} of answerable, refused {refusal:6.1%} of "
          f"unanswerable, balanced {balanced:6.1%} (each question decided by the rule fitted on the other 59)")
    sims = np.array([r["sim"] for r in rows])
    extra_sims = np.array([r["sim"] for r in extra_rows])
    for title, group, group_labels, baseline in (("sample", rows, labels, sims >= 0.3),
                                                 ("extra", extra_rows, extra_labels, extra_sims >= 0.3)):
        if group:
            for rule_name, answered in (("chosen", np.array([r["verdict"] for r in group])),
                                        ("sim >= 0.3 (today)", baseline)):
                recall, refusal, balanced = rates(answered, group_labels)
                print(f"  {title:<7} {rule_name:<19} answered {recall:6.1%} of answerable, refused {refusal:6.1%} of "
                      f"unanswerable, balanced {balanced:6.1%}")

if __name__ == "__main__":
    main()
