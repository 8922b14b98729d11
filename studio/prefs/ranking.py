"""Rankings of candidate answers, and the preference data they become.

A ranking is a list of tie groups, best first, of candidate indices: `[[1], [0, 2]]` says answer 1
is best and answers 0 and 2 tie below it. `to_pairs` turns it into (chosen, rejected) index pairs
by one of three strategies, `to_kto` into (index, desirable) labels, and `pairs_rows` / `kto_rows`
into rows in TRL's formats (standard: plain strings; conversational: lists of chat messages).
Ties never make a pair, so an item whose candidates all tie gives nothing. `read_rankings_jsonl`
reads rankings collected elsewhere, one item per line, tie groups by candidate text.

Messages number candidates from 1 as a person sees them; the API indexes them from 0. Storing
rankings and collecting them from annotators is left to others.
"""
from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from studio.errors import StudioError

STRATEGIES = ("all_pairs", "best_vs_rest", "adjacent")
FIELD = "prefs.ranking"
FILE_FIELD = "prefs.rankings_file"

Ranking = list[list[int]]


def validate_ranking(ranking: Any, k: int) -> Ranking:
    """`ranking` as clean tie groups of ints, after checking that it ranks each of the `k` candidates exactly once
    and has no empty group. Raises a keyed StudioError naming what is missing, duplicated or unknown."""
    if k < 2:
        raise StudioError(f"An item needs at least 2 candidate answers to rank; it has {k}. Generate or add more "
                          "candidates.", field=FIELD, key="prefs.ranking.too_few_candidates", k=k)
    if not isinstance(ranking, (list, tuple)) or not all(isinstance(g, (list, tuple)) for g in ranking):
        raise StudioError("A ranking must be a list of groups, best first, such as [[2], [1, 3]]; put tied answers "
                          "in the same group.", field=FIELD, key="prefs.ranking.not_groups")
    seen: set[int] = set()
    groups: Ranking = []
    for place, group in enumerate(ranking, start=1):
        if not group:
            raise StudioError(f"Group {place} of the ranking is empty; remove it or put an answer in it.",
                              field=FIELD, key="prefs.ranking.empty_group", place=place)
        clean = []
        for value in group:
            try:
                index = operator.index(value)
            except TypeError:
                index = -1
            if isinstance(value, bool) or not 0 <= index < k:
                raise StudioError(f"The ranking names candidate index {value!r}, but the item has {k} answers "
                                  f"(indices 0 to {k - 1}); rank only those.", field=FIELD,
                                  key="prefs.ranking.unknown_candidate", candidate=repr(value), k=k, last=k - 1)
            if index in seen:
                raise StudioError(f"The ranking places candidate {index + 1} twice; put each answer in one group "
                                  "only.", field=FIELD, key="prefs.ranking.duplicate", candidate=index + 1)
            seen.add(index)
            clean.append(index)
        groups.append(sorted(clean))
    missing = [i + 1 for i in range(k) if i not in seen]
    if missing:
        names = ", ".join(map(str, missing))
        raise StudioError(f"The ranking leaves out candidate{'s' if len(missing) > 1 else ''} {names}; rank every "
                          "answer (ties allowed).",
                          field=FIELD, key="prefs.ranking.missing", candidates=names)
    return groups


