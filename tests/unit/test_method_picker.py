"""The method picker's wording: parameter counts, the fits verdict in both languages, and table lines."""
from __future__ import annotations


import pytest

from studio.errors import StudioError
from studio.memory import GiB
from studio.memory_picker import method_table
from studio.ui.i18n import Texts
from studio.ui.method_picker import COLUMNS, human_count, table_frame, table_key, table_row, verdict_text

MEMORY = {"kind": "cpu", "total_bytes": 32 * GiB, "free_bytes": 21 * GiB}


def lora_row(**change) -> dict:
    row = {"name": "lora", "title": "LoRA", "applicable": True, "reason": "", "mergeable": True,
           "trainable": 4_900_000, "percent": 3.5, "estimated_total": int(7.1 * GiB),
           "adapter_size_on_disk": 4_900_000 * 4, "fits": True, "advice": "", "fixes": []}
    return {**row, **change}


@pytest.fixture(scope="module")
def texts() -> Texts:
    return Texts.load()


@pytest.mark.parametrize("n, shown", [(None, ""), (812, "812"), (12_345, "12.3 K"), (4_900_000, "4.9 M"),
                                      (134_515_008, "134.5 M"), (7_241_732_096, "7.2 B")])
def test_parameter_counts_read_as_people_say_them(n, shown):
    assert human_count(n) == shown


def test_a_fitting_plan_says_what_trains_and_how_much_memory_of_how_much(texts):
    line = verdict_text(texts, "en", "LoRA", lora_row(), MEMORY)
    assert line == "LoRA: 4.9 M trainable (3.50%), about 7.1 GB peak of 21.0 GB free — fits."


def test_a_plan_that_does_not_fit_names_the_changes_that_would_make_it_fit(texts):
    row = lora_row(fits=False, estimated_total=30 * GiB, fixes=[("batch_size", 4), ("gradient_checkpointing", True)])
    line = verdict_text(texts, "en", "LoRA", row, MEMORY)
    assert line.endswith("does not fit; would fit with: batch 4, gradient checkpointing.")
    spanish = verdict_text(texts, "es", "LoRA", row, MEMORY)
    assert "no cabe" in spanish and "lote 4" in spanish


def test_a_plan_no_single_change_rescues_says_so(texts):
    line = verdict_text(texts, "en", "LoRA", lora_row(fits=False, fixes=[]), MEMORY)
    assert "does not fit" in line and "smaller model" in line


def test_an_inapplicable_method_gives_its_reason(texts):
    row = lora_row(applicable=False, reason="Method 'x' cannot train stage 'dpo'.", trainable=None)
    assert verdict_text(texts, "en", "IA3", row, MEMORY) == "IA3 cannot be used here: Method 'x' cannot train stage 'dpo'."
    line = table_row(texts, "en", {**row, "name": "ia3"})
    assert line[:2] == ["IA3", "no"] and line[-1] == "Method 'x' cannot train stage 'dpo'."


def test_a_table_line_has_every_column_in_people_units(texts):
    line = table_row(texts, "en", lora_row())
    assert len(line) == len(COLUMNS)
    assert line == ["LoRA", "yes", "7.10", "4,900,000", "3.500", "18.7", "yes", ""]
    frame = table_frame(texts, "es", [lora_row()])
    assert list(frame.columns)[0] == "Método" and frame.iloc[0, 1] == "sí"


def test_the_verdict_and_table_agree_with_the_engine_on_a_tiny_model(texts, tiny_llama_dir):
    from studio.config import parse_recipe

    recipe = parse_recipe({"name": "t", "model": str(tiny_llama_dir), "method": {"name": "ia3"},
                           "data": {"dataset": "sample", "max_length": 64}, "train": {"batch_size": 2}})
    one = method_table(recipe.model, None, recipe, memory=MEMORY, only="ia3")
    assert [r["name"] for r in one] == ["ia3"]
    full = {r["name"]: r for r in method_table(recipe.model, None, recipe, memory=MEMORY)}
    assert one[0]["trainable"] == full["ia3"]["trainable"] > 0
    assert verdict_text(texts, "en", "IA3", one[0], MEMORY).startswith("IA3: ")
    assert table_key(recipe) == (str(tiny_llama_dir), "sft", 2, 64, recipe.train.precision, False, 0, False)


def test_rows_that_do_not_fit_carry_structured_fixes(tiny_llama_dir):
    from studio.config import parse_recipe

    recipe = parse_recipe({"name": "t", "model": str(tiny_llama_dir), "data": {"dataset": "sample"},
                           "train": {"batch_size": 64}})
    tight = {"kind": "cpu", "total_bytes": GiB, "free_bytes": GiB}
    row = method_table(recipe.model, None, recipe, memory=tight, only="full")[0]
    assert row["fits"] is False and row["advice"]
    assert all(kind in ("batch_size", "gradient_checkpointing", "qlora", "max_length") for kind, _ in row["fixes"])


