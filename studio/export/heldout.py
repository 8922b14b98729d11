"""The held-out text an export report measures perplexity and next-token agreement on.

A run's own validation examples are the fairest text: the model never trained on them, and they look like what
the model will be asked. `heldout_text` rebuilds that split the way training did (the recipe's dataset, share and
seed; a studio dataset's stored validation split when it has one) and flattens each example to plain text: the
turns of a conversation, a pair's prompt and chosen answer, a document. A base model, a run that held nothing
out, or a run whose data is gone falls back to `assets/export/heldout-en.txt`, an English text written for the
project and absent from every sample dataset. `HeldOut.from_texts` wraps any other texts. Tokenising, windows
and scoring are left to `studio.export.report`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError
from studio.models.refs import run_spec

ASSET = Path(__file__).resolve().parent.parent.parent / "assets" / "export" / "heldout-en.txt"
ASSET_SOURCE = "assets/export/heldout-en.txt"
MAX_TOKENS = 2048  # enough positions for a stable perplexity, a few seconds per model on a CPU
TEXT_FIELDS = ("prompt", "chosen", "completion", "text", "source", "target")


@dataclass(frozen=True)
class HeldOut:
    """One text to score, where it came from, and how many of its tokens to score at most."""

    text: str
    source: str  # "assets/export/heldout-en.txt" or "run:<id>/validation (<n> examples)"
    max_tokens: int = MAX_TOKENS

    def __post_init__(self):
        if not self.text.strip():
            raise StudioError(f"The held-out text from {self.source} is empty; give a text with at least a few "
                              "sentences.", field="heldout", key="export.report.empty_heldout", source=self.source)
        if self.max_tokens < 2:
            raise StudioError(f"'max_tokens' is {self.max_tokens}; score at least 2 tokens of the held-out text.",
                              field="max_tokens", key="export.report.few_tokens", value=self.max_tokens)

    @classmethod
    def from_texts(cls, texts: list[str], source: str, max_tokens: int = MAX_TOKENS) -> "HeldOut":
        """Several texts as one, separated by blank lines (each is short; windows may span two)."""
        return cls("\n\n".join(t.strip() for t in texts if t and t.strip()), source, max_tokens)


def record_text(record: dict, format: str) -> str:
    """An example of any format as plain text: its turns, or its prompt and (chosen) answer."""
    from studio.data.formats import record_to_messages

    messages = record.get("messages")
    if messages is None:
        try:
            messages = record_to_messages(record, format)
        except (StudioError, KeyError):
            messages = [{"content": record[k]} for k in TEXT_FIELDS if isinstance(record.get(k), str)]
    if isinstance(messages, str):
        return messages
    return "\n\n".join(str(m.get("content") or "").strip() for m in messages
                       if isinstance(m, dict) and str(m.get("content") or "").strip())


def run_validation_texts(ws, run: dict) -> list[str]:
    """The run's validation examples as texts, split as training split them; [] when it held none out."""
    from studio.config import load_recipe

    recipe = load_recipe(Path(run["run_dir"]) / "recipe.yaml")
    if recipe.stage == "cpt":
        from studio.data.loaders import split_examples
        from studio.stages.cpt import load_texts

        return split_examples(load_texts(recipe.data.dataset, ws), recipe.data.validation, recipe.train.seed)[1]
    from studio.data.examples import recipe_records

    records = recipe_records(recipe.data, recipe.train.seed, ws)
    return [t for t in (record_text(r, records.format) for r in records.validation) if t]


def heldout_text(ws=None, run: dict | None = None, max_tokens: int = MAX_TOKENS) -> HeldOut:
    """The run's validation split as one text, else the English asset text."""
    if ws is not None and run is not None:
        try:
            texts = run_validation_texts(ws, run)
        except (StudioError, OSError):
            texts = []  # the run's data was moved or deleted since: the asset still measures the export
        if texts:
            return HeldOut.from_texts(texts, f"{run_spec(run['id'])}/validation ({len(texts)} examples)", max_tokens)
    return HeldOut(ASSET.read_text(encoding="utf-8"), ASSET_SOURCE, max_tokens)
