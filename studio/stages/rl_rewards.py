"""What the `rl` stage rewards: simple rules on the answer's text, or a finished reward-model run.

Every reward is a function `f(prompts, completions, **columns) -> list[float]`, the shape TRL's
GRPOTrainer calls, named for the metrics it logs (rewards/<name>/mean):
- `length`: 1 for an answer of `target_words` words, falling linearly to 0 at zero or twice that;
- `regex`: 1 when the answer contains a match of the pattern, else 0;
- `keyword`: the share of the keywords the answer contains (case ignored);
- `reward_model`: the score of a studio reward run. Answers reach it as text: the policy's tokens are
  decoded, and the text is re-encoded with the reward model's own tokenizer and chat template (the
  prompt as the reward model saw prompts in training travels in the `reward_prompt` column). So a
  reward model built on another tokenizer than the policy's works; nothing is compared token by token.
Parsing the user's settings and checking them is `studio.stages.rl`'s job.
"""
from __future__ import annotations

import re
from typing import Callable


def answer_text(completion) -> str:
    """A completion's text: TRL gives a string, or a list of turns for conversational prompts."""
    if isinstance(completion, str):
        return completion
    return "".join(turn.get("content") or "" for turn in completion if turn.get("role") == "assistant")


def _named(name: str, fn: Callable) -> Callable:
    fn.__name__ = name
    return fn


def length_reward(target_words: int) -> Callable:
    def score(completions, **_):
        return [max(0.0, 1.0 - abs(len(answer_text(c).split()) - target_words) / target_words) for c in completions]

    return _named("length", score)


def regex_reward(pattern: str) -> Callable:
    compiled = re.compile(pattern)

    def score(completions, **_):
        return [1.0 if compiled.search(answer_text(c)) else 0.0 for c in completions]

    return _named("regex", score)


def parse_keywords(text: str) -> list[str]:
    return [k.strip().lower() for k in text.split(",") if k.strip()]


def keyword_reward(keywords: list[str]) -> Callable:
    def score(completions, **_):
        texts = [answer_text(c).lower() for c in completions]
        return [sum(k in t for k in keywords) / len(keywords) for t in texts]

    return _named("keyword", score)


def reward_model_reward(model, tokenizer, max_length: int, batch_size: int = 8) -> Callable:
    """Scores with a reward model; needs the `reward_prompt` column (the prompt in the reward model's style)."""
    import torch

    from studio.stages.preference_data import answer_of
    from studio.stages.reward import score_texts

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)

    def score(completions, reward_prompt, **_):
        answers = [answer_of(answer_text(c), tokenizer) for c in completions]
        return score_texts(model, tokenizer, list(reward_prompt), answers, max_length, batch_size)

    return _named("reward_model", score)
