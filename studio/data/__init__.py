"""Training data: loading examples (`loaders`), the built-in sample and its answer format (`sample`), and
turning chat examples into token ids with loss masks (`chat`).

Importing this package is cheap: nothing here imports torch or transformers; the tokenizer is
always passed in by the caller.
"""
from studio.data.chat import (IGNORE_INDEX, chat_segments, render_preview, render_prompt, tokenize_chat,
                              tokenize_examples, with_system_prompt)
from studio.data.loaders import SAMPLES, Examples, load_examples, resolve_dataset, split_examples
from studio.data.store import dataset_names, import_file
from studio.data.sample import SAMPLE_NAME, card_problems, format_score, is_card

__all__ = [
    "IGNORE_INDEX", "dataset_names", "import_file", "SAMPLES", "SAMPLE_NAME", "Examples", "card_problems", "chat_segments", "format_score",
    "is_card", "load_examples", "render_preview", "render_prompt", "resolve_dataset", "split_examples",
    "tokenize_chat", "tokenize_examples", "with_system_prompt",
]
