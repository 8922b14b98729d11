"""Fine-tuning Studio: a browser studio (and a `studio` command) to fine-tune language models."""

__version__ = "0.1.0"
