"""An AI judge (RLAIF): a model scores each candidate answer against a written rubric, and its ranking
becomes a suggestion that annotators accept or override.

The score of an answer is the judge's probability of " Yes" rather than " No" as the next token after
a prompt holding the rubric, the user's prompt (and its system prompt) and the answer, ending
"Does this answer follow the rubric? Answer Yes or No.\\nAnswer:". When the judge has a chat template
that text is the user turn and the assistant turn is pre-filled with "Answer:", so the same two tokens
are compared either way. One forward pass per answer; the two logits go through a log-softmax, so
P(Yes) + P(No) = 1 whatever mass the rest of the vocabulary had. Candidates are ranked by that score,
best first; equal scores (identical answers) tie.

A judge is only as good as the model behind it: a 135M model barely reads a rubric, so its rankings are
close to noise and good for trying the mechanics only; a judge in the billions of parameters, or a run
fine-tuned for judging, is needed for useful suggestions. Either way they stay suggestions: only the
annotators' rankings are exported, and `PrefService.agreement` reports how often the judge agreed with
them. Running the judge over a task set (a background job) is the service's job.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from studio.prefs.consensus import groups_from_scores
from studio.prefs.ranking import Ranking

QUESTION = "Does this answer follow the rubric? Answer Yes or No."
ANSWER_CUE = "Answer:"
YES, NO = " Yes", " No"


def judge_text(rubric: str, prompt: str, answer: str, system: str = "") -> str:
    """The judge's question about one answer, without the final answer cue."""
    context = f"System prompt given to the assistant:\n{system.strip()}\n\n" if system.strip() else ""
    return (f"You judge answers against a rubric.\n\nRubric:\n{rubric.strip()}\n\n{context}"
            f"User prompt:\n{prompt.strip()}\n\nCandidate answer:\n{answer.strip()}\n\n{QUESTION}")


def judge_prompt(tokenizer: Any, rubric: str, prompt: str, answer: str, system: str = "") -> str:
    """The full text the judge reads, its chat template applied when it has one, ending with the answer cue."""
    text = judge_text(rubric, prompt, answer, system)
    if getattr(tokenizer, "chat_template", None):
        head = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
        return head + ANSWER_CUE
    return f"{text}\n{ANSWER_CUE}"


def yes_no_ids(tokenizer: Any) -> tuple[int, int]:
    """The token ids that start " Yes" and " No"."""
    yes = tokenizer(YES, add_special_tokens=False)["input_ids"]
    no = tokenizer(NO, add_special_tokens=False)["input_ids"]
    if not yes or not no or yes[0] == no[0]:
        raise ValueError("the judge's tokenizer does not tell ' Yes' from ' No' by their first token")
    return yes[0], no[0]


def score_answers(model: Any, tokenizer: Any, rubric: str, prompt: str, answers: Sequence[str],
                  system: str = "") -> list[float]:
    """P(Yes) of each answer (between 0 and 1; see the module docstring). Runs the model, so call it where the
    app runs inference, holding the model's lock."""
    import torch

    yes, no = yes_no_ids(tokenizer)
    device = next(model.parameters()).device
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    scores = []
    with torch.inference_mode():
        for answer in answers:
            ids = tokenizer(judge_prompt(tokenizer, rubric, prompt, answer, system), add_special_tokens=False,
                            return_tensors="pt")["input_ids"]
            if limit and ids.shape[1] > limit:
                ids = ids[:, -limit:]  # keep the end: the answer and the question about it
            logits = model(input_ids=ids.to(device)).logits[0, -1].float()
            pair = torch.log_softmax(torch.stack([logits[yes], logits[no]]), dim=0)
            scores.append(float(math.exp(pair[0].item())))
    return scores


def ranking_from_scores(scores: Sequence[float]) -> Ranking:
    """Tie groups of candidate indices, highest score first; equal scores tie."""
    return groups_from_scores([-s for s in scores])
