"""Training speed on one shape: a bare PyTorch + peft loop, plain TRL, and the studio job.

Run it (the embedded model converts once, untimed, unless --home names a workspace that has it):

    .venv/bin/python bench/train_speed.py                      # CPU: 135M, 8 x 320, 2 warm-up + 6 timed steps
    .venv/bin/python bench/train_speed.py --steps 3 --warmup 1 --json /tmp/speed.json   # 3-10 min on 2 cores
    python bench/train_speed.py --device cuda --model /tmp/m1700 --steps 8 --warmup 3   # bench/random_model.py
    bench/gpu_check.sh CONFIG_DIR speed                        # both SmolLM2 shapes on a lent GPU

Three runs, one after another, each in its own child process of this one (all in this process
group, so `timeout` or Ctrl-C ends every one of them), on the same model, LoRA (r=16, alpha=32,
all-linear, the studio's default dropout), batch B x L, tokens, lr, AdamW, precision and seed:

(a) bare    from_pretrained (sdpa) + peft `get_peft_model` + torch AdamW (fused, no weight decay, as
            the Trainer's default optimiser), then forward(input_ids, labels) / backward / step /
            zero_grad; no Trainer, no attention mask (rows are right-padded and padding is labelled
            -100, so no real token attends to it), no clipping, no scheduler, no logging.
(b) trl     `SFTTrainer` with `SFTConfig`'s own defaults except batch, max_length, lr, max_steps,
            seed, precision, packing and report_to="none" (so TRL's default gradient checkpointing
            stays on; the output names every default that differs from the studio's).
(c) studio  presets/quickstart-sft-lora.yaml with `--set` overrides for the shape (validation 0 and
            group_by_length off, so its batches are those of (a) and (b)), `prepare_run` + a
            `JobManager` worker, as the app runs a job.

The examples are `sample-format-tutor` rendered with the model's chat template by the studio's own
`build_sft_datasets`, written once and read by (a) and (b); (c) builds them the same way, and the
output says whether every step saw the same tokens. tokens/s = non-padding input tokens of the N
timed steps (after W warm-up steps) / their seconds: (a) its own clock, CUDA synchronised once
before and once after; (b) a callback's clock at the end of steps W and W+N, tokens from a counting
collator; (c) the worker's metrics.jsonl: times of the step events W and W+N, tokens from TRL's
`num_tokens` or else the Trainer's `num_input_tokens_seen`. The studio's own two figures are printed
beside it: summary.json's (tokens / train_runtime, which spans every step, warm-up included, and
the closing checkpoint save) and the progress bar's (the last step alone). Peak RSS is the child's
ru_maxrss from wait4 (its largest process: for (c) the worker); on CUDA, peak memory is
torch.cuda.max_memory_allocated in the training process. With --packing, (a) cuts the concatenated
examples into full rows of L tokens while TRL and the studio pack best-fit bins padding-free, so
their batches differ by design.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRESET = ROOT / "presets" / "quickstart-sft-lora.yaml"
RUNS = {"bare": "(a) bare loop", "trl": "(b) plain TRL", "studio": "(c) studio job"}
COMPARED_DEFAULTS = ("gradient_checkpointing", "train_sampling_strategy", "logging_steps", "disable_tqdm",
                     "lr_scheduler_type", "max_grad_norm", "weight_decay", "optim", "include_num_input_tokens_seen",
                     "dataloader_pin_memory", "dataloader_num_workers")


def lora_settings() -> dict:
    from studio.methods.lora import LoraSettings

    return {"r": 16, "lora_alpha": 32, "lora_dropout": LoraSettings().dropout, "target_modules": "all-linear"}


def studio_overrides(spec: dict) -> list[str]:
    lora = spec["lora"]
    return [f"model={spec['model_spec']}", f"train.batch_size={spec['batch']}", f"data.max_length={spec['seq']}",
            f"train.max_steps={spec['warmup'] + spec['steps']}", f"train.lr={spec['lr']}", f"train.seed={spec['seed']}",
            f"train.precision={spec['precision']}", f"data.packing={str(spec['packing']).lower()}",
            "data.validation=0", "train.group_by_length=false", "train.save_every=100000",
            f"method.r={lora['r']}", f"method.alpha={lora['lora_alpha']}", f"method.dropout={lora['lora_dropout']}",
            f"method.target_modules={lora['target_modules']}"]


# --- the three runs, each called in its own child process ---------------------------------------------------

def cuda_peaks(torch) -> dict:
    if not torch.cuda.is_available():
        return {}
    return {"peak_cuda_gb": torch.cuda.max_memory_allocated() / 2**30,
            "peak_cuda_reserved_gb": torch.cuda.max_memory_reserved() / 2**30,
            "device_name": torch.cuda.get_device_name()}


def bare_batches(data: dict, spec: dict, pad_id: int) -> list[dict]:
    """The Trainer's batches: a permutation per epoch seeded seed + epoch (accelerate's seedable sampler),
    cut into batches of B (the last one short); or, packed, that token stream cut into full rows of L."""
    import torch

    n, b, seq, needed = len(data["input_ids"]), spec["batch"], spec["seq"], spec["warmup"] + spec["steps"]
    batches, stream_ids, stream_labels, epoch = [], [], [], 0
    while len(batches) < needed:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(spec["seed"] + epoch)).tolist()
        epoch += 1
        if spec["packing"]:
            for i in order:
                stream_ids += data["input_ids"][i]
                stream_labels += data["labels"][i]
            while len(stream_ids) >= b * seq and len(batches) < needed:
                ids = torch.tensor(stream_ids[:b * seq]).view(b, seq)
                labels = torch.tensor(stream_labels[:b * seq]).view(b, seq)
                del stream_ids[:b * seq], stream_labels[:b * seq]
                batches.append({"input_ids": ids, "labels": labels, "tokens": b * seq})
            continue
        for start in range(0, n, b):
            rows = order[start:start + b]
            width = max(len(data["input_ids"][i]) for i in rows)
            ids = torch.full((len(rows), width), pad_id)
            labels = torch.full((len(rows), width), -100)
            for r, i in enumerate(rows):
                ids[r, :len(data["input_ids"][i])] = torch.tensor(data["input_ids"][i])
                labels[r, :len(data["labels"][i])] = torch.tensor(data["labels"][i])
            batches.append({"input_ids": ids, "labels": labels,
                            "tokens": sum(len(data["input_ids"][i]) for i in rows)})
    return batches[:needed]


def run_bare(spec: dict) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(spec["seed"])
    device = torch.device(spec["device"])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    data = json.loads(Path(spec["data"]).read_text())
    batches = bare_batches(data, spec, spec["pad_id"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32, attn_implementation="sdpa",
                                                 use_safetensors=True).to(device)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **spec["lora"]))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec["lr"],
                                  weight_decay=0.0, fused=True)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=spec["precision"] == "bf16")
    first_loss, ends = None, [time.perf_counter()]
    for i, batch in enumerate(batches):
        if i == spec["warmup"]:
            sync()
            start = time.perf_counter()
        with autocast:
            loss = model(input_ids=batch["input_ids"].to(device, non_blocking=True),
                         labels=batch["labels"].to(device, non_blocking=True)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i == 0:
            first_loss = loss.item()  # a warm-up step: the sync costs nothing that is timed
        ends.append(time.perf_counter())  # on CUDA only when the kernels were queued, not run
    sync()
    seconds = time.perf_counter() - start
    tokens = [b["tokens"] for b in batches]
    step_s = [b - a for a, b in zip(ends, ends[1:])] if device.type == "cpu" else None
    return {"seconds": seconds, "step_tokens": tokens, "timed_tokens": sum(tokens[spec["warmup"]:]),
            "step_s": step_s, "first_loss": first_loss, "last_loss": loss.item(), **cuda_peaks(torch)}


def trl_config(spec: dict, out_dir: str):
    import torch
    from trl import SFTConfig

    return SFTConfig(output_dir=out_dir, per_device_train_batch_size=spec["batch"], max_length=spec["seq"],
                     learning_rate=spec["lr"], max_steps=spec["warmup"] + spec["steps"], seed=spec["seed"],
                     bf16=spec["precision"] == "bf16", packing=spec["packing"], report_to="none",
                     use_cpu=spec["device"] == "cpu" or not torch.cuda.is_available())


class CountingCollator:
    """TRL's collator, noting each batch's non-padding tokens in the order batches are made (= steps), and
    what the Trainer's "non_padding" counter makes of it (in a packed batch, input_ids != pad id)."""

    def __init__(self, inner, pad_id: int):
        self.inner, self.pad_id, self.tokens, self.trainer_tokens = inner, pad_id, [], []

    def __call__(self, examples):
        batch = self.inner(examples)
        mask = batch.get("attention_mask")  # padding-free (packed) batches have none: every token is real
        self.tokens.append(int(mask.sum()) if mask is not None else batch["input_ids"].numel())
        ids = batch["input_ids"]
        self.trainer_tokens.append(self.tokens[-1] if mask is not None else int((ids != self.pad_id).sum()))
        return batch


