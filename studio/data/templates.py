"""Prompt templates: a canonical record -> chat messages or a (prompt, response) text pair -> tokens with loss masks.

A `PromptTemplate` is either plain text (two Jinja parts, prompt and response; the model learns the
response and the end-of-sequence token) or "chat" (the selected model's own chat template, rendered and
masked by `studio.data.chat`). Built-ins: alpaca, dolly, flan (several phrasings per task, one picked per
example from seed + index), chatml and chat. Custom templates are user-written Jinja rendered in an
immutable sandbox with no loader (include/import/extends refused, no Python internals) and StrictUndefined,
so a missing field or a syntax error is a `StudioError` naming the template line. The sandbox also bounds
each example's time and size (`studio.data.template_sandbox`); a template past a bound is a `StudioError`
too. Records of the instruction, seq2seq and classification formats render directly (source/target and
text/label are aliased to instruction/output). Saving templates and finding one by name (built-in or saved, `get_template`) is `studio.data.template_store`'s job;
reading files, cleaning and batching belong elsewhere.
"""
from __future__ import annotations

import dataclasses
import functools
import random
import traceback
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError

from studio.data import chat, template_sandbox
from studio.data.template_limits import TemplateLimit, output_limit
from studio.errors import StudioError

IGNORE_INDEX = chat.IGNORE_INDEX
_SYSTEM = "{% if system %}{{ system }}\n\n{% endif %}"
_ALPACA_INTRO = ("Below is an instruction that describes a task{}. "
                 "Write a response that appropriately completes the request.\n\n")


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
    """How one record becomes a training example."""

    name: str
    description: str
    prompt: str = ""
    """Jinja for the prompt (everything the model is given); sees the record's fields plus `system`."""
    prompt_no_input: str | None = None
    """Used instead of `prompt` when the record's `input` is empty (Alpaca's two wordings)."""
    response: str = "{{ output }}"
    """Jinja for what the model learns to write."""
    kind: str = "text"
    """"text" for a (prompt, response) pair, "chat" for the model's own chat template."""
    variants: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """FLAN-style: (task, phrasings) pairs; one phrasing per example replaces `prompt`."""


BUILTIN_TEMPLATES: dict[str, PromptTemplate] = {t.name: t for t in (
    PromptTemplate(
        "alpaca", "Stanford Alpaca: instruction, optional input, response.",
        prompt=_SYSTEM + _ALPACA_INTRO.format(", paired with an input that provides further context")
        + "### Instruction:\n{{ instruction }}\n\n### Input:\n{{ input }}\n\n### Response:\n",
        prompt_no_input=_SYSTEM + _ALPACA_INTRO.format("")
        + "### Instruction:\n{{ instruction }}\n\n### Response:\n"),
    PromptTemplate(
        "dolly", "Databricks Dolly: instruction, context, response.",
        prompt=_SYSTEM + _ALPACA_INTRO.format("")
        + "### Instruction:\n{{ instruction }}\n\nInput:\n{{ input }}\n\n### Response:\n",
        prompt_no_input=_SYSTEM + _ALPACA_INTRO.format("") + "### Instruction:\n{{ instruction }}\n\n### Response:\n"),
    PromptTemplate(
        "flan", "FLAN-style: one of several phrasings per task, picked per example with the seed.",
        variants=(
            ("summarize", tuple(_SYSTEM + p for p in (
                "{{ source }}\n\nSummarize the text above.\n",
                "Summarize this article:\n\n{{ source }}\n\nSummary:\n",
                "Write a short summary of the following text.\n\n{{ source }}\n",
                "{{ source }}\n\nTL;DR:\n",
                "Article: {{ source }}\n\nWhat is a brief summary of this article?\n"))),
            ("instruction", tuple(_SYSTEM + p for p in (
                "{{ instruction }}{% if input %}\n\n{{ input }}{% endif %}\n\nAnswer:\n",
                "Task: {{ instruction }}\n{% if input %}Input: {{ input }}\n{% endif %}Response:\n",
                "{% if input %}{{ input }}\n\n{% endif %}Follow the instruction: {{ instruction }}\n",
                "Q: {{ instruction }}{% if input %} {{ input }}{% endif %}\nA:\n",
                "Instructions: {{ instruction }}\n{% if input %}Context: {{ input }}\n{% endif %}Output:\n"))),
        )),
    PromptTemplate(
        "chatml", "ChatML written as text: <|im_start|>role ... <|im_end|>.",
        prompt="{% if system %}<|im_start|>system\n{{ system }}<|im_end|>\n{% endif %}<|im_start|>user\n"
        "{{ instruction }}{% if input %}\n\n{{ input }}{% endif %}<|im_end|>\n<|im_start|>assistant\n",
        response="{{ output }}<|im_end|>"),
    PromptTemplate("chat", "The selected model's own chat template.", kind="chat"),
)}


