"""Feature extraction: the pretrained model stays frozen and only a new classification head trains.

The base turns each text into features it already knows how to compute; the head (BERT's
`classifier`, a decoder classifier's `score`) learns to read the classes from them. Cheapest of
all to train and hard to overfit, but the features never adapt to the task, so it reaches less
than full fine-tuning or LoRA on anything the pretrained features do not already separate.
BERT-like encoders can also train their pooler (the dense layer over the [CLS] token) with
`unfreeze_pooler`. The result is a whole model (base + head) that
`AutoModelForSequenceClassification` loads; it serves only the classify stage.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError
from studio.methods import _blocks
from studio.methods.base import METHODS
from studio.methods.full import Full
from studio.settings import setting


@dataclass
class FeatureExtractionSettings:
    unfreeze_pooler: bool = setting(False, help="Also train the pooler (the dense layer over the [CLS] token) "
                                    "of BERT-like encoders; a little more capacity for a few more parameters.")

    name = "feature_extraction"


def pooler_params(model: Any) -> list[tuple[str, Any]]:
    return [(f"{m_name}.{n}", p) for m_name, m in model.named_modules() if m_name.rsplit(".", 1)[-1] == "pooler"
            for n, p in m.named_parameters()]


@METHODS.register("feature_extraction")
class FeatureExtraction(Full):
    settings_cls = FeatureExtractionSettings
    title = "Feature extraction"
    summary = "Freezes the whole model and trains only a new classification head; cheapest, least adaptable."
    stages = ("classify",)
    mergeable = False

    @classmethod
    def prepare(cls, model: Any, settings: FeatureExtractionSettings) -> Any:
        head = _blocks.head_params(model)
        if model.get_output_embeddings() is not None or not head:
            raise StudioError(f"Feature extraction trains a classification head, which this "
                              f"{type(model).__name__} lacks; use it with the classify stage.", field="method.name",
                              key="method.feature_extraction.no_head", model_class=type(model).__name__)
        chosen = list(head)
        if settings.unfreeze_pooler:
            pooler = pooler_params(model)
            if not pooler:
                raise StudioError(f"'method.unfreeze_pooler' is on but this {type(model).__name__} has no pooler; "
                                  "turn it off.", field="method.unfreeze_pooler",
                                  key="method.feature_extraction.no_pooler", model_class=type(model).__name__)
            chosen += pooler
        _blocks.freeze_all(model)
        _blocks.set_trainable(chosen)
        return model

    @classmethod
    def load_result(cls, base_model: Any, result_dir) -> Any:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification.from_pretrained(str(result_dir), use_safetensors=True,
                                                                  dtype=base_model.dtype)