def run_trl(spec: dict) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTTrainer

    sync = torch.cuda.synchronize if spec["device"] == "cuda" else (lambda: None)
    bounds = (spec["warmup"], spec["warmup"] + spec["steps"])

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times = {}

        def on_train_begin(self, args, state, control, **kwargs):
            self.times[0] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in bounds:
                sync()
            self.times[state.global_step] = time.perf_counter()

    clock = StepClock()
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32, use_safetensors=True)
    with tempfile.TemporaryDirectory() as out:
        args = trl_config(spec, out)
        trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                             train_dataset=Dataset.from_dict(json.loads(Path(spec["data"]).read_text())),
                             peft_config=LoraConfig(task_type="CAUSAL_LM", **spec["lora"]), callbacks=[clock])
        collator = trainer.data_collator = CountingCollator(trainer.data_collator, tokenizer.pad_token_id)
        trainer.train()
    tokens = collator.tokens[:bounds[1]]  # the loader may have made one batch ahead
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    step_s = [clock.times[i] - clock.times[i - 1] for i in range(1, bounds[1] + 1)]
    return {"seconds": clock.times[bounds[1]] - clock.times[bounds[0]], "step_tokens": tokens, "step_s": step_s,
            "trainer_step_tokens": collator.trainer_tokens[:bounds[1]],
            "timed_tokens": sum(tokens[bounds[0]:]), "last_loss": losses[-1] if losses else None,
            "defaults_unlike_studio": defaults_unlike_studio(spec, args), **cuda_peaks(torch)}


