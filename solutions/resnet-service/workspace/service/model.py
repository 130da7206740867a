"""The classifier the service runs: a loaded model, eval mode, top-k predictions with labels.

Nothing here runs at import time. The service decides when to load the model (once, at start-up),
and tests can import this module in a fraction of a second.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
from PIL import Image

from service.imaging import preprocess
from service.weights import WEIGHTS, RandomWeightsNotAllowed, WeightsInfo, load_resnet50

MODEL_NAME = "resnet50"
# The 1000 ImageNet class names ship inside torchvision: no download needed.
CATEGORIES: list[str] = WEIGHTS.meta["categories"]
MAX_TOP_K = len(CATEGORIES)

# What the service imports from here, including names re-exported from imaging and weights.
__all__ = [
    "CATEGORIES", "MAX_TOP_K", "MODEL_NAME", "Classifier", "Prediction", "RandomWeightsNotAllowed",
    "WeightsInfo", "load_classifier", "preprocess",
]


@dataclass(frozen=True)
class Prediction:
    class_id: int
    label: str
    probability: float

    def to_dict(self) -> dict:
        return asdict(self)


class Classifier:
    """A loaded model, ready to answer: eval mode, no gradients, top-k with labels."""

    def __init__(self, model: torch.nn.Module, weights: WeightsInfo):
        self.model = model.eval()
        self.weights = weights

    def predict(self, image: Image.Image, top_k: int = 5) -> list[Prediction]:
        """The ``top_k`` most probable classes, highest first. ValueError unless 1 <= top_k <= 1000."""
        if not 1 <= top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        batch = preprocess(image).unsqueeze(0)
        with torch.inference_mode():
            probabilities = torch.softmax(self.model(batch), dim=1)[0]
        values, indices = torch.topk(probabilities, top_k)
        return [
            Prediction(class_id=int(index), label=CATEGORIES[int(index)], probability=float(value))
            for value, index in zip(values, indices)
        ]

    def warm_up(self) -> None:
        """One throw-away prediction, so the first real request is not the slow one."""
        self.predict(Image.new("RGB", (256, 256)), top_k=1)


def load_classifier(
    weights_path: str | os.PathLike | None = None,
    *,
    allow_random: bool = False,
    seed: int = 0,
    num_threads: int | None = None,
) -> Classifier:
    """A Classifier over ``load_resnet50(...)``; with ``num_threads``, PyTorch uses that many threads.

    One process, a known number of threads: several workers that each use every core fight over
    the CPU (step 05 explains oversubscription).
    """
    if num_threads:
        torch.set_num_threads(num_threads)
    model, info = load_resnet50(weights_path, allow_random=allow_random, seed=seed)
    return Classifier(model, info)