def parse_ranking_text(text: str, k: int) -> Ranking:
    """What an annotator typed or keyed, '2 > 1 = 3' (answers numbered from 1 as shown; '>' better than, '='
    tied with), as display-slot tie groups [[1], [0, 2]], checked to rank all `k` answers."""
    text = (text or "").strip()
    if not text:
        raise StudioError(f"The ranking is empty; rank the {k} answers best first, e.g. '2 > 1 = 3' (keys: the "
                          "answer numbers, '=' for a tie).", field=FIELD, key="prefs.ranking.empty_text", k=k)
    groups = []
    for part in text.split(">"):
        group = []
        for token in part.split("="):
            token = token.strip()
            if not token.isdigit():
                raise StudioError(f"'{token or text}' in the ranking '{text}' is not an answer number; write the "
                                  "numbers best first, separated by '>' (better) or '=' (tied).", field=FIELD,
                                  key="prefs.ranking.bad_text", token=token or text, text=text)
            group.append(int(token) - 1)
        groups.append(group)
    try:
        return validate_ranking(groups, k)
    except StudioError as error:
        if error.key != "prefs.ranking.unknown_candidate":
            raise
        raise StudioError(f"The ranking '{text}' names an answer that is not shown; use the numbers 1 to {k}.",
                          field=FIELD, key="prefs.ranking.not_shown", text=text, k=k) from None


def format_ranking_text(ranking: Sequence[Sequence[int]]) -> str:
    """Display-slot tie groups as the annotator reads them: [[1], [0, 2]] -> '2 > 1 = 3'."""
    return " > ".join(" = ".join(str(i + 1) for i in group) for group in ranking)


def ranks(ranking: Sequence[Sequence[int]]) -> list[float]:
    """Each candidate's rank, 1 = best; tied candidates share the average of the places they span
    (`[[1], [0, 2]]` -> [2.5, 1.0, 2.5])."""
    out = [0.0] * sum(len(g) for g in ranking)
    place = 0
    for group in ranking:
        for index in group:
            out[index] = place + (len(group) + 1) / 2
        place += len(group)
    return out


def to_pairs(ranking: Sequence[Sequence[int]], strategy: str = "all_pairs") -> list[tuple[int, int]]:
    """(chosen, rejected) pairs, best pairs first. `all_pairs`: every two candidates in different groups;
    `best_vs_rest`: the best group against every lower one; `adjacent`: each group against the next one.
    Candidates in the same group never make a pair, so an all-tied ranking gives []."""
    if strategy not in STRATEGIES:
        raise StudioError(f"Unknown pairing strategy '{strategy}'; use one of {', '.join(STRATEGIES)}.",
                          field="prefs.strategy", key="prefs.pairs.unknown_strategy", strategy=str(strategy),
                          choices=", ".join(STRATEGIES))
    if strategy == "all_pairs":
        matches = [(i, j) for i in range(len(ranking)) for j in range(i + 1, len(ranking))]
    elif strategy == "best_vs_rest":
        matches = [(0, j) for j in range(1, len(ranking))]
    else:
        matches = [(i, i + 1) for i in range(len(ranking) - 1)]
    return [(a, b) for i, j in matches for a in ranking[i] for b in ranking[j]]


def to_kto(ranking: Sequence[Sequence[int]]) -> list[tuple[int, bool]]:
    """(candidate, desirable) labels for KTO: the top group is desirable, the bottom group undesirable. Middle
    groups are skipped: "better than some, worse than others" is neither a thumbs up nor down, and labelling it
    either way would teach the model a verdict nobody gave. An all-tied ranking gives []."""
    if len(ranking) < 2:
        return []
    return [(i, True) for i in ranking[0]] + [(i, False) for i in ranking[-1]]


@dataclass
class PreferenceRows:
    """Rows ready to save as a dataset, and what was left out on the way."""

    rows: list[dict]
    items: int                # items read
    dropped: int = 0          # pairs whose chosen and rejected texts are equal (KTO: texts labelled both ways)
    duplicates: int = 0       # the same row again within one item (identical candidate texts), kept once
    empty_items: int = 0      # items that gave no row at all (all candidates tied, or only equal texts)


def _prompt(item: dict, conversational: bool) -> Any:
    if not conversational:
        return item["prompt"]
    system = [{"role": "system", "content": item["system"]}] if item.get("system") else []
    return system + [{"role": "user", "content": item["prompt"]}]


def _answer(text: str, conversational: bool) -> Any:
    return [{"role": "assistant", "content": text}] if conversational else text


