"""What both distillation stages share: the teacher run a spec names and the soft-target loss over score rows."""
from __future__ import annotations

from studio.errors import StudioError
from studio.models.refs import has_result, parse


def teacher_run(spec: str, ws) -> dict:
    """The finished run that `distill.teacher` names (`run:<id>`), or a StudioError saying why it cannot teach."""
    run_id = parse(spec).run_id
    run = ws.get_run(run_id)
    if run is None:
        raise StudioError(f"'distill.teacher' names run '{run_id}', which does not exist; pick a completed run.",
                          field="distill.teacher", key="stage.distill.no_run", run_id=run_id)
    if not has_result(run):
        raise StudioError(f"'distill.teacher' names run '{run_id}', which is {run['status']} without a saved "
                          "result; pick a completed run.", field="distill.teacher",
                          key="stage.distill.run_not_completed", run_id=run_id, status=run["status"])
    return run


def soft_target_loss(student, teacher, targets, count, temperature: float, alpha: float):
    """(loss, ce, kl) of score rows (n, classes): alpha * CE + (1 - alpha) * T^2 * KL(teacher_T || student_T),
    both terms summed over the rows and divided by `count`."""
    import torch.nn.functional as F

    ce = F.cross_entropy(student, targets, reduction="sum") / count
    t_logp = F.log_softmax(teacher / temperature, dim=-1)
    s_logp = F.log_softmax(student / temperature, dim=-1)
    kl = (t_logp.exp() * (t_logp - s_logp)).sum() / count
    return alpha * ce + (1 - alpha) * temperature ** 2 * kl, ce, kl
