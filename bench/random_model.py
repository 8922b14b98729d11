"""Write a causal LM folder with random weights from a model's config and tokenizer.

Memory and speed do not depend on the weights' values, so a machine that cannot download a
model (a lent GPU with no network) can still measure the training paths on its exact shapes.
`--set` changes config fields (e.g. the SmolLM2-1.7B shape from the 135M config).

    python bench/random_model.py CONFIG_DIR OUT_DIR [--set hidden_size=2048 --set num_hidden_layers=24]
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "generation_config.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=INT")
    args = parser.parse_args()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(args.config_dir)
    for item in args.set:
        key, value = item.split("=", 1)
        setattr(config, key, json.loads(value))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(args.out_dir)
    for name in TOKENIZER_FILES:
        if (args.config_dir / name).exists():
            shutil.copy(args.config_dir / name, args.out_dir / name)
    print(f"{args.out_dir}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")


if __name__ == "__main__":
    main()
