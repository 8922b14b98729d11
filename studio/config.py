"""The recipe: one typed, validated description of a training run, read from and written to YAML.

A recipe names the model, the stage, the method (with that method's own settings dataclass,
found in the method registry), the data and the training hyperparameters. `load_recipe` and
`parse_recipe` refuse malformed YAML, repeated keys (with their line), unknown keys, wrong types
and out-of-range values (every number has a floor and a ceiling) with a `StudioError` naming the
field; `apply_overrides` implements `--set train.lr=1e-4`. What a
method or stage does with these settings lives in `studio.methods` and `studio.stages`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from studio.errors import StudioError
from studio.settings import parse_settings, setting, settings_to_dict
from studio.tracking import TRACKERS
from studio.yaml_loader import DuplicateKeyError, strict_load

# Ceilings generous enough for any real run, low enough that a typo cannot ask for one that never ends.
MAX_STEPS = 10_000_000
MAX_SEED = 2**32 - 1  # numpy's seeds are unsigned 32-bit


@dataclass
class DataConfig:
    """Which examples to train on and how they become tokens."""

    dataset: str = setting(help="A studio dataset name, a built-in sample name or a path to a JSONL file.")
    template: str = setting("auto", help="How examples become text: 'chat' uses the model's own chat template; "
                            "'alpaca', 'dolly', 'flan', 'chatml' or a saved template write plain text; 'auto' uses the "
                            "dataset's own template (chat for files).")
    multi_turn: str = setting("all", help="In conversations, learn every assistant turn or only the last one.",
                              choices=("all", "last"), advanced=True)
    system_prompt: str = setting("", help="Optional system message put before every example.")
    max_length: int = setting(512, help="Longest example in tokens; longer ones are cut.", min=16, max=1_048_576)
    validation: float = setting(0.1, help="Share of examples held out to measure eval loss (0 to skip).",
                                min=0.0, max=0.5)
    train_on_prompt: bool = setting(False, help="Also learn to predict the prompt, not only the answer.")
    packing: bool = setting(True, help="Lay several short examples end to end in one row, each still attending only "
                            "to itself: no padding, faster steps, the same loss per example.")


@dataclass
class TrainConfig:
    """Optimisation hyperparameters."""

    epochs: float = setting(1.0, help="How many times to go over the training data.", gt=0.0, max=1000.0)
    max_steps: int = setting(-1, help="Stop after this many optimiser steps (-1: run all epochs).", min=-1,
                            max=MAX_STEPS)
    lr: float = setting(2.0e-4, help="Learning rate: how big each update is. LoRA likes ~2e-4, full FT ~2e-5.",
                        gt=0.0, max=1.0)
    batch_size: int = setting(8, help="Examples per step on the device.", min=1, max=4096)
    micro_batch_size: int = setting(0, help="Rows in one forward and backward pass: each step still learns from "
                                    "batch_size rows, in batch_size / micro_batch_size passes (the same learning, "
                                    "less memory). 0: chosen for this machine.", min=0, max=4096, advanced=True)
    grad_accum: int = setting(1, help="Steps whose gradients are added before one update (bigger effective batch).",
                              min=1, max=1024)
    eval_every: int = setting(50, help="Measure the validation loss every this many steps.", min=1, max=MAX_STEPS)
    eval_samples: int = setting(16, help="Validation examples the model answers at each evaluation, scored with "
                                "ROUGE, BLEU and exact match against their references (0: loss and perplexity "
                                "only).", min=0, max=1000, advanced=True)
    save_every: int = setting(50, help="Save a checkpoint every this many steps (cancel and resume use it).",
                              min=1, max=MAX_STEPS)
    keep_best: bool = setting(False, help="At the end, keep the checkpoint with the best validation metric instead "
                              "of the last one (needs save_every to be a multiple of eval_every).", advanced=True)
    metric_for_best: str = setting("eval_loss", help="Which validation metric decides 'best' (e.g. eval_loss, "
                                   "eval_rougeL, eval_accuracy); lower is better for losses and perplexity, higher "
                                   "for the rest.", advanced=True)
    early_stopping_patience: int = setting(0, help="Stop when the best metric has not improved for this many "
                                           "evaluations in a row (0: never stop early).", min=0, max=10_000,
                                           advanced=True)
    warmup_ratio: float = setting(0.0, help="Share of steps spent raising the learning rate from 0.", min=0.0,
                                  max=0.5, advanced=True)
    weight_decay: float = setting(0.0, help="Pulls weights towards zero; a mild regulariser.", min=0.0, max=1.0,
                                  advanced=True)
    scheduler: str = setting("linear", help="How the learning rate changes over training.",
                             choices=("linear", "cosine", "constant", "constant_with_warmup"), advanced=True)
    max_grad_norm: float = setting(1.0, help="Clip gradients to this norm to keep training stable.", gt=0.0,
                                   max=1.0e6, advanced=True)
    group_by_length: bool = setting(True, help="Put examples of similar length in the same batch: less padding, "
                                    "faster steps; batches are still shuffled.", advanced=True)
    gradient_checkpointing: bool = setting(False, help="Recompute activations instead of storing them: less "
                                           "memory, about a third slower.", advanced=True)
    token_metrics: bool = setting(False, help="Also log token accuracy and entropy at every step: one more pass "
                                  "over the whole vocabulary, so slower and more memory.", advanced=True)
    precision: str = setting("auto", help="Number format for training; 'auto' picks bf16 where the hardware has it.",
                             choices=("auto", "bf16", "fp16", "fp32"))
    fused_optimizer: str = setting("auto", help="AdamW in one fused kernel for all weights ('auto': on a GPU, "
                                   "where it is the fastest; on a CPU the update is a tiny share of a step).",
                                   choices=("auto", "on", "off"), advanced=True)
    liger: str = setting("auto", help="Liger's fused GPU kernels for normalisation, activation and rotary "
                         "embeddings ('auto': when the liger-kernel package is installed and a GPU is present).",
                         choices=("auto", "on", "off"), advanced=True)
    compile: bool = setting(False, help="Compile the model with torch.compile: the first steps take minutes longer, "
                            "later ones may run faster on a GPU (on 2 CPU cores: 6 minutes to compile, then 3% "
                            "faster per step).", advanced=True)
    seed: int = setting(42, help="Random seed: the same seed gives the same run.", min=0, max=MAX_SEED)
    report_to: str = setting("none", help="Also log the run to an experiment tracker: TensorBoard (event files in "
                             "the run folder), MLflow (a local mlruns store), Trackio or Weights & Biases; each one "
                             "only when its package is installed.", choices=TRACKERS, advanced=True)

    def __post_init__(self):
        if self.micro_batch_size and self.batch_size % self.micro_batch_size:
            raise StudioError(f"'train.micro_batch_size' ({self.micro_batch_size}) must divide 'train.batch_size' "
                              f"({self.batch_size}); pick a divisor of it or 0 to let the studio choose.",
                              field="train.micro_batch_size", key="recipe.micro_batch_divides",
                              micro=self.micro_batch_size, batch=self.batch_size)
        if (self.keep_best or self.early_stopping_patience) and self.save_every % self.eval_every:
            raise StudioError(f"'train.save_every' ({self.save_every}) must be a multiple of 'train.eval_every' "
                              f"({self.eval_every}) to keep the best checkpoint or stop early; make them equal.",
                              field="train.save_every", key="recipe.save_every_multiple",
                              save_every=self.save_every, eval_every=self.eval_every)


STRATEGIES = ("ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3")


@dataclass
class ResourcesConfig:
    """Where a run trains: how many devices and machines, and how the work is shared between them."""

    devices: int | list[int] = setting(1, help="How many devices train this run (a number), or which GPUs (a list "
                                       "such as [0, 1]). Each runs its own copy of the training with batch_size "
                                       "rows a step; on a CPU each device is a process.", min=1, max=1024)
    strategy: str = setting("ddp", help="How devices share the work: 'ddp' gives each a whole copy of the model; "
                            "'fsdp' and 'deepspeed-zero3' split weights, gradients and optimiser state between "
                            "GPUs (models too big for one); 'deepspeed-zero2' splits gradients and optimiser "
                            "state.", choices=STRATEGIES, advanced=True)
    nodes: int = setting(1, help="How many machines train this run together (each runs the same recipe).", min=1,
                         max=4096, advanced=True)
    node_rank: int = setting(0, help="This machine's number among them, from 0 (0 writes the results).", min=0,
                             max=4095, advanced=True)
    master_addr: str = setting("127.0.0.1", help="Address of machine 0, which all machines reach to meet.",
                               advanced=True)
    master_port: int = setting(0, help="Port on machine 0 for that meeting (0: a free one, for one machine).",
                               min=0, max=65535, advanced=True)

    def __post_init__(self):
        if not isinstance(self.devices, int) and (not 0 < len(self.devices) <= 1024 or min(self.devices) < 0
                                                  or len(set(self.devices)) != len(self.devices)):
            raise StudioError(f"'resources.devices' lists {self.devices!r}; name each GPU index (0 or more) once, "
                              "e.g. [0, 1].", field="resources.devices", key="recipe.devices_list",
                              value=str(self.devices))
        if self.node_rank >= self.nodes:
            raise StudioError(f"'resources.node_rank' ({self.node_rank}) must be below 'resources.nodes' "
                              f"({self.nodes}); number the machines from 0.", field="resources.node_rank",
                              key="recipe.node_rank", rank=self.node_rank, nodes=self.nodes)

    @property
    def per_node(self) -> int:
        return self.devices if isinstance(self.devices, int) else len(self.devices)

    @property
    def world_size(self) -> int:
        """Training processes in all: devices on each machine times machines."""
        return self.per_node * self.nodes


@dataclass(kw_only=True)
class Recipe:
    """A whole run: model + stage + method + data + training settings."""

    name: str = setting(help="A short name for the run.")
    model: str = setting("smollm2-135m-instruct", help="Embedded model alias, Hugging Face hub id or local path.")
    stage: str = setting("sft", help="What kind of training: 'sft' teaches answers to instructions.")
    method: Any = setting(default_factory=lambda: {"name": "lora"},
                          help="How weights change: 'lora' trains small add-on matrices, 'full' trains everything.")
    data: DataConfig = setting(help="Training data settings.")
    train: TrainConfig = setting(default_factory=TrainConfig, help="Training hyperparameters.")
    resources: ResourcesConfig = setting(default_factory=ResourcesConfig,
                                         help="Devices and machines that train the run.")
    trust_remote_code: bool = setting(False, help="Run code shipped with a hub model. Only for models you trust.")
    # The sections of stages that read one (`dpo:`, `rl:`, ...), by stage name; each stage parses its own
    # (`Stage.settings`), so a new stage needs no field here.
    sections: dict = dataclasses.field(default_factory=dict, metadata={"internal": True})

    def section(self, stage: str) -> dict:
        return self.sections.get(stage) or {}


def _parse_method(raw: Any) -> Any:
    from studio.methods import METHODS

    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict) or "name" not in raw:
        raise StudioError("'method' must be a mapping with a 'name', e.g. {name: lora, r: 16}.", field="method",
                          key="recipe.method_mapping")
    raw = dict(raw)
    name = raw.pop("name")
    method = METHODS.get(name, field="method.name")
    settings = parse_settings(method.settings_cls, raw, "method")
    return settings


def parse_recipe(data: Any) -> Recipe:
    """Validate a dict (parsed YAML) into a Recipe."""
    from studio.stages import STAGES
    from studio.stages.base import stage_sections

    if not isinstance(data, dict):
        raise StudioError("The recipe must be a YAML mapping with keys such as name, model, stage, method, data.",
                          key="recipe.not_mapping")
    data = dict(data)
    data.pop("guide", None)  # a preset's goal, title and why (`studio.guide`): words for people, not settings
    method_raw = data.pop("method", {"name": "lora"})
    sections = {name: data.pop(name) for name in stage_sections() if name in data}
    for name, raw in sections.items():
        if raw is not None and not isinstance(raw, dict):
            raise StudioError(f"'{name}' must be a mapping of settings, e.g. {name}: {{...}}.", field=name,
                              key="recipe.section_mapping", name=name)
    recipe = parse_settings(Recipe, data, also_known=("method", *stage_sections()))
    recipe.sections = {name: dict(raw or {}) for name, raw in sections.items()}
    if not recipe.name.strip():
        raise StudioError("'name' is empty; give the run a short name.", field="name", key="recipe.empty_name")
    STAGES.get(recipe.stage, field="stage")
    recipe.method = _parse_method(method_raw)
    return recipe


def recipe_to_dict(recipe: Recipe) -> dict:
    out = settings_to_dict(recipe)
    out["method"] = {"name": recipe.method.name, **settings_to_dict(recipe.method)}
    out.update(out.pop("sections"))
    return out


def recipe_to_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, allow_unicode=True)


def _read_yaml(text: str, path: Path | None = None) -> Any:
    """Parse recipe YAML strictly (see `studio.yaml_loader`); a syntax error or a repeated key is a StudioError
    with its line, naming the file when there is one."""
    try:
        return strict_load(text)
    except DuplicateKeyError as exc:
        name = str(exc.key)
        where = f"'{path}' repeats" if path else "The recipe repeats"
        message = f"{where} the key '{name}' at line {exc.line} (first at line {exc.first_line}); keep one of them."
        if path:
            raise StudioError(message, key="recipe.file_duplicate_key", path=str(path), name=name, line=exc.line,
                              first_line=exc.first_line) from None
        raise StudioError(message, key="recipe.duplicate_key", name=name, line=exc.line,
                          first_line=exc.first_line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, 'problem', exc)
        what = f"'{path}'" if path else "The recipe"
        message = f"{what} is not valid YAML{where}: {problem}; fix the syntax."
        prefix, named = ("recipe.file_", {"path": str(path)}) if path else ("recipe.", {})
        if mark:
            raise StudioError(message, key=f"{prefix}bad_yaml_at", **named, line=mark.line + 1,
                              column=mark.column + 1, problem=str(problem)) from None
        raise StudioError(message, key=f"{prefix}bad_yaml", **named, problem=str(problem)) from None


def parse_recipe_yaml(text: str) -> Recipe:
    return parse_recipe(_read_yaml(text))


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    try:
        exists = path.is_file()
    except OSError:  # e.g. a name too long for the file system: it cannot exist either
        exists = False
    if not exists:
        raise StudioError(f"Recipe file '{path}' does not exist; check the path.", field="recipe",
                          key="recipe.file_missing", path=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise StudioError(f"Recipe file '{path}' cannot be read ({reason}); make it a UTF-8 text file you may "
                          "read.", field="recipe", key="recipe.file_unreadable", path=str(path),
                          reason=reason) from None
    return parse_recipe(apply_overrides(_read_yaml(text, path), overrides or []))


def apply_overrides(data: Any, overrides: list[str]) -> dict:
    """Apply `key.path=value` overrides (values parsed as YAML scalars) to a recipe dict."""
    data = dict(data or {}) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        return data
    for item in overrides:
        if "=" not in item:
            raise StudioError(f"Override '{item}' must look like key.path=value, e.g. train.max_steps=20.", field="--set",
                              key="recipe.override_syntax", item=item)
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if isinstance(child, str) and part == "method":
                child = {"name": child}
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise StudioError(f"Override '{key}' goes inside '{part}', which is not a section.", field=key,
                                  key="recipe.override_not_section", name=key, section=part)
            node[part] = dict(child)
            node = node[part]
        node[parts[-1]] = _override_value(item, value)
    return data


def _override_value(item: str, value: str) -> Any:
    """The YAML value of one `--set key=value`, read as strictly as a recipe file."""
    if not value.strip():
        return ""
    try:
        return strict_load(value)
    except DuplicateKeyError as exc:
        raise StudioError(f"Override '{item}' repeats the key '{exc.key}'; keep one of them.", field="--set",
                          key="recipe.override_duplicate_key", item=item, name=str(exc.key)) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise StudioError(f"Override '{item}' has a value that is not valid YAML ({problem}); fix it, e.g. "
                          "train.lr=1e-4.", field="--set", key="recipe.override_bad_yaml", item=item,
                          problem=str(problem)) from None


def replace(recipe: Recipe, **changes: Any) -> Recipe:
    return dataclasses.replace(recipe, **changes)
