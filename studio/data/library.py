"""The workspace's datasets and prompt templates as one object, the way the Data tab uses them (`Engine.data`).

Each method is the builder's, versions' or template store's own function bound to the workspace, so the UI never
holds a workspace or a path into it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from studio.data.builder import ImportRequest, ImportResult, export_dataset, import_dataset, mix_datasets
from studio.data.cleaning import SplitConfig
from studio.data.template_store import PromptTemplate, get_template, list_templates, save_template
from studio.data.versions import dataset_card, list_datasets, load_split


class DataLibrary:
    def __init__(self, ws: Any):
        self.ws = ws

    # --- datasets -------------------------------------------------------------------------------------------
    def datasets(self) -> list[dict]:
        """Each dataset's newest intact version: name, version, format, rows per split, template, skipped."""
        return list_datasets(self.ws)

    def import_file(self, request: ImportRequest, progress: Callable[[int, int], None] | None = None) -> ImportResult:
        """Read, map, clean, split and save a file as a new version of the dataset the request names."""
        return import_dataset(self.ws, request, progress=progress)

    def mix(self, name: str, sources: list[tuple[str, float | int]], split: SplitConfig | None = None,
            seed: int = 42) -> ImportResult:
        return mix_datasets(self.ws, name, sources, split, seed=seed)

    def card(self, name: str) -> dict:
        return dataset_card(self.ws, name)

    def report(self, name: str, tokenizer: Any, max_length: int) -> dict:
        """Token lengths, what `max_length` would cut and column statistics (`studio.data.stats`)."""
        from studio.data.stats import dataset_report

        return dataset_report(self.ws, name, tokenizer, max_length)

    def rows(self, name: str, split: str = "train") -> list[dict]:
        return load_split(self.ws, name, split)

    def export(self, name: str, out_path: Path, fmt: str | None = None) -> Path:
        return export_dataset(self.ws, name, out_path, fmt)

    def tokenizer(self, model: str) -> Any:
        from studio.models.loading import load_tokenizer

        return load_tokenizer(model, self.ws)

    # --- prompt templates -----------------------------------------------------------------------------------
    def templates(self) -> list[PromptTemplate]:
        return list_templates(self.ws)

    def template(self, name: str) -> PromptTemplate:
        return get_template(name, self.ws)

    def save_template(self, name: str, prompt: str, response: str = "{{ output }}") -> PromptTemplate:
        return save_template(self.ws, name, prompt, response)