def defaults_unlike_studio(spec: dict, plain) -> dict:
    """The SFTConfig fields (b) leaves at TRL's default that the studio sets otherwise: {field: [trl, studio]}."""
    from studio.config import load_recipe
    from studio.stages.sft import sft_config

    with tempfile.TemporaryDirectory() as tmp:
        studio = sft_config(load_recipe(PRESET, studio_overrides(spec)), Path(tmp), False)
    return {k: [str(getattr(plain, k)), str(getattr(studio, k))] for k in COMPARED_DEFAULTS
            if str(getattr(plain, k)) != str(getattr(studio, k))}


def studio_execute(**kwargs) -> dict:
    """The job target (c) runs: `studio.training.execute`, then this process's CUDA peak noted beside it."""
    import torch

    from studio.training import execute

    result = execute(**kwargs)
    (Path(kwargs["run_dir"]) / "bench-peaks.json").write_text(json.dumps(cuda_peaks(torch)))
    return result


def run_studio(spec: dict) -> dict:
    from studio.config import load_recipe
    from studio.jobs import JobManager
    from studio.training import prepare_run
    from studio.workspace import Workspace

    ws = Workspace.open(spec["home"])
    run_id = prepare_run(ws, load_recipe(PRESET, studio_overrides(spec)))
    manager = JobManager(ws, target="train_speed:studio_execute").start()  # bench/ is on the worker's sys.path
    try:
        manager.submit(run_id)
        manager.wait(run_id)
        manager.shutdown()
    except BaseException:
        manager.shutdown(kill_running=True, timeout=60)
        raise
    run = ws.get_run(run_id)
    run_dir = Path(run["run_dir"])
    if run["status"] != "completed":
        log = (run_dir / "train.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"studio run {run['status']}: {run['error']}\n{log}")
    return {**studio_figures(spec, run_dir), **json.loads((run_dir / "bench-peaks.json").read_text())}


def studio_figures(spec: dict, run_dir: Path) -> dict:
    """The timed steps from metrics.jsonl (step events' times, TRL's cumulative num_tokens), and the studio's own
    figures: summary.json's tokens / train_runtime and the progress bar's rate (the last step)."""
    from studio.workspace import read_metrics

    summary = json.loads((run_dir / "summary.json").read_text())
    events = read_metrics(run_dir)
    step_end = {e["step"]: e["time"] for e in events if "tokens_per_s" in e or e.get("step") == 0}  # 0: train begins
    # TRL's own counter when the studio's loss logs it, else the Trainer's "non_padding" one, which in packed batches
    # (no attention mask) counts input_ids != pad id and so also drops real <|im_end|> tokens where pad = eos.
    counter = "num_tokens" if any("num_tokens" in e for e in events) else "num_input_tokens_seen"
    seen = {0: 0, **{e["step"]: e.get(counter) for e in events if "loss" in e}}
    losses = {e["step"]: e["loss"] for e in events if "loss" in e}
    w, last = spec["warmup"], spec["warmup"] + spec["steps"]
    missing = [s for s in range(last + 1) if s not in step_end or seen.get(s) is None]
    if missing:
        raise SystemExit(f"{run_dir}/metrics.jsonl lacks the time or token count of steps {missing}")
    runtime = summary["train_runtime_s"]
    return {"seconds": step_end[last] - step_end[w], "timed_tokens": seen[last] - seen[w],
            "step_tokens": [seen[s] - seen[s - 1] for s in range(1, last + 1)],
            "step_s": [step_end[s] - step_end[s - 1] for s in range(1, last + 1)],
            "first_loss": losses.get(1), "last_loss": losses.get(last),
            "summary_tokens_per_s": summary["tokens_per_s"], "summary_train_runtime_s": runtime,
            "summary_tokens_seen": summary["tokens_seen"], "token_counter": counter,
            "bar_tokens_per_s": [e["tokens_per_s"] for e in events if "tokens_per_s" in e][-1],
            "warmup_steps_s": step_end[w] - step_end[0], "after_last_step_s": runtime - (step_end[last] - step_end[0]),
            "worker_peak_rss_gb": summary["peak_rss_mb"] / 1024, "run_dir": str(run_dir)}


# --- the parent: one shape, three children, one table --------------------------------------------------------

def prepare(args, work: Path) -> dict:
    """Resolve the model, tokenise the sample once with the studio's own functions, and write the shared spec."""
    import torch

    sys.path.insert(0, str(ROOT))
    from studio.config import load_recipe
    from studio.models.catalogue import resolve_model
    from studio.models.loading import load_tokenizer
    from studio.stages.sft import build_sft_datasets
    from studio.workspace import Workspace

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here")
    precision = args.precision if args.precision != "auto" else ("bf16" if device == "cuda" else "fp32")
    preset = load_recipe(PRESET)
    home = Path(args.home) if args.home else work / "home"
    ws = Workspace.open(home)
    model_dir = Path(resolve_model(args.model or preset.model, ws))  # the embedded model converts here, untimed
    model_spec = str(model_dir) if args.model else preset.model
    spec = {"device": device, "precision": precision, "model_spec": str(model_spec), "model_dir": str(model_dir),
            "home": str(home), "batch": args.batch or preset.train.batch_size,
            "seq": args.seq or preset.data.max_length,
            "steps": args.steps, "warmup": args.warmup, "lr": preset.train.lr, "seed": preset.train.seed,
            "packing": args.packing, "lora": lora_settings(), "data": str(work / "data.json")}
    recipe = load_recipe(PRESET, studio_overrides(spec))
    tokenizer = load_tokenizer(recipe.model, ws)
    train, _ = build_sft_datasets(recipe, tokenizer, home)
    Path(spec["data"]).write_text(json.dumps(train.to_dict()))
    spec.update(pad_id=tokenizer.pad_token_id, n_examples=len(train),
                sample_tokens=sum(map(len, train.to_dict()["input_ids"])),
                shape={k: json.loads((model_dir / "config.json").read_text()).get(k)
                       for k in ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")})
    return spec


def run_child(name: str, spec: dict, spec_path: Path, work: Path) -> dict:
    """One run in a child process (this process group); its peak RSS is the wait4 rusage of that child."""
    out, log = work / f"{name}.json", work / f"{name}.log"
    # The studio has no device setting (it trains on CUDA wherever CUDA is visible): --device cpu hides it.
    env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": ""} if spec["device"] == "cpu" else {})}
    started = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, __file__, "--child", name, str(spec_path), str(out)],
                                stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode or not out.exists():
        raise SystemExit(f"{RUNS[name]} failed (exit {proc.returncode}):\n{log.read_text(errors='replace')[-4000:]}")
    result = json.loads(out.read_text())
    result.update(peak_rss_gb=usage.ru_maxrss / 2**20, wall_s=time.perf_counter() - started)
    return with_rates(spec, result)


def with_rates(spec: dict, r: dict) -> dict:
    """tokens/s and s/step over the timed steps, and the fastest timed step's tokens/s (where steps were clocked):
    on a shared machine the fastest step is the one least disturbed."""
    w = spec["warmup"]
    r.update(tokens_per_s=r["timed_tokens"] / r["seconds"], s_per_step=r["seconds"] / spec["steps"],
             fastest_step_tokens_per_s=max(t / s for t, s in zip(r["step_tokens"][w:], r["step_s"][w:]))
             if r.get("step_s") else None)
    return r


def exact_studio_tokens(spec: dict, results: dict) -> None:
    """The studio's fallback counter (input_ids != pad id in packed batches) also skips real tokens equal to the
    pad id (<|im_end|> where pad = eos). Where (b)'s batches count exactly like (c)'s that way, they are the same
    batches, and (b)'s exact counts replace (c)'s."""
    b, c = results.get("trl"), results.get("studio")
    if (not (b and c) or c["token_counter"] != "num_input_tokens_seen" or c["step_tokens"] == b["step_tokens"]
            or c["step_tokens"] != b["trainer_step_tokens"]):
        return
    c.update(counted_step_tokens=c["step_tokens"], step_tokens=b["step_tokens"],
             timed_tokens=sum(b["step_tokens"][spec["warmup"]:]),
             token_counter="num_input_tokens_seen, corrected to (b)'s exact counts of the same batches")
    with_rates(spec, c)


def machine(spec: dict) -> dict:
    from importlib.metadata import version

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "device": spec["device"], **{p: version(p) for p in ("torch", "transformers", "peft", "trl")}}


def row(name: str, r: dict, base: float, cuda: bool) -> str:
    cuda_gb = f" {r.get('peak_cuda_gb', float('nan')):12.2f}" if cuda else ""
    fastest = f"{r['fastest_step_tokens_per_s']:13.1f}" if r["fastest_step_tokens_per_s"] else f"{'-':>13}"
    return (f"{RUNS[name]:16} {r['tokens_per_s']:9.1f} {r['tokens_per_s'] / base:6.2f}x {r['s_per_step']:7.2f} "
            f"{fastest} {r['timed_tokens']:12d} {r['peak_rss_gb']:11.2f}{cuda_gb} {r['wall_s']:7.0f}")


def report(spec: dict, info: dict, results: dict) -> None:
    cuda, lora, bare = spec["device"] == "cuda", spec["lora"], results["bare"]
    device = f"cuda ({bare.get('device_name')})" if cuda else "cpu"
    print(f"\nmachine: {info['cpu']}, {info['cpus_usable']} of {info['cpu_count']} CPUs usable, device {device}, "
          f"torch {info['torch']}, transformers {info['transformers']}, peft {info['peft']}, trl {info['trl']}")
    print(f"settings: model {spec['model_spec']} {spec['shape']}, LoRA r={lora['r']} alpha={lora['lora_alpha']} "
          f"dropout={lora['lora_dropout']} {lora['target_modules']}, batch {spec['batch']} x {spec['seq']} tokens"
          f"{' packed' if spec['packing'] else ''}, {spec['warmup']} warm-up + {spec['steps']} timed steps, "
          f"AdamW lr {spec['lr']}, {spec['precision']}, seed {spec['seed']}, sample-format-tutor: "
          f"{spec['n_examples']} examples, {spec['sample_tokens']} tokens")
    if "trl" in results:
        print("(b) keeps TRL defaults the studio sets otherwise (trl, studio):",
              results["trl"]["defaults_unlike_studio"])
    if "studio" in results:
        print(f"(c) --set {' '.join(studio_overrides(spec))}")
    print(f"\n{'run':16} {'tokens/s':>9} {'vs (a)':>7} {'s/step':>7} {'fastest step':>13} {'timed tokens':>12} "
          f"{'peak RSS GB':>11}"
          f"{' peak CUDA GB' if cuda else ''} {'wall s':>7}")
    for name, r in results.items():
        print(row(name, r, bare["tokens_per_s"], cuda))
    steps = {name: r["step_tokens"] for name, r in results.items()}
    identical = len({tuple(s) for s in steps.values()}) == 1
    if identical:
        print("\ntokens of every step identical in all runs")
    else:
        why = " (by design with --packing)" if spec["packing"] else ""
        print(f"\ntokens per step differ{why}: " + "; ".join(f"{n} {s}" for n, s in steps.items()))
    print("seconds per step, warm-up | timed: " + "; ".join(
        f"{n} " + (" ".join(f"{t:.1f}" for t in r["step_s"][:spec["warmup"]]) + " | "
                   + " ".join(f"{t:.1f}" for t in r["step_s"][spec["warmup"]:]) if r.get("step_s") else "-")
        for n, r in results.items()))
    job = results.get("studio")
    if job:
        same = "" if identical else ", different batches"
        print(f"step-1 loss (LoRA B = 0: the base model's{same}): bare {bare['first_loss']:.4f}, "
              f"studio {job['first_loss']:.4f}; tokens counted by {job['token_counter']}")
        print(f"the studio's own figures: summary.json {job['summary_tokens_per_s']:.1f} tokens/s "
              f"({job['summary_tokens_seen']} tokens / train_runtime {job['summary_train_runtime_s']:.1f} s, of which "
              f"the {spec['warmup']} warm-up step(s) {job['warmup_steps_s']:.1f} s and after the last step "
              f"{job['after_last_step_s']:.1f} s), progress bar {job['bar_tokens_per_s']:.1f} tokens/s (the last step "
              f"alone); the table's: metrics.jsonl's times of steps {spec['warmup']} and "
              f"{spec['warmup'] + spec['steps']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--model", help="a causal LM folder (default: the embedded SmolLM2-135M-Instruct)")
    ap.add_argument("--batch", type=int, help="rows a step (default: the quickstart preset's 8)")
    ap.add_argument("--seq", type=int, help="max_length in tokens (default: the quickstart preset's)")
    ap.add_argument("--steps", type=int, default=6, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before them (at least 1)")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                    help="auto: bf16 autocast on CUDA, fp32 on a CPU")
    ap.add_argument("--packing", action="store_true")
    ap.add_argument("--runs", default="bare,trl,studio", help="a subset of bare,trl,studio (bare always runs)")
    ap.add_argument("--home", help="a studio workspace to reuse (keeps the embedded model's conversion)")
    ap.add_argument("--json", type=Path, help="write settings, machine and figures here")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.child:
        sys.path.insert(0, str(ROOT))
        name, spec_path, out = args.child
        result = {"bare": run_bare, "trl": run_trl, "studio": run_studio}[name](json.loads(Path(spec_path).read_text()))
        Path(out).write_text(json.dumps(result))
        return
    if args.warmup < 1 or args.steps < 1:
        ap.error("--warmup and --steps must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="train-speed-"))
    try:
        spec = prepare(args, work)
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec))
        info = machine(spec)
        results = {}
        for name in ["bare", *[n for n in ("trl", "studio") if n in args.runs.split(",")]]:
            results[name] = run_child(name, spec, spec_path, work)
            r = results[name]
            print(f"{RUNS[name]}: {r['s_per_step']:.2f} s per timed step, peak RSS {r['peak_rss_gb']:.2f} GB, "
                  f"{r['wall_s']:.0f} s in all", flush=True)
        exact_studio_tokens(spec, results)
        report(spec, info, results)
        if args.json:
            spec.pop("data")
            args.json.write_text(json.dumps({"settings": spec, "machine": info, "runs": results}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
