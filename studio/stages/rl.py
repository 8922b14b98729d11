"""Reinforcement learning from a reward (GRPO): the policy writes answers, a reward scores them, it learns.

For each prompt of the recipe's data the policy samples `rl.num_generations` answers; each answer's
advantage is its reward relative to the others for the same prompt (TRL's GRPOTrainer, the method of
DeepSeekMath; TRL 1.x also has RLOO, GRPO is used here). The reward is a finished `reward` run of
this studio (`run:<id>`, scored as text, so its tokenizer may differ from the policy's) or a rule the
user picks: `length`, `regex` or `keyword` (`studio.stages.rl_rewards`). `rl.beta` is the KL
coefficient: the price of drifting from the starting model, the guard against reward hacking. The
reference is the adapter-disabled base for peft methods and, for full fine-tuning, a second copy of
the starting model that TRL loads (only when beta > 0). GRPOTrainer logs reward, reward_std,
rewards/<name>/mean, kl (when beta > 0), completions/mean_length and entropy; evaluations generate
for the held-out prompts and log the same names with eval_.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from studio.errors import StudioError
from studio.models.refs import has_result, parse
from studio.settings import setting
from studio.stages.base import STAGES, Stage, TrainContext
from studio.stages.rl_rewards import parse_keywords

RULES = ("length", "regex", "keyword")
REPORTED = ("reward", "eval_reward", "kl", "completions/mean_length")


@dataclass
class RlConfig:
    """What earns reward, and how far the policy may move from where it started."""

    reward: str = setting("length", help="What the answers are rewarded for: 'run:<run id>' for a finished reward "
                          "model run of this studio (it scores every answer), or a rule: 'length' (answers close to "
                          "target_words words), 'regex' (1 when the answer matches pattern) or 'keyword' (the share "
                          "of keywords the answer contains).")
    target_words: int = setting(50, help="For the 'length' rule: the answer length in words that earns the full "
                                "reward; the reward falls to 0 at no words or twice as many.", min=1, max=100000)
    pattern: str = setting("", help="For the 'regex' rule: a Python regular expression; an answer containing a "
                           "match earns 1, any other 0.")
    keywords: str = setting("", help="For the 'keyword' rule: comma-separated words or phrases; an answer earns the "
                            "share of them it contains (case is ignored).")
    beta: float = setting(0.04, help="KL coefficient: what the policy pays for drifting from the model it started as. "
                          "A reward is only a stand-in for what you want, and a policy pushed hard enough finds "
                          "answers that score high but are worse: padding to hit a length, repeating the keywords, "
                          "odd text a reward model happens to like. That is reward hacking. A beta above 0 keeps the "
                          "policy near its original, sensible behaviour: raise it when the reward climbs while the "
                          "answers get worse, lower it when the reward hardly moves. 0 takes the brake off.",
                          min=0.0, max=10.0)
    num_generations: int = setting(4, help="Answers sampled for each prompt; each is judged against the others for "
                                   "the same prompt, so at least 2. It must divide train.batch_size.", min=2, max=64)
    max_completion_length: int = setting(128, help="Longest answer the policy writes during training, in tokens.",
                                         min=1, max=32768)
    temperature: float = setting(1.0, help="Sampling temperature of the answers: higher tries more varied answers.",
                                 gt=0.0, max=5.0)

    def __post_init__(self):
        reward = self.reward.strip()
        if reward not in RULES and not parse(reward).is_run:
            raise StudioError(f"'rl.reward' is '{self.reward}'; use 'length', 'regex', 'keyword' or 'run:<run id>' of "
                              "a finished reward run.", field="rl.reward", key="stage.rl.unknown_reward",
                              reward=self.reward)
        if reward == "regex":
            if not self.pattern:
                raise StudioError("'rl.pattern' is empty; the 'regex' reward needs a regular expression to match.",
                                  field="rl.pattern", key="stage.rl.no_pattern")
            try:
                re.compile(self.pattern)
            except re.error as error:
                raise StudioError(f"'rl.pattern' is not a valid regular expression ({error}); fix it.",
                                  field="rl.pattern", key="stage.rl.bad_pattern", reason=str(error)) from None
        if reward == "keyword" and not parse_keywords(self.keywords):
            raise StudioError("'rl.keywords' is empty; the 'keyword' reward needs comma-separated keywords.",
                              field="rl.keywords", key="stage.rl.no_keywords")


def reward_run(spec: str, ws) -> dict:
    """The finished reward run that `rl.reward` names, or a StudioError saying why it cannot score."""
    run_id = parse(spec).run_id
    run = ws.get_run(run_id)
    if run is None:
        raise StudioError(f"'rl.reward' names run '{run_id}', which does not exist; pick a completed reward run.",
                          field="rl.reward", key="stage.rl.no_run", run_id=run_id)
    if run["stage"] != "reward":
        raise StudioError(f"'rl.reward' names run '{run_id}', a {run['stage']} run; only a reward run scores "
                          "answers: pick one, or a rule such as 'length'.", field="rl.reward",
                          key="stage.rl.not_reward_run", run_id=run_id, stage=run["stage"])
    if not has_result(run):
        raise StudioError(f"'rl.reward' names run '{run_id}', which is {run['status']} without a saved result; "
                          "pick a completed reward run.", field="rl.reward", key="stage.rl.run_not_completed",
                          run_id=run_id, status=run["status"])
    return run


def reward_function(settings: RlConfig, ws, policy_tokenizer, emit):
    """(reward function, reward tokenizer or None): the rule, or the reward run's model ready to score."""
    from studio.stages import rl_rewards

    reward = settings.reward.strip()
    if reward == "length":
        return rl_rewards.length_reward(settings.target_words), None
    if reward == "regex":
        return rl_rewards.regex_reward(settings.pattern), None
    if reward == "keyword":
        return rl_rewards.keyword_reward(rl_rewards.parse_keywords(settings.keywords)), None
    from studio.stages.reward import load_reward_model

    run = reward_run(reward, ws)
    model, tokenizer, max_length = load_reward_model(run, ws)
    if tokenizer.get_vocab() != policy_tokenizer.get_vocab():
        emit({"type": "log", "message": f"Reward run {run['id']} uses another tokenizer than the policy: answers are "
                                        "decoded to text and re-encoded with the reward model's tokenizer"})
    return rl_rewards.reward_model_reward(model, tokenizer, max_length), tokenizer