def _shape(item: dict, row: dict, conversational: bool, with_system: bool) -> dict:
    """`row` with the prompt in front and, in the standard form, the system prompt as its own column."""
    head: dict = {"system": item.get("system") or ""} if with_system and not conversational else {}
    return {**head, "prompt": _prompt(item, conversational), **row}


def pairs_rows(items: Iterable[dict], strategy: str = "all_pairs", conversational: bool = False) -> PreferenceRows:
    """{prompt, chosen, rejected} rows in TRL's preference format from items {prompt, candidates, ranking,
    system?}. Standard rows hold strings (plus a `system` column when any item has one); conversational rows hold
    message lists, the system prompt folded into the prompt's messages. A pair whose two texts are equal (after
    trimming spaces) teaches nothing and is dropped and counted."""
    items = list(items)
    with_system = any(item.get("system") for item in items)
    out = PreferenceRows(rows=[], items=len(items))
    for item in items:
        texts = item["candidates"]
        seen: set[tuple[str, str]] = set()
        for chosen, rejected in to_pairs(validate_ranking(item["ranking"], len(texts)), strategy):
            a, b = texts[chosen], texts[rejected]
            if a.strip() == b.strip():
                out.dropped += 1
            elif (a.strip(), b.strip()) in seen:
                out.duplicates += 1
            else:
                seen.add((a.strip(), b.strip()))
                out.rows.append(_shape(item, {"chosen": _answer(a, conversational),
                                              "rejected": _answer(b, conversational)}, conversational, with_system))
        out.empty_items += not seen
    return out