# --- sandboxed Jinja -------------------------------------------------------------------------------------

_ENV = template_sandbox.BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
_FORBIDDEN = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)


def _part(part: str) -> str:
    return "Template" if part == "prompt" else "Response template"


@functools.lru_cache(maxsize=256)
def compile_part(source: str, part: str = "prompt"):
    """The compiled Jinja template; a syntax error or include/import/extends is a StudioError with its line."""
    try:
        tree = _ENV.parse(source)
        forbidden = next(tree.find_all(_FORBIDDEN), None)
        if forbidden is None:
            return template_sandbox.compile_source(_ENV, source)
    except TemplateSyntaxError as exc:
        reason = (exc.message or "syntax error").rstrip(".")
        raise StudioError(f"{_part(part)} line {exc.lineno}: {reason}; fix the Jinja syntax.",
                          field="data.template", key="data.templates.syntax", part=part, line=exc.lineno,
                          error=reason) from None
    except (RecursionError, SyntaxError, MemoryError, TemplateLimit) as exc:  # nesting past Python's limits
        _raise_bound(exc, _part(part), part)
    raise StudioError(f"{_part(part)} line {forbidden.lineno}: templates cannot include, import or extend other "
                      "templates; write the text inline.", field="data.template",
                      key="data.templates.include", part=part, line=forbidden.lineno)


def _template_lines(exc: BaseException) -> list[int]:
    return [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]


def _raise_bound(exc: BaseException, where: str, part: str) -> None:
    """The StudioError for a template past a bound: time, output, value size, range, depth or memory."""
    if not isinstance(exc, TemplateLimit):
        if isinstance(exc, (RecursionError, SyntaxError)):
            raise StudioError(f"{where}: the template nests or calls itself too deeply; use fewer nested "
                              "macros, loops or brackets.", field="data.template", key="data.templates.too_deep",
                              part=part) from None
        raise StudioError(f"{where}: the template ran out of memory; build smaller values.",
                          field="data.template", key="data.templates.out_of_memory", part=part) from None
    if exc.kind == "time":
        raise StudioError(f"{where}: the template took longer than {exc.limit:g} s to render one example; remove "
                          "long or nested loops.", field="data.template", key="data.templates.too_slow",
                          part=part, seconds=f"{exc.limit:g}") from None
    if exc.kind == "output":
        raise StudioError(f"{where}: the text of one example passed {exc.limit:,} characters; repeat less text.",
                          field="data.template", key="data.templates.too_long", part=part,
                          limit=exc.limit) from None
    if exc.kind == "built":
        raise StudioError(f"{where}: the template built more than {exc.limit:,} characters of text for one example; "
                          "loop over fewer or shorter values.", field="data.template",
                          key="data.templates.built_too_much", part=part, limit=exc.limit) from None
    if exc.kind == "range":
        raise StudioError(f"{where}: range() of {exc.size:,} numbers is over the limit of {exc.limit:,}; loop "
                          "over fewer items.", field="data.template", key="data.templates.range_too_big",
                          part=part, size=exc.size, limit=exc.limit) from None
    raise StudioError(f"{where}: {exc.what} would build about {exc.size:,} characters, over the limit of "
                      f"{exc.limit:,}; repeat or pad less.", field="data.template", key="data.templates.too_big",
                      part=part, what=exc.what, size=exc.size, limit=exc.limit) from None


