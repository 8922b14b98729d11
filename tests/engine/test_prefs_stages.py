"""The stages that learn from preferences (reward, dpo, kto, orpo, rl) on a tiny random Llama with the real
SmolLM2 tokenizer: each trains a few steps with LoRA and with full fine-tuning, logs its own metrics in the
progress events (what metrics.jsonl holds), saves a result; bad data and bad settings are refused before a run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.config import parse_recipe
from studio.errors import StudioError
from studio.jobs.runfiles import append_metrics
from studio.methods import METHODS
from studio.methods.base import PREFERENCE_STAGES
from studio.training import prepare_run
from studio.workspace import read_metrics

from tests.engine.test_training import run_in_process

FACTS = [("What is the capital of France?", "Paris is the capital of France."),
         ("How many legs does a spider have?", "A spider has eight legs."),
         ("What colour is the sky on a clear day?", "The sky is blue on a clear day."),
         ("What do bees make?", "Bees make honey."),
         ("How many days are in a week?", "A week has seven days."),
         ("What is frozen water called?", "Frozen water is called ice."),
         ("Which planet do we live on?", "We live on Earth."),
         ("What gas do plants take in?", "Plants take in carbon dioxide."),
         ("How many hours are in a day?", "A day has twenty-four hours."),
         ("What is the opposite of hot?", "The opposite of hot is cold."),
         ("Which animal says moo?", "A cow says moo."),
         ("What do you call a baby cat?", "A baby cat is called a kitten.")]


def pair(question: str, answer: str) -> dict:
    """The chosen answer is friendly, the rejected one says the same thing rudely."""
    return {"prompt": question, "chosen": f"Great question! {answer} Hope that helps!",
            "rejected": f"Ugh. {answer} Figure it out yourself."}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("prefs") / "pairs.jsonl", [pair(q, a) for q, a in FACTS])


@pytest.fixture(scope="module")
def feedback_file(tmp_path_factory) -> Path:
    rows = [{"prompt": r["prompt"], "completion": r[side], "label": side == "chosen"}
            for r in (pair(q, a) for q, a in FACTS) for side in ("chosen", "rejected")]
    return write_jsonl(tmp_path_factory.mktemp("feedback") / "feedback.jsonl", rows)


def prefs_recipe(model_dir, stage: str, dataset, method: str = "lora", section: dict | None = None,
                 validation: float = 0.25, **train):
    return parse_recipe({
        "name": f"{stage}-{method}", "model": str(model_dir), "stage": stage, "method": {"name": method},
        **({stage: section} if section is not None else {}),
        "data": {"dataset": str(dataset), "max_length": 64, "validation": validation},
        "train": {"max_steps": 2, "batch_size": 4, "lr": 5e-3, "eval_every": 2, "save_every": 2,
                  "precision": "fp32", **train},
    })


def metrics_file(ws, run_id: str, events: list[dict]) -> list[dict]:
    """The run's metrics.jsonl as the job supervisor writes it (progress events with a step), read back."""
    run_dir = Path(ws.get_run(run_id)["run_dir"])
    append_metrics(run_dir, [{k: v for k, v in e.items() if k != "type"} for e in events
                             if e.get("type") == "progress" and "step" in e])
    return read_metrics(run_dir)


def keys_logged(events: list[dict]) -> set[str]:
    return {k for e in events for k in e}


