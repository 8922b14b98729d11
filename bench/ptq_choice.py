"""Which int8 scheme for CPU inference: fp32 against five int8 candidates on SmolLM2-135M-Instruct, same process.

Candidates: torch's `quantize_dynamic` (int8 Linear weights, activations quantised per call), torchao's
`Int8DynamicActivationInt8WeightConfig` and `Int8WeightOnlyConfig` (when torchao is installed), and the studio's
own `studio.export.ptq` in three schemes: dynamic, static without smoothing (per-tensor input scales from the
calibration maxima) and static with SmoothQuant smoothing (alpha 0.5). Calibration texts are the paragraphs of
`assets/general-text.txt`; perplexity and top-1 agreement with fp32 are measured on the first `--tokens` tokens
of `assets/export/heldout-en.txt` (a different text) in windows of 512. Speed is greedy generation of
`--new-tokens` tokens (forced length) after a chat prompt, median of `--rounds` after a warm-up. Size is the
weights file: safetensors for fp32 and the studio's exports, `torch.save` of the state dict (a pickle) for torch
and torchao, which have no other way to save. Load time is the studio export's `load_int8`, and for the
in-memory candidates the fp32 load plus the quantisation they need at every start. `--bnb` adds the
bitsandbytes exports (`studio.export.bnb`, 8-bit and 4-bit NF4 with double quantisation, bf16 compute) as rows.

    python bench/ptq_choice.py [--tokens 1024] [--new-tokens 64] [--rounds 3] [--bnb]
"""
from __future__ import annotations

import argparse
import copy
import itertools
import math
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = "smollm2-135m-instruct"
PROMPT = "Write a short paragraph about why people enjoy walking in the mountains."
WINDOW = 512


def heldout_ids(tokenizer, tokens: int):
    text = (ROOT / "assets" / "export" / "heldout-en.txt").read_text(encoding="utf-8")
    return tokenizer(text, return_tensors="pt").input_ids[:, :tokens]


def score(model, ids):
    """(perplexity, argmax ids) over non-overlapping windows of WINDOW tokens."""
    import torch

    nll, count, top1 = 0.0, 0, []
    with torch.inference_mode():
        for start in range(0, ids.shape[1], WINDOW):
            window = ids[:, start:start + WINDOW]
            logits = model(input_ids=window).logits.float()
            loss = torch.nn.functional.cross_entropy(logits[0, :-1], window[0, 1:], reduction="sum")
            nll, count = nll + float(loss), count + window.shape[1] - 1
            top1.append(logits[0, :-1].argmax(-1))
    return math.exp(nll / count), torch.cat(top1)


