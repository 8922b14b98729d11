"""What the fork server imports once for every job it forks (`studio.jobs.processes`): the libraries a training
or export job spends its first seconds importing. Importing is all it does: no model, no tensor, no thread pool,
no GPU, no decision a job makes from its environment (hub kernels are decided in the job, `studio.hub_kernels`),
so a fork of it is as clean as a fresh process."""
import torch  # noqa: F401
import transformers.modeling_utils  # noqa: F401
import transformers.trainer  # noqa: F401
import peft  # noqa: F401
import datasets  # noqa: F401
import trl  # noqa: F401

import studio.stages  # noqa: F401
import studio.training  # noqa: F401