def prompt_datasets(recipe, ws, tokenizer, reward_tokenizer, emit):
    """The prompts as GRPO rows; with a reward model, each also in the reward model's own style."""
    from studio.stages.preference_data import load_prompts, prompt_row, rows_dataset

    train, val = load_prompts(recipe, ws, "rl")
    system = recipe.data.system_prompt

    def rows(records):
        out = []
        for record in records:
            row = prompt_row(record, tokenizer, system)
            if reward_tokenizer is not None:
                row["reward_prompt"] = prompt_row(record, reward_tokenizer, system)["prompt"]
            out.append(row)
        return rows_dataset(out)

    return rows(train), rows(val)


@STAGES.register("rl")
class ReinforcementLearning(Stage):
    title = "Reinforcement learning from a reward (GRPO)"
    summary = "The model writes answers, a reward model or a rule scores them, and it learns to earn more."
    settings_cls = RlConfig
    generates = True

    @classmethod
    def check_data(cls, recipe, ws) -> None:
        from studio.stages.preference_data import load_prompts

        settings = cls.settings(recipe)
        if recipe.train.batch_size % settings.num_generations:
            raise StudioError(f"'rl.num_generations' ({settings.num_generations}) must divide 'train.batch_size' "
                              f"({recipe.train.batch_size}): a batch holds whole groups of answers to one prompt; "
                              "make the batch size a multiple of it.", field="rl.num_generations",
                              key="stage.rl.batch_groups", generations=settings.num_generations,
                              batch_size=recipe.train.batch_size)
        if parse(settings.reward).is_run:
            reward_run(settings.reward.strip(), ws)
        load_prompts(recipe, ws, "rl")

    @classmethod
    def run(cls, ctx: TrainContext) -> dict:
        from trl import GRPOConfig, GRPOTrainer

        from studio.models.loading import load_tokenizer
        from studio.stages.preference_training import train_policy
        from studio.workspace import Workspace

        recipe = ctx.recipe
        settings = cls.settings(recipe)
        ws = Workspace.open(ctx.home)
        reward, reward_tokenizer = reward_function(
            settings, ws, load_tokenizer(recipe.model, ws, recipe.trust_remote_code), ctx.emit)
        ctx.emit({"type": "log", "message": f"GRPO against the '{settings.reward}' reward, {settings.num_generations} "
                                            f"answers per prompt, KL coefficient beta={settings.beta}"})

        def build(recipe, ws, tokenizer, emit):
            return prompt_datasets(recipe, ws, tokenizer, reward_tokenizer, emit)

        def trainer(**kwargs):
            return GRPOTrainer(reward_funcs=[reward], **kwargs)

        return train_policy(ctx, build, trainer, GRPOConfig,
                            {"beta": settings.beta, "num_generations": settings.num_generations,
                             "max_completion_length": settings.max_completion_length,
                             "temperature": settings.temperature,
                             # GRPO counts prompt and answer tokens itself
                             "include_num_input_tokens_seen": "no"}, reference=False, report=REPORTED)