def speed(model, tokenizer, new_tokens: int, rounds: int) -> float:
    import torch

    prompt = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False,
                                           add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    kwargs = dict(do_sample=False, pad_token_id=tokenizer.eos_token_id)
    with torch.inference_mode():
        model.generate(**ids, max_new_tokens=4, min_new_tokens=4, **kwargs)
        rates = []
        for _ in range(rounds):
            began = time.perf_counter()
            model.generate(**ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
            rates.append(new_tokens / (time.perf_counter() - began))
    return statistics.median(rates)


def pickled_size(model, folder: Path) -> int:
    import torch

    path = folder / "state.pt"
    torch.save(model.state_dict(), path)
    return path.stat().st_size


def bnb_candidates(source: Path, folder: Path):
    """(name, model, size bytes, load seconds) for the bitsandbytes exports of the model folder `source`."""
    from studio.export.bnb import load_bnb, save_bnb

    for bits in (8, 4):
        out = folder / f"bnb{bits}"
        info = save_bnb(source, out, bits=bits, quant_type="nf4", compute_dtype="bfloat16")
        began = time.perf_counter()
        model, _ = load_bnb(out)
        yield f"bnb {'int8' if bits == 8 else 'nf4 dq'} (bf16)", model, info["bytes"], time.perf_counter() - began


def candidates(model, tokenizer, texts, folder: Path):
    """(name, model, size bytes, load seconds) for each int8 candidate, built one at a time."""
    import torch

    from studio.export import calibration, ptq

    def in_memory(name, quantise):
        began = time.perf_counter()
        q = quantise(copy.deepcopy(model))
        return name, q, pickled_size(q, folder), time.perf_counter() - began

    yield in_memory("torch quantize_dynamic", lambda m: torch.ao.quantization.quantize_dynamic(
        m, {torch.nn.Linear}, dtype=torch.qint8))
    try:
        from torchao.quantization import (Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig,
                                          quantize_)
    except ImportError:
        print("torchao is not installed: its rows are skipped")
    else:
        for label, config in (("torchao int8 dyn-act", Int8DynamicActivationInt8WeightConfig),
                              ("torchao int8 weight-only", Int8WeightOnlyConfig)):
            yield in_memory(label, lambda m, c=config: (quantize_(m, c()), m)[1])
    no_smoothing = lambda channel_max, weight, alpha=0.5: torch.ones_like(channel_max)  # noqa: E731
    for label, scheme, smooth in (("studio dynamic", "dynamic", None), ("studio static", "static", no_smoothing),
                                  ("studio static+smooth", "static", calibration.smoothing_factors)):
        out = folder / label.replace(" ", "-").replace("+", "-")
        original = calibration.smoothing_factors
        calibration.smoothing_factors = smooth or original
        try:
            info = ptq.save_int8(model, tokenizer, out, texts if scheme == "static" else None, scheme)
        finally:
            calibration.smoothing_factors = original
        began = time.perf_counter()
        q, _ = ptq.load_int8(out)
        yield label, q, info["bytes"], time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bnb", action="store_true", help="add the bitsandbytes 8-bit and 4-bit exports")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import torch

    from studio.models import embedded
    from studio.models.loading import load_causal_lm
    from studio.workspace import Workspace

    ws = Workspace.open()
    began = time.perf_counter()
    model, tokenizer = load_causal_lm(MODEL, ws, for_training=False)
    model = model.float().eval()
    fp32_load = time.perf_counter() - began
    ids = heldout_ids(tokenizer, args.tokens)
    texts = [p for p in (ROOT / "assets" / "general-text.txt").read_text(encoding="utf-8").split("\n\n") if p.strip()]
    print(f"{MODEL}: {ids.shape[1]} held-out tokens, {len(texts)} calibration paragraphs, {args.new_tokens} new "
          f"tokens greedy, median of {args.rounds}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    ref_ppl, ref_top1 = score(model, ids)
    fp32_bytes = sum(p.numel() * 4 for p in model.parameters())
    print(f"{'candidate':<26}{'size MB':>9}{'x fp32':>8}{'load s':>8}{'tok/s':>8}{'x fp32':>8}{'ppl':>9}"
          f"{'ppl +%':>8}{'top-1':>7}")
    fp32_rate = speed(model, tokenizer, args.new_tokens, args.rounds)

    def row(name, size, load_s, rate, ppl, top1):
        print(f"{name:<26}{size / 1e6:9.1f}{size / fp32_bytes:8.2f}{load_s:8.2f}{rate:8.1f}{rate / fp32_rate:8.2f}"
              f"{ppl:9.2f}{100 * (ppl / ref_ppl - 1):8.1f}{top1:7.3f}", flush=True)

    row("fp32", fp32_bytes, fp32_load, fp32_rate, ref_ppl, 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        built = candidates(model, tokenizer, texts, Path(tmp))
        if args.bnb:
            built = itertools.chain(built, bnb_candidates(ws.models_dir / embedded.SMOLLM2_DIRNAME, Path(tmp)))
        for name, q, size, load_s in built:
            ppl, top1 = score(q, ids)
            row(name, size, load_s, speed(q, tokenizer, args.new_tokens, args.rounds), ppl,
                float((top1 == ref_top1).float().mean()))
            del q

if __name__ == "__main__":
    main()
