"""Cleaning, splitting and mixing canonical records, each step counted so the user sees what it did.

`clean` trims whitespace, drops records with an empty required field, drops exact or normalised
duplicates, applies length filters and shuffles with a seed, returning a report of counts per
step. `split` makes train / validation / test by share or count, stratified by label for
classification, and refuses splits that would come out empty. `mix` builds one dataset from
several with a share or count per source and returns a card of what was taken. Records come from
`studio.data.formats`; saving them and their card is the store's job.
"""
from __future__ import annotations

import hashlib
import math
import random
import re
import unicodedata
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from studio.data.formats import FORMATS
from studio.errors import StudioError
from studio.settings import check_field, setting

# The fields whose length the length filters measure (chat: every turn's content).
TEXT_FIELDS = {"instruction": ("instruction", "input", "output"), "text": ("text",), "classification": ("text",),
               "seq2seq": ("source", "target"), "preference": ("prompt", "chosen", "rejected"),
               "feedback": ("prompt", "completion")}


@dataclass
class CleaningConfig:
    """Which cleaning steps run; every step is counted in the report whether it removes anything or not."""

    trim_whitespace: bool = setting(True, help="Strip spaces and newlines at both ends of every text field.")
    drop_empty: bool = setting(True, help="Drop records whose required fields are empty (after trimming).")
    drop_duplicates: str = setting("exact", choices=("exact", "normalized", "none"),
                                   help="Drop repeated records: 'exact' copies, or 'normalized' ones that differ "
                                        "only in case, spacing or punctuation at the ends.")
    min_chars: int = setting(0, min=0, max=100_000_000,
                             help="Drop records whose text is shorter than this many characters (0: off).")
    max_chars: int = setting(0, min=0, max=100_000_000,
                             help="Drop records whose text is longer than this many characters (0: off).")
    languages: str = setting("", help="Keep only records in these languages, as ISO codes separated by commas "
                                      "(e.g. 'en,es'); empty keeps every language.")
    shuffle: bool = setting(True, help="Shuffle the records, reproducibly with the seed.")
    seed: int = setting(42, min=0, max=2**32 - 1, help="Seed for shuffling.")

    def __post_init__(self):
        _check_bounds(self)
        if self.drop_duplicates not in ("exact", "normalized", "none"):
            raise StudioError(f"'drop_duplicates' is {self.drop_duplicates!r}; choose exact, normalized or none.",
                              field="drop_duplicates", key="data.cleaning.drop_duplicates",
                              value=self.drop_duplicates)
        if self.min_chars < 0 or self.max_chars < 0:
            raise StudioError("'min_chars' and 'max_chars' must be 0 or more.", field="min_chars",
                              key="data.cleaning.negative_chars")
        codes = [c.strip().lower() for c in self.languages.split(",") if c.strip()]
        if any(not re.fullmatch(r"[a-z]{2,3}(-[a-z]{2})?", c) for c in codes):
            raise StudioError(f"'languages' is {self.languages!r}; give ISO codes separated by commas, e.g. en,es.",
                              field="languages", key="data.cleaning.languages", value=self.languages)
        if self.max_chars and self.min_chars > self.max_chars:
            raise StudioError(f"'min_chars' ({self.min_chars}) is above 'max_chars' ({self.max_chars}); lower it "
                              f"or raise 'max_chars'.", field="min_chars", key="data.cleaning.min_above_max",
                              min_chars=self.min_chars, max_chars=self.max_chars)


