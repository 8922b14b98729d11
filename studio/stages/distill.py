"""Knowledge distillation (KD): a student causal LM learns the answers and the teacher's predictions.

(A dataset of texts and labels makes it classifier distillation instead: `distill_classify`.)

The data path is SFT's (chat/instruction examples, only response tokens carry labels). On those
response tokens the loss is `alpha * CE(hard labels) + (1 - alpha) * T^2 * KL` between the
teacher's and the student's next-token distributions both softened by temperature T (Hinton et
al.): the teacher is the target, `sum p_teacher * (log p_teacher - log p_student)`, and T^2 keeps
the soft term's gradients on the scale of the hard one. The teacher is any causal LM the studio
can load (alias, hub id, folder) or `run:<run_id>`, a finished run's base + result; it must share
the student's tokenizer, since the KL compares the two models token id by token id. The teacher
is frozen, in eval mode, never sees gradients. Loading the student, the method and the trainer
loop are SFT's (`studio.stages.sft.train_causal_lm`); this module only adds the teacher and the loss.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.settings import setting
from studio.models.refs import parse
from studio.stages.base import STAGES, Stage, TrainContext
from studio.stages.distill_teacher import soft_target_loss, teacher_run

# Words in several scripts: the ids these get must agree between teacher and student.
_PROBE_TEXT = ("The quick brown fox jumps over 13 lazy dogs. La fotosíntesis convierte la luz en energía. "
               "def main():\n    return {'a': [1, 2]}  # 日本語 Ünïcödé €")


@dataclass
class DistillConfig:
    """Where the soft targets come from and how much they count."""

    teacher: str = setting(help="The model to learn from: a model alias, hub id or local folder, or "
                           "'run:<run id>' for a finished run's result. For chat or text data it must use the "
                           "student's tokenizer; for texts with labels it is a classifier of the same labels "
                           "(e.g. a finished classify run), any tokenizer.")
    temperature: float = setting(2.0, help="Softens both models' predictions before comparing them: above 1 "
                                 "shows the student the teacher's second choices too.", gt=0.0, max=100.0)
    alpha: float = setting(0.5, help="Weight of the example answers (hard labels); 1 - alpha goes to matching "
                           "the teacher. 0: learn only from the teacher.", min=0.0, max=1.0)
    student_layers: int = setting(0, help="Make the student smaller: keep this many of the model's layers, spread "
                                  "evenly from first to last, so it starts from the model's own weights (as DistilBERT "
                                  "did). 0 keeps the model as it is. Needs method 'full' and chat or text data.",
                                  min=0, max=1000)


def _teacher_base(spec: str, ws) -> str:
    """The model spec whose tokenizer and base weights the teacher uses."""
    return teacher_run(spec, ws)["model"] if parse(spec).is_run else spec


def check_same_vocabulary(teacher_tok, student_tok) -> None:
    """Refuse a teacher whose token ids do not mean what the student's do (StudioError on distill.teacher)."""
    t_size, s_size = len(teacher_tok), len(student_tok)
    if t_size != s_size:
        raise StudioError(f"teacher and student must share a tokenizer: teacher has {t_size} tokens, student "
                          f"{s_size}; pick a teacher from the same family.", field="distill.teacher",
                          key="stage.distill.vocab_size", teacher_size=t_size, student_size=s_size)
    t_vocab, s_vocab = teacher_tok.get_vocab(), student_tok.get_vocab()
    step = max(1, s_size // 500)
    sample = sorted(s_vocab.items(), key=lambda kv: kv[1])[::step]
    mismatch = next(((tok, i) for tok, i in sample if t_vocab.get(tok) != i), None)
    if mismatch is not None:
        tok, i = mismatch
        raise StudioError(f"teacher and student must share a tokenizer: both have {s_size} tokens but token {tok!r} "
                          f"is id {i} for the student and {t_vocab.get(tok)} for the teacher; pick a teacher from "
                          "the same family.", field="distill.teacher",
                          key="stage.distill.vocab_ids", size=s_size, token=tok, student_id=i,
                          teacher_id=t_vocab.get(tok))
    if teacher_tok(_PROBE_TEXT, add_special_tokens=False)["input_ids"] != \
            student_tok(_PROBE_TEXT, add_special_tokens=False)["input_ids"]:
        raise StudioError(f"teacher and student must share a tokenizer: both have {s_size} tokens but split the "
                          "same text differently; pick a teacher from the same family.", field="distill.teacher",
                          key="stage.distill.vocab_split", size=s_size)


def distillation_loss(student_logits, teacher_logits, labels, temperature: float, alpha: float,
                      num_items: Any = None):
    """(loss, ce, kl) summed over the response tokens (labels != -100) and divided by their count.

    `num_items` overrides that count (the trainer passes the tokens of all accumulated micro-batches,
    so accumulation gives the same gradient as one big batch). Logits are (batch, seq, vocab); position
    i predicts labels[i + 1].
    """
    import torch

    vocab = min(student_logits.shape[-1], teacher_logits.shape[-1])  # padded embedding rows are never tokens
    targets = labels[:, 1:]
    mask = targets != -100
    # Only response positions are compared: selecting them first keeps the vocab-sized tensors small.
    s = student_logits[:, :-1][mask][:, :vocab].float()
    t = teacher_logits[:, :-1][mask][:, :vocab].float()
    count = torch.as_tensor(mask.sum() if num_items is None else num_items, device=s.device).clamp(min=1)
    return soft_target_loss(s, t, targets[mask], count, temperature, alpha)


def _trainer_class():
    from trl import SFTTrainer

    class DistillationTrainer(SFTTrainer):
        """SFTTrainer whose loss mixes the hard labels with a frozen teacher's softened predictions."""

        def __init__(self, *args, teacher, temperature: float, alpha: float, **kwargs):
            super().__init__(*args, **kwargs)
            student_dtype = next(p.dtype for p in self.model.parameters() if p.is_floating_point())
            self.teacher = teacher.to(device=self.accelerator.device, dtype=student_dtype).eval()
            self.teacher.requires_grad_(False)
            self.temperature, self.alpha = temperature, alpha

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            import torch

            mode = "train" if self.model.training else "eval"
            labels = inputs["labels"]
            forward = {k: v for k, v in inputs.items() if k != "labels"}
            forward["use_cache"] = False
            outputs = model(**forward)
            with torch.no_grad():
                teacher_logits = self.teacher(**forward).logits
            # Prompt-learning models (e.g. a run's result) prepend virtual tokens: keep the real positions.
            seq = labels.shape[1]
            loss, ce, kl = distillation_loss(outputs.logits[:, -seq:], teacher_logits[:, -seq:], labels, self.temperature, self.alpha,
                                             num_items_in_batch)
            self._metrics[mode]["distill_ce"].append(ce.item())
            self._metrics[mode]["distill_kl"].append(kl.item())
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # as SFTTrainer: DDP averages the gradients
            return (loss, outputs) if return_outputs else loss

    return DistillationTrainer


def load_teacher(spec: str, ws, recipe):
    """The frozen teacher model: a loadable model, or a finished run's base with its result attached."""
    from studio.methods import METHODS
    from studio.models.loading import load_causal_lm

    run = teacher_run(spec, ws) if parse(spec).is_run else None
    teacher, _ = load_causal_lm(run["model"] if run else spec, ws, precision=recipe.train.precision,
                                trust_remote_code=recipe.trust_remote_code)
    if run:
        teacher = METHODS.get(run["method"], field="distill.teacher").load_result(teacher, Path(run["result_dir"]))
    return teacher.eval().requires_grad_(False)


def _check_student_layers(recipe, ws, keep: int) -> None:
    """A smaller student is saved whole: only method 'full' keeps its new shape (an adapter would be loaded back onto
    the full model), and the model must have more layers than it keeps."""
    from studio.memory import load_config
    from studio.models.catalogue import resolve_model
    from studio.models.shrink import check_keep

    if recipe.method.name != "full":
        raise StudioError(f"'distill.student_layers' needs method 'full' (the smaller student is saved whole), not "
                          f"'{recipe.method.name}'; pick full, or set student_layers to 0.",
                          field="distill.student_layers", key="stage.distill.layers_method", method=recipe.method.name)
    check_keep(load_config(resolve_model(recipe.model, ws)), keep)


def _smaller_student(ctx: TrainContext, keep: int):
    """reshape hook for train_causal_lm: cut the loaded student to `keep` layers and say which ones."""
    from studio.models.shrink import keep_layers

    def reshape(model) -> None:
        total = model.config.num_hidden_layers
        kept = keep_layers(model, keep)
        ctx.emit({"type": "log", "message": f"Student: {keep} of the model's {total} layers "
                                            f"({', '.join(map(str, kept))})"})

    return reshape


@STAGES.register("distill")
class Distillation(Stage):
    title = "Knowledge distillation"
    summary = "A smaller student learns from your examples and from a bigger teacher's predictions."
    settings_cls = DistillConfig
    generates, evaluation = True, "generation"

    @classmethod
    def check_data(cls, recipe, ws) -> None:
        from studio.models.catalogue import check_model
        from studio.models.loading import load_tokenizer
        from studio.stages.sft import SupervisedFineTuning

        from studio.stages.classify import is_classification_data

        settings = cls.settings(recipe)
        spec = settings.teacher.strip()
        if not spec:
            raise StudioError("'distill.teacher' is empty; name the model to learn from, or 'run:<run id>'.",
                              field="distill.teacher", key="stage.distill.no_teacher")
        if is_classification_data(recipe, ws):
            if settings.student_layers:
                raise StudioError("'distill.student_layers' makes a smaller chat model; for texts with labels set it "
                                  "to 0 and pick a smaller classifier as the model.", field="distill.student_layers",
                                  key="stage.distill.layers_classify")
            from studio.stages.distill_classify import check_classifier_distillation

            return check_classifier_distillation(recipe, ws, spec)
        SupervisedFineTuning.check_data(recipe, ws)
        if settings.student_layers:
            _check_student_layers(recipe, ws, settings.student_layers)
        base = _teacher_base(spec, ws)
        try:
            check_model(base, ws)
            teacher_tok = load_tokenizer(base, ws, recipe.trust_remote_code)
        except StudioError as error:
            raise StudioError(f"The teacher cannot be used: {error}", field="distill.teacher") from None
        check_same_vocabulary(teacher_tok, load_tokenizer(recipe.model, ws, recipe.trust_remote_code))

    @classmethod
    def memory_models(cls, recipe, ws, config):
        """The student as it will be (fewer layers when `student_layers` says so) and the teacher's parameters."""
        import copy

        from studio.memory import load_config, model_shape
        from studio.models.catalogue import resolve_model
        from studio.models.shrink import cut_config, layer_count, spread

        settings = cls.settings(recipe)
        keep, total = settings.student_layers, layer_count(config) or 0
        if 0 < keep < total:
            config = cut_config(copy.deepcopy(config), spread(total, keep))
        try:
            teacher = load_config(resolve_model(_teacher_base(settings.teacher.strip(), ws), ws))
            teacher_params = model_shape(teacher, "classify" if teacher.architectures and any(
                a.endswith("ForSequenceClassification") for a in teacher.architectures) else "causal")["params"]
        except Exception:  # noqa: BLE001 - a teacher the estimate cannot read is refused by check_data, not here
            teacher_params = 0
        return config, teacher_params

    @classmethod
    def run(cls, ctx: TrainContext) -> dict:
        from studio.stages.classify import is_classification_data
        from studio.stages.sft import build_sft_datasets, train_causal_lm
        from studio.workspace import Workspace

        settings = cls.settings(ctx.recipe)
        if is_classification_data(ctx.recipe, Workspace.open(ctx.home)):
            from studio.stages.distill_classify import distill_classifier

            return distill_classifier(ctx, settings)
        ctx.emit({"type": "log", "message": f"Loading teacher {settings.teacher} (T={settings.temperature}, "
                                            f"alpha={settings.alpha})"})
        teacher = load_teacher(settings.teacher.strip(), Workspace.open(ctx.home), ctx.recipe)
        trainer = functools.partial(_trainer_class(), teacher=teacher, temperature=settings.temperature,
                                    alpha=settings.alpha)
        reshape = _smaller_student(ctx, settings.student_layers) if settings.student_layers else None
        return train_causal_lm(ctx, build_sft_datasets, trainer_cls=trainer, reshape=reshape)
