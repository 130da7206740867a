"""ResNet50 inference: where the weights come from, how an image becomes a tensor, and top-k.

Nothing here runs at import time. The service decides when to load the model (once, at start-up),
and tests can import this module in a fraction of a second.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image
from torchvision.models import ResNet50_Weights, resnet50
from torchvision.transforms import functional as F

MODEL_NAME = "resnet50"
WEIGHTS = ResNet50_Weights.IMAGENET1K_V2
# The 1000 ImageNet class names ship inside torchvision: no download needed.
CATEGORIES: list[str] = WEIGHTS.meta["categories"]
MAX_TOP_K = len(CATEGORIES)


class RandomWeightsNotAllowed(RuntimeError):
    """No trained weights were found, and random weights were not explicitly allowed."""


@dataclass(frozen=True)
class WeightsInfo:
    """Where the model's weights came from. Every answer of the service repeats it."""

    source: str  # "file", "torchvision-cache" or "random"
    detail: str  # the file that was loaded, or the seed of the random weights
    is_random: bool


@dataclass(frozen=True)
class Prediction:
    class_id: int
    label: str
    probability: float

    def to_dict(self) -> dict:
        return asdict(self)


def preprocess(image: Image.Image) -> torch.Tensor:
    """Turn a PIL image into the (3, 224, 224) float32 tensor these weights were trained on.

    Must equal WEIGHTS.transforms() applied to the RGB image: resize the short side to 232
    (bilinear, antialiased), centre-crop 224x224, scale to [0, 1], normalise per channel.
    """
    ### BEGIN SOLUTION
    transform = WEIGHTS.transforms()
    image = image.convert("RGB")  # grayscale, palette and RGBA images become 3-channel RGB
    image = F.resize(image, transform.resize_size, interpolation=transform.interpolation, antialias=True)
    image = F.center_crop(image, transform.crop_size)
    tensor = F.convert_image_dtype(F.pil_to_tensor(image), torch.float)
    return F.normalize(tensor, mean=transform.mean, std=transform.std)
    ### END SOLUTION


def torchvision_cache_file() -> Path:
    """Where torchvision keeps these weights once downloaded (honours TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(WEIGHTS.url)


def _load_state_dict(path: Path) -> dict:
    # weights_only=True: a weights file is data, never code to run.
    return torch.load(path, map_location="cpu", weights_only=True)


class Classifier:
    """A loaded model, ready to answer: eval mode, no gradients, top-k with labels."""

    def __init__(self, model: torch.nn.Module, weights: WeightsInfo):
        self.model = model.eval()
        self.weights = weights

    def predict(self, image: Image.Image, top_k: int = 5) -> list[Prediction]:
        """The ``top_k`` most probable classes, highest first."""
        ### BEGIN SOLUTION
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
        ### END SOLUTION

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
    """Build ResNet50 with weights from, in order: ``weights_path``, the torchvision cache, or,
    only when ``allow_random`` is true, random weights seeded with ``seed``.

    Never downloads anything. Raises FileNotFoundError for a missing ``weights_path`` and
    RandomWeightsNotAllowed when there are no weights and random ones were not allowed.
    """
    if num_threads:
        # One process, a known number of threads: several workers each using every core
        # would fight over the CPU (step 05 explains oversubscription).
        torch.set_num_threads(num_threads)
    ### BEGIN SOLUTION
    cached = torchvision_cache_file()
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} does not exist")
        state, info = _load_state_dict(path), WeightsInfo("file", str(path), is_random=False)
    elif cached.is_file():
        state, info = _load_state_dict(cached), WeightsInfo("torchvision-cache", str(cached), is_random=False)
    elif allow_random:
        state, info = None, WeightsInfo("random", f"seed={seed}", is_random=True)
    else:
        raise RandomWeightsNotAllowed(
            f"no weights file was given and {cached} does not exist; pass allow_random=True "
            "to run on random weights (predictions will be meaningless, and labelled as such)"
        )
    torch.manual_seed(seed)  # makes random weights reproducible; harmless otherwise
    model = resnet50(weights=None)  # the architecture only: never a download
    if state is not None:
        model.load_state_dict(state)
    ### END SOLUTION
    return Classifier(model, info)