# (stage, data fixture, settings section, metrics its training steps log, metrics its evaluations log)
POLICY_STAGES = {
    "dpo": ("pairs_file", {"beta": 0.1, "loss_type": "sigmoid"},
            {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"},
            {"eval_rewards/margins", "eval_rewards/accuracies"}),
    "kto": ("feedback_file", {"beta": 0.1}, {"rewards/chosen", "rewards/rejected", "kl"}, {"eval_loss"}),
    "orpo": ("pairs_file", {"beta": 0.1}, {"rewards/chosen", "rewards/rejected", "rewards/margins",
                                           "rewards/accuracies", "log_odds_ratio"}, {"eval_rewards/accuracies"}),
}


@pytest.mark.parametrize("method", ["lora", "full"])
@pytest.mark.parametrize("stage", list(POLICY_STAGES))
def test_each_preference_stage_trains_logs_its_metrics_and_saves(stage, method, request, workspace, tiny_llama_dir):
    data, section, train_keys, eval_keys = POLICY_STAGES[stage]
    recipe = prefs_recipe(tiny_llama_dir, stage, request.getfixturevalue(data), method, section)
    run_id, events, result = run_in_process(workspace, recipe)
    steps = [e for e in events if "loss" in e]
    assert [e["step"] for e in steps][-1] == 2 and all(e["loss"] == e["loss"] for e in steps)
    logged = keys_logged(metrics_file(workspace, run_id, events))
    assert train_keys <= logged and eval_keys <= logged, sorted(logged)
    result_dir = Path(result["result_dir"])
    assert not result["stopped"] and result_dir.name == ("model" if method == "full" else "adapter")
    assert not (result_dir / "ref").exists()  # TRL's frozen reference adapter is not part of the result


def test_lora_dpo_trains_the_adapter_against_the_disabled_base(workspace, tiny_llama_dir, pairs_file):
    from safetensors.torch import load_file

    _, events, result = run_in_process(workspace, prefs_recipe(tiny_llama_dir, "dpo", pairs_file, max_steps=3))
    weights = load_file(Path(result["result_dir"]) / "adapter_model.safetensors")
    assert all(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)  # B starts at 0: every one moved
    first = next(e for e in events if "rewards/margins" in e)
    # At step 1 the adapter is still zero, so policy == reference and every reward is exactly 0.
    assert first["rewards/chosen"] == pytest.approx(0.0, abs=1e-6)
    assert first["rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    assert any(e.get("message", "").startswith("DPO with the sigmoid loss") for e in events)
    assert any("rewards/margins" in e.get("message", "") for e in events)  # train.log shows the margin too


@pytest.mark.parametrize("loss_type", ["ipo", "hinge"])
def test_dpo_loss_variants_train(loss_type, workspace, tiny_llama_dir, pairs_file):
    _, events, result = run_in_process(workspace, prefs_recipe(tiny_llama_dir, "dpo", pairs_file,
                                                               section={"loss_type": loss_type, "beta": 0.5},
                                                               max_steps=1, eval_every=10, save_every=10))
    assert result["result_dir"] and any("rewards/margins" in e for e in events)


def test_kto_turns_each_pair_into_a_good_and_a_bad_answer(workspace, tiny_llama_dir, pairs_file):
    from studio.stages.preference_data import pairs_as_feedback

    rows = pairs_as_feedback([pair(q, a) for q, a in FACTS[:3]], seed=1)
    assert len(rows) == 6 and sum(r["label"] for r in rows) == 3
    assert {r["completion"] for r in rows if r["label"]} == {pair(q, a)["chosen"] for q, a in FACTS[:3]}
    _, events, result = run_in_process(workspace, prefs_recipe(tiny_llama_dir, "kto", pairs_file, max_steps=1,
                                                               eval_every=10, save_every=10))
    assert result["result_dir"] and any("pairs became one good and one bad answer" in e.get("message", "")
                                        for e in events)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_reward_model_reports_pairwise_accuracy_and_margin(method, workspace, tiny_llama_dir, pairs_file):
    from studio.stages.reward import load_reward_model, pair_scores

    run_id, events, result = run_in_process(workspace, prefs_recipe(tiny_llama_dir, "reward", pairs_file, method,
                                                                    max_steps=3))
    logged = keys_logged(metrics_file(workspace, run_id, events))
    assert {"accuracy", "margin", "rewards/chosen", "rewards/rejected", "eval_accuracy", "eval_margin"} <= logged
    assert 0.0 <= result["eval_accuracy"] <= 1.0 and result["eval_pairs"] == 3
    assert json.loads((Path(result["result_dir"]) / "labels.json").read_text())["labels"] == ["reward"]
    # The saved result reloads and scores the held-out pairs exactly as the run reported.
    workspace.update_run(run_id, status="completed", result_dir=result["result_dir"])  # what the manager does
    model, tok, max_length = load_reward_model(workspace.get_run(run_id), workspace)
    from studio.stages.preference_data import load_preference_records, pair_row

    held_out = load_preference_records(prefs_recipe(tiny_llama_dir, "reward", pairs_file), workspace,
                                       ("preference",), "reward").validation
    again = pair_scores(model, tok, [pair_row(r, tok) for r in held_out], max_length)
    assert again["accuracy"] == result["eval_accuracy"]
    assert again["margin"] == pytest.approx(result["eval_margin"], abs=1e-4)


def test_rl_with_a_rule_reward_logs_reward_and_kl(workspace, tiny_llama_dir, pairs_file):
    recipe = prefs_recipe(tiny_llama_dir, "rl", pairs_file, section={
        "reward": "keyword", "keywords": "great, helps", "num_generations": 2, "max_completion_length": 8,
        "beta": 0.04})
    run_id, events, result = run_in_process(workspace, recipe)
    logged = keys_logged(metrics_file(workspace, run_id, events))
    assert {"reward", "reward_std", "kl", "rewards/keyword/mean", "completions/mean_length",
            "eval_reward"} <= logged, sorted(logged)
    assert result["result_dir"] and 0.0 <= result["reward"] <= 1.0


def test_rl_full_fine_tuning_keeps_a_reference_copy(workspace, tiny_llama_dir, pairs_file):
    recipe = prefs_recipe(tiny_llama_dir, "rl", pairs_file, "full", {"reward": "length", "target_words": 5,
                                                                     "num_generations": 4, "max_completion_length": 8},
                          max_steps=1, eval_every=10, save_every=10)
    _, events, result = run_in_process(workspace, recipe)
    assert result["result_dir"] and all(e["kl"] >= 0 for e in events if "kl" in e)


def test_rl_against_a_reward_run_on_another_tokenizer_scores_text(workspace, tiny_llama_dir, tiny_bert_dir,
                                                                  pairs_file):
    reward_id, _, done = run_in_process(workspace, prefs_recipe(tiny_bert_dir, "reward", pairs_file, max_steps=1,
                                                                eval_every=10, save_every=10))
    section = {"reward": f"run:{reward_id}", "num_generations": 2, "max_completion_length": 8}
    with pytest.raises(StudioError, match="pick a completed reward run"):  # still 'queued': no job manager here
        prepare_run(workspace, prefs_recipe(tiny_llama_dir, "rl", pairs_file, section=section))
    workspace.update_run(reward_id, status="completed", result_dir=done["result_dir"])
    run_id, events, result = run_in_process(workspace, prefs_recipe(tiny_llama_dir, "rl", pairs_file, section=section,
                                                                     max_steps=1, eval_every=10, save_every=10))
    assert any("uses another tokenizer than the policy" in e.get("message", "") for e in events)
    assert "rewards/reward_model/mean" in keys_logged(events) and result["result_dir"]


def test_rl_refuses_a_run_that_is_not_a_reward_model(workspace, tiny_llama_dir, pairs_file):
    dpo_id = prepare_run(workspace, prefs_recipe(tiny_llama_dir, "dpo", pairs_file))
    with pytest.raises(StudioError, match="only a reward run scores answers") as info:
        prepare_run(workspace, prefs_recipe(tiny_llama_dir, "rl", pairs_file, section={"reward": f"run:{dpo_id}"}))
    assert info.value.field == "rl.reward" and info.value.params["stage"] == "dpo"
    with pytest.raises(StudioError, match="does not exist"):
        prepare_run(workspace, prefs_recipe(tiny_llama_dir, "rl", pairs_file, section={"reward": "run:nope"}))


@pytest.mark.parametrize("stage", ["dpo", "reward", "orpo"])
def test_pairs_with_the_same_answer_twice_are_refused_with_their_count(stage, workspace, tiny_llama_dir, tmp_path):
    rows = [pair(q, a) for q, a in FACTS[:6]]
    rows[1]["rejected"] = rows[1]["chosen"]
    rows[4]["rejected"] = rows[4]["chosen"] + "  "
    bad = write_jsonl(tmp_path / "same.jsonl", rows)
    with pytest.raises(StudioError, match=r"has 2 pair\(s\) whose chosen and rejected answers are the same \(rows "
                                          r"2, 5\)") as info:
        prepare_run(workspace, prefs_recipe(tiny_llama_dir, stage, bad))
    assert info.value.field == "data.dataset" and info.value.params["count"] == 2
    assert workspace.list_runs() == []


@pytest.mark.parametrize("stage, needs", [("dpo", "prompt, chosen and rejected columns"),
                                          ("kto", "prompt, completion and label"),
                                          ("reward", "prompt, chosen and rejected columns")])
def test_data_in_the_wrong_format_names_the_columns_the_stage_needs(stage, needs, workspace, tiny_llama_dir):
    with pytest.raises(StudioError, match=needs) as info:
        prepare_run(workspace, prefs_recipe(tiny_llama_dir, stage, "sample-format-tutor"))
    assert info.value.field == "data.dataset" and "instruction" in info.value.params["columns"]


def test_studio_datasets_are_checked_by_their_format(workspace, tiny_llama_dir, pairs_file, feedback_file):
    from studio.data.builder import ImportRequest, import_dataset

    import_dataset(workspace, ImportRequest(source=str(pairs_file), name="prefs"))
    import_dataset(workspace, ImportRequest(source=str(feedback_file), name="judged"))
    prepare_run(workspace, prefs_recipe(tiny_llama_dir, "dpo", "prefs"))
    prepare_run(workspace, prefs_recipe(tiny_llama_dir, "kto", "prefs"))  # pairs are fine for KTO too
    with pytest.raises(StudioError, match="holds feedback data; the dpo stage needs prompt, chosen and rejected "
                                          "columns") as info:
        prepare_run(workspace, prefs_recipe(tiny_llama_dir, "dpo", "judged"))
    assert info.value.field == "data.dataset" and len(workspace.list_runs()) == 2


@pytest.mark.parametrize("section, train, field, match", [
    ({"reward": "length", "num_generations": 3}, {}, "rl.num_generations", "must divide 'train.batch_size' \\(4\\)"),
    ({"reward": "regex", "pattern": "(unclosed"}, {}, "rl.pattern", "not a valid regular expression"),
    ({"reward": "regex"}, {}, "rl.pattern", "needs a regular expression"),
    ({"reward": "keyword", "keywords": " , "}, {}, "rl.keywords", "needs comma-separated keywords"),
    ({"reward": "vibes"}, {}, "rl.reward", "use 'length', 'regex', 'keyword' or 'run:<run id>'"),
])
def test_bad_rl_settings_are_refused_before_a_run(section, train, field, match, workspace, tiny_llama_dir, pairs_file):
    with pytest.raises(StudioError, match=match) as info:
        prepare_run(workspace, prefs_recipe(tiny_llama_dir, "rl", pairs_file, section=section, **train))
    assert info.value.field == field and workspace.list_runs() == []


def test_bad_dpo_and_kto_settings_are_refused(workspace, tiny_llama_dir, pairs_file, feedback_file):
    with pytest.raises(StudioError, match="choose one of sigmoid, ipo, hinge") as info:
        prepare_run(workspace, prefs_recipe(tiny_llama_dir, "dpo", pairs_file, section={"loss_type": "exo_pair"}))
    assert info.value.field == "dpo.loss_type"
    with pytest.raises(StudioError, match="set it to 2 or more") as info:
        prepare_run(workspace, prefs_recipe(tiny_llama_dir, "kto", feedback_file, batch_size=1))
    assert info.value.field == "train.batch_size"


def test_rl_prompts_come_from_chat_files_pair_files_and_studio_datasets(workspace, tiny_llama_dir, pairs_file):
    from transformers import AutoTokenizer

    from studio.data.builder import ImportRequest, import_dataset
    from studio.stages.preference_data import load_prompts, prompt_row

    chat_train, _ = load_prompts(prefs_recipe(tiny_llama_dir, "rl", "sample-format-tutor"), workspace)
    assert all(p["messages"][-1]["role"] == "user" for p in chat_train)  # the conversation up to the answer
    train, val = load_prompts(prefs_recipe(tiny_llama_dir, "rl", pairs_file), workspace)
    assert (len(train), len(val)) == (9, 3) and {p["prompt"] for p in train + val} == {q for q, _ in FACTS}
    result = import_dataset(workspace, ImportRequest(source=str(pairs_file), name="asks"))
    train, val = load_prompts(prefs_recipe(tiny_llama_dir, "rl", "asks"), workspace)
    assert (len(train), len(val)) == (result.splits["train"], result.splits["validation"])  # its own split
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    assert prompt_row(train[0], tok, "Be brief.")["prompt"] == [{"role": "system", "content": "Be brief."},
                                                               {"role": "user", "content": train[0]["prompt"]}]


def test_rule_rewards_score_the_answer_text():
    from studio.stages.rl_rewards import keyword_reward, length_reward, regex_reward

    turns = [[{"role": "assistant", "content": "one two three four"}], [{"role": "assistant", "content": "x"}]]
    assert length_reward(4)(completions=turns) == [1.0, 0.25]
    assert length_reward(2)(completions=["a b c d e f"]) == [0.0]
    assert regex_reward(r"\d+")(completions=["it is 42", "none"]) == [1.0, 0.0]
    assert keyword_reward(["paris", "france"])(completions=["PARIS is lovely", "Paris, France"]) == [0.5, 1.0]
    assert [f.__name__ for f in (length_reward(1), regex_reward("a"), keyword_reward(["a"]))] == [
        "length", "regex", "keyword"]


MORE_FACTS = [("What is the largest ocean?", "The Pacific is the largest ocean."),
              ("How many continents are there?", "There are seven continents."),
              ("What do cows drink?", "Cows drink water."),
              ("What is the boiling point of water at sea level?", "Water boils at 100 degrees Celsius."),
              ("Which star is closest to Earth?", "The Sun is the closest star to Earth."),
              ("What colour are ripe bananas?", "Ripe bananas are yellow."),
              ("How many minutes are in an hour?", "An hour has sixty minutes."),
              ("What do caterpillars turn into?", "Caterpillars turn into butterflies or moths."),
              ("What is the tallest animal?", "The giraffe is the tallest animal."),
              ("Which season comes after winter?", "Spring comes after winter."),
              ("What instrument has black and white keys?", "The piano has black and white keys."),
              ("How many sides does a triangle have?", "A triangle has three sides."),
              ("What is the main language of Brazil?", "The main language of Brazil is Portuguese."),
              ("What do we call a group of wolves?", "A group of wolves is called a pack."),
              ("Which organ pumps blood?", "The heart pumps blood."),
              ("What is the freezing point of water?", "Water freezes at 0 degrees Celsius."),
              ("How many months are in a year?", "A year has twelve months."),
              ("What do pandas mostly eat?", "Pandas mostly eat bamboo."),
              ("Which metal is liquid at room temperature?", "Mercury is liquid at room temperature."),
              ("What shape is a stop sign?", "A stop sign is an octagon.")]


@pytest.mark.slow
def test_dpo_with_lora_raises_smollm2s_preference_for_the_chosen_style_on_held_out_pairs(workspace, tmp_path):
    """24 pairs whose chosen answer wraps the fact in a fixed frame ("Short answer: ... Source: ...") and whose
    rejected answer is the bare fact, which the base model finds likelier (it is shorter); 8 questions held out."""
    import torch

    from studio.methods import METHODS
    from studio.models.loading import load_causal_lm
    from studio.stages.preference_data import pair_row

    def framed(question: str, answer: str) -> dict:
        return {"prompt": question, "chosen": f"Short answer: {answer} Source: general knowledge.",
                "rejected": answer}

    facts = FACTS + MORE_FACTS
    train_file = write_jsonl(tmp_path / "train.jsonl", [framed(q, a) for q, a in facts[:24]])
    held_out = [framed(q, a) for q, a in facts[24:]]
    recipe = parse_recipe({
        "name": "dpo-real", "model": "smollm2-135m-instruct", "stage": "dpo", "method": {"name": "lora"},
        "dpo": {"beta": 0.1, "loss_type": "sigmoid"},
        "data": {"dataset": str(train_file), "max_length": 128, "validation": 0.0},
        "train": {"max_steps": 12, "batch_size": 4, "lr": 4e-4, "scheduler": "constant", "eval_every": 100,
                  "save_every": 100, "seed": 0},
    })

    def preference(model, tok) -> tuple[float, float]:
        """(mean log-prob margin chosen - rejected, share of pairs where chosen is likelier) on held-out pairs."""
        margins = []
        for row in (pair_row(r, tok) for r in held_out):
            logps = []
            for answer in (row["chosen"], row["rejected"]):
                prompt_ids = tok.apply_chat_template(row["prompt"], add_generation_prompt=True,
                                                     return_dict=True)["input_ids"]
                ids = tok.apply_chat_template(row["prompt"] + answer, return_dict=True)["input_ids"]
                start = next((i for i, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), len(prompt_ids))
                with torch.no_grad():
                    logits = model(torch.tensor([ids])).logits[0, :-1].float()
                token_logps = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
                logps.append(token_logps[start - 1:].sum().item())
            margins.append(logps[0] - logps[1])
        return sum(margins) / len(margins), sum(m > 0 for m in margins) / len(margins)

    base, tok = load_causal_lm("smollm2-135m-instruct", workspace, precision="fp32", for_training=False)
    before = preference(base.eval(), tok)
    _, events, result = run_in_process(workspace, recipe)
    fresh, _ = load_causal_lm("smollm2-135m-instruct", workspace, precision="fp32", for_training=False)
    tuned = METHODS.get("lora").load_result(fresh, Path(result["result_dir"])).eval()
    after = preference(tuned, tok)
    margins = [e["rewards/margins"] for e in events if "rewards/margins" in e]
    print(f"held-out log-prob margin chosen - rejected: {before[0]:.2f} -> {after[0]:.2f}; "
          f"chosen likelier in {before[1]:.0%} -> {after[1]:.0%} of pairs; train reward margin "
          f"{margins[0]:.3f} -> {margins[-1]:.3f}; {result['train_runtime_s']:.0f} s")
    assert after[0] > before[0] + 5.0 and after[0] > 0, (before, after)
    assert after[1] > before[1] and after[1] >= 0.75, (before, after)


OTHER_METHODS = [(method, stage) for method, cls in sorted(METHODS.items()) for stage in PREFERENCE_STAGES
                 if stage in cls.stages and method not in ("lora", "full")]


@pytest.mark.parametrize("method,stage", OTHER_METHODS)
def test_every_method_that_lists_a_preference_stage_trains_it(method, stage, workspace, tiny_llama_dir, pairs_file):
    section = {"reward": "length", "num_generations": 2, "max_completion_length": 8} if stage == "rl" else None
    # One step and no held-out split: this checks that each method trains each stage (the stages' evaluations are
    # checked once each, with LoRA and full, in test_each_preference_stage_trains_logs_its_metrics_and_saves).
    run_id, events, result = run_in_process(workspace, prefs_recipe(tiny_llama_dir, stage, pairs_file, method, section,
                                                                    validation=0.0, max_steps=1))
    losses = [e["loss"] for e in events if "loss" in e]
    assert not result["stopped"] and losses and all(loss == loss for loss in losses)
    assert Path(result["result_dir"]).exists()


def test_methods_that_cannot_serve_a_preference_stage_say_so(workspace, tiny_llama_dir, pairs_file):
    with pytest.raises(StudioError, match="cannot train stage 'dpo'"):
        prepare_run(workspace, prefs_recipe(tiny_llama_dir, "dpo", pairs_file, "adalora"))
