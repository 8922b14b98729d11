"""Chat examples -> token ids with loss masks: the heart of supervised fine-tuning correctness.

`tokenize_chat` renders a conversation with the model's own chat template and marks which tokens
the model learns to predict: the content of every assistant turn plus the token that ends the
turn (`<|im_end|>` for SmolLM2), never the prompt, the system message or the assistant header
(`<|im_start|>assistant\\n`). It finds those spans by rendering growing prefixes of the
conversation (messages[:i] with and without the generation prompt) instead of searching strings,
checks that the pieces add up to the full render, and tokenizes piece by piece so that the answer
starts exactly where generation starts in the playground. `render_prompt` is what the playground
feeds the model, `render_preview` what a UI shows. Reading files is `studio.data.loaders`' job;
batching and padding are the trainer's.

System prompt: `with_system_prompt` puts `system_prompt` first unless the example brings its own
system message. With no system message at all, the template's default applies (SmolLM2 adds
"You are a helpful AI assistant named SmolLM, trained by Hugging Face"); training and the
playground both go through this module, so they always see the same prompt.
"""
from __future__ import annotations

from typing import Any, Iterable

from studio.errors import StudioError

IGNORE_INDEX = -100


def with_system_prompt(messages: list[dict], system_prompt: str = "") -> list[dict]:
    """The messages to render: `system_prompt` prepended unless the example has its own system turn."""
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    if system_prompt and (not msgs or msgs[0]["role"] != "system"):
        msgs.insert(0, {"role": "system", "content": system_prompt})
    return msgs


def _render(tokenizer: Any, messages: list[dict], add_generation_prompt: bool = False) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise StudioError("This model's tokenizer has no chat template, so 'data.template: chat' cannot render "
                          "examples; pick an instruct/chat model.", field="data.template",
                          key="data.chat.no_template")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def render_prompt(tokenizer: Any, messages: list[dict], system_prompt: str = "") -> str:
    """The text a model continues to answer `messages` (generation prompt included): the playground's input."""
    return _render(tokenizer, with_system_prompt(messages, system_prompt), add_generation_prompt=True)


def _end_of_answer(tokenizer: Any, answer: str, content: str) -> tuple[int, int]:
    """(start, end) of the part of an assistant turn's render that is learnt: content + end-of-turn token.

    What follows the end-of-turn token (SmolLM2's newline) belongs to the next turn's prompt:
    generation stops at the end token, so the model never has to produce it.
    """
    start = answer.find(content) if content else 0
    if start < 0:  # templates that strip or trim the content
        start = max(answer.find(content.strip()), 0)
        content = content.strip()
    after = start + len(content)
    tail = answer[after:]
    specials = [t for t in getattr(tokenizer, "all_special_tokens", []) if t]
    hits = [(tail.find(t), len(t)) for t in specials if tail.find(t) >= 0]
    if hits:
        pos, length = min(hits)
        return start, after + pos + length
    return start, after + len(tail.rstrip())


def chat_segments(tokenizer: Any, messages: list[dict], train_on_prompt: bool = False,
                  system_prompt: str = "") -> list[tuple[str, bool]]:
    """Split the full render into consecutive (text, counts_for_loss) pieces whose concatenation is the render."""
    msgs = with_system_prompt(messages, system_prompt)
    full = _render(tokenizer, msgs)
    segments: list[tuple[str, bool]] = []
    pos = 0
    for i, message in enumerate(msgs):
        if message["role"] != "assistant":
            continue
        head = _render(tokenizer, msgs[:i], add_generation_prompt=True)
        upto = _render(tokenizer, msgs[: i + 1])
        # A template whose prefixes are not prefixes of the whole (e.g. one that rewrites earlier turns)
        # cannot be masked this way; refuse rather than train on misplaced labels.
        if not (upto.startswith(head) and full.startswith(upto) and len(head) >= pos):
            raise StudioError("This model's chat template renders a conversation differently from its parts, so "
                              "the answers cannot be located for the loss; set 'data.train_on_prompt: true' or "
                              "use another model.", field="data.template", key="data.chat.unmaskable")
        answer = upto[len(head):]
        start, end = _end_of_answer(tokenizer, answer, message["content"])
        segments.append((full[pos:len(head) + start], False))
        segments.append((answer[start:end], True))
        pos = len(head) + end
    segments.append((full[pos:], False))
    segments = [(text, train_on_prompt or counts) for text, counts in segments if text]
    assert "".join(text for text, _ in segments) == full, "chat segments must add up to the full render"
    return segments


def tokenize_chat(tokenizer: Any, messages: list[dict], max_length: int, train_on_prompt: bool = False,
                  system_prompt: str = "") -> dict:
    """Token ids and labels (-100 where the loss ignores a token) for one conversation, cut to `max_length`.

    Returns {"input_ids", "labels", "n_loss_tokens", "truncated"}. An example whose answers all fall
    beyond `max_length` has n_loss_tokens == 0 and teaches nothing; callers drop it.
    """
    input_ids: list[int] = []
    labels: list[int] = []
    for text, counts in chat_segments(tokenizer, messages, train_on_prompt, system_prompt):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        input_ids += ids
        labels += ids if counts else [IGNORE_INDEX] * len(ids)
    truncated = len(input_ids) > max_length
    input_ids, labels = input_ids[:max_length], labels[:max_length]
    return {"input_ids": input_ids, "labels": labels,
            "n_loss_tokens": sum(label != IGNORE_INDEX for label in labels), "truncated": truncated}


def tokenize_examples(tokenizer: Any, examples: Iterable[dict], max_length: int, train_on_prompt: bool = False,
                      system_prompt: str = "") -> tuple[list[dict], dict]:
    """Tokenize many chat examples; drops those left with no loss token. Returns (rows, stats)."""
    rows, truncated, dropped = [], 0, 0
    for example in examples:
        row = tokenize_chat(tokenizer, example["messages"], max_length, train_on_prompt, system_prompt)
        truncated += row["truncated"]
        if row["n_loss_tokens"] == 0:
            dropped += 1
            continue
        rows.append({"input_ids": row["input_ids"], "labels": row["labels"]})
    return rows, {"examples": len(rows), "truncated": truncated, "dropped": dropped}


def render_preview(tokenizer: Any, messages: list[dict], max_length: int | None = None,
                   train_on_prompt: bool = False, system_prompt: str = "") -> list[tuple[str, bool]]:
    """(text, counts_for_loss) spans as the trainer sees them, cut at `max_length` tokens when given."""
    spans: list[tuple[str, bool]] = []
    budget = max_length if max_length is not None else float("inf")
    for text, counts in chat_segments(tokenizer, messages, train_on_prompt, system_prompt):
        if budget <= 0:
            break
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > budget:
            text = tokenizer.decode(ids[: int(budget)])
        budget -= len(ids)
        if spans and spans[-1][1] == counts:
            spans[-1] = (spans[-1][0] + text, counts)
        else:
            spans.append((text, counts))
    return spans