def test_each_fix_once_applied_gives_a_recipe_that_fits(tiny_llama_dir, monkeypatch):
    """A 1B Llama on a GPU a little too small: every fix the verdict offers, made by `apply_fix`, fits."""
    from transformers import LlamaConfig

    import studio.memory_picker as picker
    from studio.config import parse_recipe
    from studio.memory_picker import apply_fix

    monkeypatch.setattr(picker, "_gpu_count", lambda: 2)
    config = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                         num_key_value_heads=32, vocab_size=49152, max_position_embeddings=2048)
    raw = {"name": "t", "model": str(tiny_llama_dir), "data": {"dataset": "sample", "max_length": 1024},
           "method": {"name": "lora", "r": 4}, "train": {"batch_size": 8, "precision": "bf16"}}
    seen = set()
    for only in ("full", "lora"):
        recipe = {**raw, "method": raw["method"] if only == "lora" else {"name": only}}
        # The plan adapts itself (micro-batches, checkpointing) to the memory it is given: its smallest form,
        # planned for almost no memory, is what a little less memory than that cannot hold.
        starved = {"kind": "cuda", "total_bytes": 200 * GiB, "free_bytes": GiB // 8}
        least = method_table(config, None, parse_recipe(recipe), memory=starved, only=only)[0]["estimated_total"]
        tight = {"kind": "cuda", "total_bytes": 200 * GiB, "free_bytes": int(least * 0.9)}
        row = method_table(config, None, parse_recipe(recipe), memory=tight, only=only)[0]
        assert row["fits"] is False and row["fixes"], row
        for kind, value in row["fixes"]:
            fixed = parse_recipe(apply_fix(recipe, kind, value))
            after = method_table(config, None, fixed, memory=tight, only=fixed.method.name)[0]
            assert after["fits"], (only, kind, value, after["estimated_total"], tight["free_bytes"])
            seen.add(kind)
    assert "strategy" in seen and len(seen) >= 2, seen
    assert apply_fix(raw, "qlora", True)["method"] == {"name": "qlora", "r": 4}
    split = apply_fix(raw, "strategy", "fsdp x 4")["resources"]
    assert split == {"strategy": "fsdp", "devices": 4} and raw.get("resources") is None
    with pytest.raises(StudioError, match="not a fix"):
        apply_fix(raw, "ram", 1)


def test_the_suggestion_says_why_in_both_languages(texts):
    from studio.memory_picker import REASONS, recommend
    from studio.ui.method_picker import suggestion_text, why_text

    memory = {"kind": "cpu", "free_bytes": 24 * GiB, "total_bytes": 24 * GiB}
    rows = [{"name": n, "title": n, "applicable": True, "fits": True, "estimated_total": int(gb * GiB)}
            for n, gb in (("lora", 3.37), ("qlora", 3.03), ("full", 4.13))]
    pick = recommend(rows, "style", 2_000, 135_000_000, memory)
    assert why_text(texts, "en", pick).startswith("LoRA is the default") and "135M" in why_text(texts, "en", pick)
    assert "3.4 GB of the 24.0 GB free" in why_text(texts, "en", pick)
    assert why_text(texts, "es", pick).startswith("LoRA es la opción por defecto") and "24.0 GB" in why_text(texts, "es", pick)
    assert "QLoRA" in suggestion_text(texts, "en", pick) and "También sirven" in suggestion_text(texts, "es", pick)
    params = {"size": "7.0B", "peak": "8.0 GB", "free": "9.0 GB", "rows": "2,000", "title": "QLoRA"}
    for reason in REASONS:  # every reason is worded in both languages, with every placeholder filled
        for lang in ("en", "es"):
            line = why_text(texts, lang, {"reason": reason, "params": params})
            assert line != f"picker.why.{reason}" and "{" not in line


def test_every_method_explains_itself_in_both_languages(texts):
    from studio.methods import METHODS
    from studio.ui.method_picker import method_text

    for name in METHODS.names():
        for lang in ("en", "es"):
            assert texts.locales[lang].get(f"method.{name}.explain"), (name, lang)
    assert "65,536" in method_text(texts, "en", "lora") and "65 536" in method_text(texts, "es", "lora")


def test_the_engine_plans_a_recipe_for_the_picker(workspace, tiny_llama_dir, tmp_path):
    from studio.config import parse_recipe
    from studio.engine import Engine
    from studio.memory_picker import FALLBACK_ROWS, dataset_rows

    data = tmp_path / "three.jsonl"
    data.write_text("".join('{"instruction": "q", "output": "a"}\n' for _ in range(3)), encoding="utf-8")
    recipe = parse_recipe({"name": "t", "model": str(tiny_llama_dir), "data": {"dataset": str(data)}})
    engine = Engine(workspace, start_jobs=False)
    try:
        assert [r["name"] for r in engine.method_table(recipe, memory=MEMORY, only="lora")] == ["lora"]
        pick = engine.suggest_method(recipe, "style", memory=MEMORY)
        assert pick["method"] == "lora" and pick["params"]["rows"] == "3"
        lora = engine.method_table(recipe, memory=MEMORY, only="lora")[0]
        assert pick["params"]["peak"] == f"{lora['estimated_total'] / GiB:.1f} GB"  # the verdict's own estimate
    finally:
        engine.shutdown()
    assert dataset_rows(str(tmp_path / "missing.jsonl"), workspace) == FALLBACK_ROWS