def _render_part(source: str, context: dict, part: str) -> str:
    template = compile_part(source, part)
    try:
        return template_sandbox.render(template, context)
    except (TemplateLimit, RecursionError, MemoryError) as exc:
        lines = _template_lines(exc)
        line = getattr(exc, "line", None) or (lines[-1] if lines else None)
        _raise_bound(exc, f"{_part(part)} line {line}" if line else _part(part), part)
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        lines = _template_lines(exc)
        where = f"{_part(part)} line {lines[-1]}" if lines else _part(part)
        if isinstance(exc, SecurityError):
            raise StudioError(f"{where}: {str(exc).rstrip('.')}; templates may only use the record's fields.",
                              field="data.template", key="data.templates.unsafe", part=part,
                              error=str(exc).rstrip(".")) from None
        fields = ", ".join(k for k in context if k != "system" or context[k])
        raise StudioError(f"{where}: {str(exc).rstrip('.')}; the fields are {fields}.", field="data.template",
                          key="data.templates.render", part=part, error=str(exc).rstrip("."), fields=fields) from None


# --- rendering -------------------------------------------------------------------------------------------

def template_context(record: dict, system_prompt: str = "") -> dict:
    """The names a template sees: the record's fields, instruction/input/output aliases, and `system`."""
    context = {"instruction": record.get("instruction", record.get("source", record.get("text", ""))),
               "input": record.get("input", "") or "",
               "output": record.get("output", record.get("target", record.get("label", "")))}
    context.update({k: v for k, v in record.items() if k not in ("system", "messages")})
    context["system"] = record.get("system") or system_prompt
    return context


def _choose_prompt(template: PromptTemplate, record: dict, context: dict, seed: int, index: int) -> str:
    if template.variants:
        variants = dict(template.variants)
        phrasings = variants.get("summarize" if "source" in record else "instruction") or template.variants[0][1]
        # One Random per example, so a row renders the same whatever order or process handles it.
        return random.Random(f"{seed}:{index}").choice(phrasings)
    if template.prompt_no_input is not None and not str(context.get("input") or "").strip():
        return template.prompt_no_input
    return template.prompt


def _chat_messages(record: dict, system_prompt: str) -> list[dict]:
    if "messages" in record:
        return chat.with_system_prompt(record["messages"], record.get("system") or system_prompt)
    ctx = template_context(record)
    user = ctx["instruction"] + (f"\n\n{ctx['input']}" if ctx["input"] else "")
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": str(ctx["output"])}]
    return chat.with_system_prompt(messages, record.get("system") or system_prompt)


def render_example(template: PromptTemplate, record: dict, *, system_prompt: str = "", seed: int = 0,
                   index: int = 0) -> dict:
    """{"prompt", "response"} for a text template, {"messages"} for the model's chat template."""
    if template.kind == "chat":
        return {"messages": _chat_messages(record, system_prompt)}
    if "messages" in record:
        raise StudioError(f"Template '{template.name}' renders instruction records, not conversations; use the "
                          "'chat' template for chat datasets.", field="data.template",
                          key="data.templates.not_chat", name=template.name)
    context = template_context(record, system_prompt)
    prompt = _choose_prompt(template, record, context, seed, index)
    try:  # both parts under one time limit and one character budget
        return template_sandbox.within_limits(output_limit(context), _render_pair, prompt, template.response, context)
    except TemplateLimit as exc:  # the time limit, met between the parts
        _raise_bound(exc, _part("prompt"), "prompt")


def _render_pair(prompt: str, response: str, context: dict) -> dict:
    return {"prompt": _render_part(prompt, context, "prompt"), "response": _render_part(response, context, "response")}


def custom_template(prompt: str, response: str = "{{ output }}", name: str = "custom",
                    description: str = "") -> PromptTemplate:
    """A user's template, checked for syntax and forbidden tags now rather than at the first row."""
    compile_part(prompt, "prompt")
    compile_part(response or "{{ output }}", "response")
    return PromptTemplate(name, description, prompt=prompt, response=response or "{{ output }}")