def _strip(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return [{**m, "content": m["content"].strip()} for m in value]
    return value


def normalize_text(text: str) -> str:
    """Case-folded, whitespace collapsed, punctuation stripped at both ends: the 'normalized' duplicate key."""
    text = re.sub(r"\s+", " ", text.casefold()).strip()
    start, end = 0, len(text)
    while start < end and (unicodedata.category(text[start])[0] == "P" or text[start].isspace()):
        start += 1
    while end > start and (unicodedata.category(text[end - 1])[0] == "P" or text[end - 1].isspace()):
        end -= 1
    return text[start:end]


def _texts(record: dict, format: str) -> list[str]:
    if format == "chat":
        return [m["content"] for m in record["messages"]]
    return [record.get(name) or "" for name in TEXT_FIELDS[format]]


def _is_empty(record: dict, format: str) -> bool:
    if format == "chat":
        turns = [m for m in record["messages"] if m["role"] != "system"]
        return not turns or any(not m["content"].strip() for m in turns)
    required = FORMATS.get(format).required
    return any(isinstance(record[name], str) and not record[name].strip() for name in required)


def _key(record: dict, normalized: bool) -> tuple:
    norm = normalize_text if normalized else (lambda s: s)
    parts = []
    for name in sorted(record):
        value = record[name]
        if isinstance(value, list):
            parts.append((name, tuple((m["role"], norm(m["content"])) for m in value)))
        else:
            parts.append((name, norm(value) if isinstance(value, str) else value))
    return tuple(parts)


def new_report() -> dict[str, int]:
    return {"trimmed": 0, "dropped_empty": 0, "dropped_duplicates": 0, "dropped_too_short": 0,
            "dropped_too_long": 0, "dropped_language": 0, "kept": 0}


def language_of(text: str) -> str | None:
    """ISO code of `text`'s language (langdetect, offline and deterministic), None when it cannot tell."""
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0
    try:
        return detect(text).split("-")[0].lower()
    except LangDetectException:
        return None


def clean_stream(records: Iterable[dict], format: str, config: CleaningConfig, report: dict[str, int]) -> Iterator[dict]:
    """Every cleaning step but the shuffle, one record at a time, counting into `report`.

    Duplicates are remembered by a 16-byte digest of their key, not the text, so a file of
    millions of rows is deduplicated in bounded memory.
    """
    FORMATS.get(format, field="format")
    seen: set[bytes] = set()
    wanted = {c.strip().lower().split("-")[0] for c in config.languages.split(",") if c.strip()}
    for record in records:
        if config.trim_whitespace:
            trimmed = {k: _strip(v) for k, v in record.items()}
            report["trimmed"] += trimmed != record
            record = trimmed
        else:
            record = dict(record)
        if config.drop_empty and _is_empty(record, format):
            report["dropped_empty"] += 1
            continue
        if config.drop_duplicates != "none":
            key = hashlib.blake2b(repr(_key(record, config.drop_duplicates == "normalized")).encode(),
                                  digest_size=16).digest()
            if key in seen:
                report["dropped_duplicates"] += 1
                continue
            seen.add(key)
        length = sum(len(t) for t in _texts(record, format))
        if config.min_chars and length < config.min_chars:
            report["dropped_too_short"] += 1
            continue
        if config.max_chars and length > config.max_chars:
            report["dropped_too_long"] += 1
            continue
        if wanted and language_of(" ".join(_texts(record, format))) not in wanted:
            report["dropped_language"] += 1
            continue
        report["kept"] += 1
        yield record


def clean(records: list[dict], format: str, config: CleaningConfig | None = None) -> tuple[list[dict], dict[str, int]]:
    """(cleaned records, counts per step); the input records are not modified."""
    config = config or CleaningConfig()
    report = new_report()
    out = list(clean_stream(records, format, config, report))
    if config.shuffle:
        random.Random(config.seed).shuffle(out)
    return out, report


@dataclass
class SplitConfig:
    """Held-out splits: a share below 1 (0.1 = 10% of the rows) or a whole number of rows."""

    validation: float = setting(0.1, min=0, max=100_000_000,
                                help="Validation split: a share below 1, or a number of rows.")
    test: float = setting(0.0, min=0, max=100_000_000,
                          help="Test split: a share below 1, or a number of rows (0: none).")
    seed: int = setting(42, min=0, max=2**32 - 1, help="Seed for picking the held-out rows.")
    stratify: bool | None = setting(None, help="Keep each label's share in every split (default: on for "
                                               "classification).")

    def __post_init__(self):
        _check_bounds(self)
        for name in ("validation", "test"):
            value = getattr(self, name)
            if isinstance(value, bool) or value < 0 or (value >= 1 and not float(value).is_integer()):
                raise StudioError(f"'{name}' is {value!r}; give a share below 1 (such as 0.1) or a whole number "
                                  f"of rows.", field=name, key="data.cleaning.split_share",
                                  name=name, value=value)


def _check_bounds(config) -> None:
    """The metadata bounds, also for configs built directly (the CLI and the Data tab do not parse a dict)."""
    for f in dataclasses.fields(config):
        check_field(f, getattr(config, f.name), f.name)


def _size(value: float, n: int) -> int:
    return int(value) if value >= 1 else int(n * value + 0.5)


def split(records: list[dict], format: str, config: SplitConfig | None = None) -> dict[str, list[dict]]:
    """{"train", "validation", "test"} record lists; order within each split follows the input."""
    config = config or SplitConfig()
    n = len(records)
    sizes = {name: _size(getattr(config, name), n) for name in ("validation", "test")}
    for name, size in sizes.items():
        asked = getattr(config, name)
        if asked > 0 and size == 0:
            at_least = math.ceil(1000 / max(n, 1)) / 1000
            raise StudioError(f"The {name} share {asked:g} of {n} rows leaves {name} empty; use at least "
                              f"{at_least:g} or a count.", field=name, key="data.cleaning.split_empty",
                              name=name, asked=asked, n=n, at_least=at_least)
    if sizes["validation"] + sizes["test"] >= n:
        raise StudioError(f"The validation and test splits ({sizes['validation']} + {sizes['test']} rows) take all "
                          f"{n} rows and leave train empty; use smaller shares or counts.", field="validation",
                          key="data.cleaning.no_train_rows", validation=sizes["validation"], test=sizes["test"], n=n)
    rng = random.Random(config.seed)
    stratify = config.stratify if config.stratify is not None else format == "classification"
    if format == "classification":
        classes = sorted({r["label"] for r in records})
        if len(classes) < 2:
            raise StudioError(f"'label' has only one class ({classes[0]!r}); a classifier needs at least two.",
                              field="label", key="data.cleaning.one_class", value=classes[0])
    if stratify and records and all("label" in r for r in records):
        # Spread each label evenly over [0, 1) and sort: any prefix then holds every label in its share.
        groups: dict[Any, list[int]] = {}
        for i, r in enumerate(records):
            groups.setdefault(r["label"], []).append(i)
        slots = []
        for label in sorted(groups, key=str):
            members = groups[label]
            rng.shuffle(members)
            slots += [((k + rng.random()) / len(members), i) for k, i in enumerate(members)]
        order = [i for _, i in sorted(slots)]
    else:
        order = list(range(n))
        rng.shuffle(order)
    n_val, n_test = sizes["validation"], sizes["test"]
    picked = {"validation": set(order[:n_val]), "test": set(order[n_val:n_val + n_test])}
    return {"train": [r for i, r in enumerate(records) if i not in picked["validation"] and i not in picked["test"]],
            "validation": [r for i, r in enumerate(records) if i in picked["validation"]],
            "test": [r for i, r in enumerate(records) if i in picked["test"]]}


def mix(sources: list[tuple[str, list[dict], float | int]], seed: int = 42) -> tuple[list[dict], list[dict]]:
    """One shuffled dataset from several: an int takes that many records, a float that share of the result.

    With shares only, they must add up to 1 and the result is as large as the sources allow without
    repeating a record; with counts too, the shares are of the whole and must add up to less than 1.
    A count above what a source has repeats its records (all of them first, then a random pick).
    """
    if not sources:
        raise StudioError("The mix has no sources; add at least one dataset.", field="mix",
                          key="data.cleaning.mix_empty")
    for name, records, amount in sources:
        if isinstance(amount, bool) or amount < 0 or (isinstance(amount, float) and amount > 1):
            raise StudioError(f"The mix amount for '{name}' is {amount!r}; give a share between 0 and 1 or a "
                              f"whole number of records.", field="mix", key="data.cleaning.mix_amount",
                              name=name, amount=amount)
        if amount and not records:
            raise StudioError(f"The mix source '{name}' has no records; remove it or import data into it.",
                              field="mix", key="data.cleaning.mix_source_empty", name=name)
    counted = sum(a for _, _, a in sources if isinstance(a, int))
    share = sum(a for _, _, a in sources if isinstance(a, float))
    if counted and share >= 1:
        raise StudioError(f"The mix shares add up to {share:g}, leaving no room for the sources given as counts; "
                          f"make the shares add up to less than 1.", field="mix", key="data.cleaning.mix_shares_full",
                          share=share)
    if not counted and abs(share - 1) > 1e-6:
        raise StudioError(f"The mix shares add up to {share:g}; make them add up to 1, or give counts.", field="mix",
                          key="data.cleaning.mix_shares_sum", share=share)
    if counted:
        total = counted / (1 - share)
    else:
        total = min(len(records) / a for _, records, a in sources if isinstance(a, float) and a > 0)
    rng = random.Random(seed)
    out, card = [], []
    for name, records, amount in sources:
        want = amount if isinstance(amount, int) else int(total * amount + 0.5)
        taken = rng.sample(records, want) if want <= len(records) else (
            list(records) + rng.choices(records, k=want - len(records)))
        out += [dict(r) for r in taken]
        card.append({"name": name, "requested": amount, "available": len(records), "taken": want})
    rng.shuffle(out)
    return out, card
