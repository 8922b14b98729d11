"""Training stages: what the model learns (SFT now; later CPT, seq2seq, DPO, ...).

Each stage is one module that subclasses `Stage` and registers itself with
`@STAGES.register("name")`; importing this package imports them all.
"""
from studio.stages.base import STAGES, Stage, TrainContext  # noqa: F401
from studio.stages import sft  # noqa: F401  (registration)