def kto_rows(items: Iterable[dict], conversational: bool = False) -> PreferenceRows:
    """{prompt, completion, label} rows for KTO: the top group of each ranking labelled true, the bottom group
    false (`to_kto`). A text that lands in both (identical candidates ranked apart) is dropped and counted."""
    items = list(items)
    with_system = any(item.get("system") for item in items)
    out = PreferenceRows(rows=[], items=len(items))
    for item in items:
        texts = item["candidates"]
        labels = to_kto(validate_ranking(item["ranking"], len(texts)))
        both = {texts[i].strip() for i, good in labels if good} & {texts[i].strip() for i, good in labels if not good}
        seen: set[tuple[str, bool]] = set()
        for index, good in labels:
            text = texts[index]
            if text.strip() in both:
                out.dropped += 1
            elif (text.strip(), good) in seen:
                out.duplicates += 1
            else:
                seen.add((text.strip(), good))
                out.rows.append(_shape(item, {"completion": _answer(text, conversational), "label": good},
                                       conversational, with_system))
        out.empty_items += not seen
    return out


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _item_from_line(record: Any, line: int, file: str) -> dict:
    """One import line -> {prompt, candidates, ranking (indices), system?, id?}, or a keyed error saying how to fix
    it. Candidate texts match after trimming spaces; identical candidates are one answer and always tie."""
    at = f"Line {line} of '{file}'"
    if not isinstance(record, dict):
        raise StudioError(f'{at} is not an object; write it as {{"prompt": "...", "candidates": [...], "ranking": '
                          '[[...]]}.', field=FILE_FIELD, key="prefs.import.not_object", line=line, file=file)
    for name in ("prompt", "candidates", "ranking"):
        if name not in record:
            raise StudioError(f"{at} has no '{name}'; each line needs \"prompt\", \"candidates\" and \"ranking\".",
                              field=FILE_FIELD, key="prefs.import.missing_field", line=line, file=file, name=name)
    if not isinstance(record["prompt"], str) or not record["prompt"].strip():
        raise StudioError(f"{at}: 'prompt' must be non-empty text.", field=FILE_FIELD, key="prefs.import.bad_prompt",
                          line=line, file=file)
    if record.get("system") is not None and not isinstance(record["system"], str):
        raise StudioError(f"{at}: 'system' must be text.", field=FILE_FIELD, key="prefs.import.bad_system",
                          line=line, file=file)
    candidates = record["candidates"]
    if not isinstance(candidates, list) or not all(isinstance(c, str) for c in candidates):
        raise StudioError(f"{at}: 'candidates' must be a list of answer texts.", field=FILE_FIELD,
                          key="prefs.import.bad_candidates", line=line, file=file)
    if len(candidates) < 2:
        raise StudioError(f"{at} has {len(candidates)} candidate answers; an item needs at least 2 to rank.",
                          field=FILE_FIELD, key="prefs.import.too_few_candidates", line=line, file=file,
                          count=len(candidates))
    by_text: dict[str, list[int]] = {}
    for index, text in enumerate(candidates):
        by_text.setdefault(text.strip(), []).append(index)
    groups = record["ranking"]
    ranking: Ranking = []
    placed: set[int] = set()
    for group in groups if isinstance(groups, list) and groups else [None]:  # [None]: refused just below
        group = [group] if isinstance(group, str) else group  # a lone text is a group of one
        if not isinstance(group, list) or not group or not all(isinstance(t, str) for t in group):
            raise StudioError(f"{at}: 'ranking' must list groups of candidate texts, best first, such as "
                              '[["text B"], ["text A", "text C"]].', field=FILE_FIELD, key="prefs.import.bad_ranking",
                              line=line, file=file)
        indices: list[int] = []
        for text in group:
            found = by_text.get(text.strip())
            if found is None:
                raise StudioError(f"{at}: the ranking names '{_short(text)}', which is not one of the candidates; "
                                  "copy the candidate's text exactly.", field=FILE_FIELD,
                                  key="prefs.import.unknown_text", line=line, file=file, text=_short(text))
            if found[0] in placed:
                raise StudioError(f"{at}: the ranking places '{_short(text)}' twice; put each answer in one group "
                                  "only.", field=FILE_FIELD, key="prefs.import.ranked_twice", line=line, file=file,
                                  text=_short(text))
            placed.update(found)
            indices.extend(found)
        ranking.append(sorted(indices))
    left = [i for i in range(len(candidates)) if i not in placed]
    if left:
        text = _short(candidates[left[0]])
        raise StudioError(f"{at}: the ranking leaves out '{text}'; rank every candidate (ties allowed).",
                          field=FILE_FIELD, key="prefs.import.left_out", line=line, file=file, text=text)
    item = {"prompt": record["prompt"], "candidates": candidates, "ranking": validate_ranking(ranking, len(candidates))}
    for extra in ("system", "id"):
        if record.get(extra) is not None:
            item[extra] = record[extra]
    return item


def read_rankings_jsonl(path: str | Path) -> list[dict]:
    """Rankings collected elsewhere, one JSON object per line: {"prompt", "candidates": [texts], "ranking":
    [["text B"], ["text A", "text C"]], "system"?, "id"?}, tie groups best first by candidate text. Blank lines are
    skipped. Returns [{prompt, candidates, ranking (indices), system?, id?}]."""
    path = Path(path)
    if not path.is_file():
        raise StudioError(f"The rankings file '{path}' does not exist; give the path of a .jsonl file.",
                          field=FILE_FIELD, key="prefs.import.no_file", file=str(path))
    items = []
    for line, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StudioError(f"Line {line} of '{path.name}' is not valid JSON ({exc.msg}); write one object per "
                              'line, such as {"prompt": "...", "candidates": ["A", "B"], "ranking": [["B"], ["A"]]}.',
                              field=FILE_FIELD, key="prefs.import.not_json", line=line, file=path.name,
                              error=exc.msg) from None
        items.append(_item_from_line(record, line, path.name))
    if not items:
        raise StudioError(f"The rankings file '{path.name}' has no items; write one JSON object per line with "
                          '"prompt", "candidates" and "ranking".', field=FILE_FIELD, key="prefs.import.empty",
                          file=path.name)
    return items