# --- tokenization with loss masks ------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _bos(tokenizer: Any) -> tuple[int, ...]:
    """[bos] when the tokenizer adds one by itself (Llama 2 does, SmolLM2 does not)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return ()
    with_special = tokenizer("a")["input_ids"]
    adds = with_special[:1] == [bos] and tokenizer("a", add_special_tokens=False)["input_ids"][:1] != [bos]
    return (bos,) if adds else ()


def _cut(input_ids: list[int], labels: list[int], max_length: int) -> dict:
    """The row format of `chat.tokenize_chat`: ids and labels cut to `max_length`, with counts."""
    labels = labels[:max_length]
    return {"input_ids": input_ids[:max_length], "labels": labels, "truncated": len(input_ids) > max_length,
            "n_loss_tokens": sum(label != IGNORE_INDEX for label in labels)}


def tokenize_text_pair(tokenizer: Any, prompt: str, response: str, max_length: int, train_on_prompt: bool = False,
                       add_eos: bool = True) -> dict:
    """Ids and labels for prompt + response; only the response (and eos) count unless `train_on_prompt`.

    The parts are tokenized separately and concatenated so the loss boundary is exactly the prompt's
    end, the same split the playground sees when it feeds the prompt alone.
    """
    prompt_ids = [*_bos(tokenizer)] + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    eos = getattr(tokenizer, "eos_token_id", None)
    if add_eos and eos is not None and response_ids[-1:] != [eos]:
        response_ids.append(eos)
    input_ids = prompt_ids + response_ids
    labels = (list(prompt_ids) if train_on_prompt else [IGNORE_INDEX] * len(prompt_ids)) + response_ids
    return _cut(input_ids, labels, max_length)


def _last_turn_segments(tokenizer: Any, messages: list[dict], train_on_prompt: bool) -> list[tuple[str, bool]]:
    """chat_segments with every assistant turn but the last moved to the prompt side."""
    segments = chat.chat_segments(tokenizer, messages)
    last = max((i for i, (_, counts) in enumerate(segments) if counts), default=-1)
    return [(text, train_on_prompt or i == last) for i, (text, _) in enumerate(segments)]


def tokenize_rendered(tokenizer: Any, rendered: dict, max_length: int, train_on_prompt: bool = False,
                      multi_turn: str = "all") -> dict:
    """Tokenize the output of `render_example`; `multi_turn="last"` learns only the final assistant turn."""
    if "messages" not in rendered:
        return tokenize_text_pair(tokenizer, rendered["prompt"], rendered["response"], max_length, train_on_prompt)
    if multi_turn == "all":
        return chat.tokenize_chat(tokenizer, rendered["messages"], max_length, train_on_prompt)
    if multi_turn != "last":
        raise StudioError(f"'data.multi_turn' is '{multi_turn}'; use 'all' or 'last'.", field="data.multi_turn",
                          key="data.templates.multi_turn", value=multi_turn)
    input_ids: list[int] = []
    labels: list[int] = []
    for text, counts in _last_turn_segments(tokenizer, rendered["messages"], train_on_prompt):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        input_ids += ids
        labels += ids if counts else [IGNORE_INDEX] * len(ids)
    return _cut(input_ids, labels, max_length)


def preview_spans(tokenizer: Any, rendered: dict, max_length: int | None = None, train_on_prompt: bool = False,
                  multi_turn: str = "all") -> list[tuple[str, bool]]:
    """(text, counts_for_loss) spans exactly as the trainer sees them, for the highlighted preview."""
    if "messages" in rendered and multi_turn == "all":
        return chat.render_preview(tokenizer, rendered["messages"], max_length, train_on_prompt)
    row = tokenize_rendered(tokenizer, rendered, max_length or 10**9, train_on_prompt, multi_turn)
    spans: list[tuple[str, bool]] = []
    start = 0
    for i in range(1, len(row["labels"]) + 1):
        # Group runs of tokens with the same mask; each run was tokenized from one piece of text.
        if i == len(row["labels"]) or (row["labels"][i] != IGNORE_INDEX) != (row["labels"][start] != IGNORE_INDEX):
            text = tokenizer.decode(row["input_ids"][start:i], clean_up_tokenization_spaces=False)
            spans.append((text, row["labels"][start] != IGNORE_INDEX))
            start = i
    return spans
