"""Where the model's weights come from, and the rule that random weights are never a surprise."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.models import ResNet50_Weights, resnet50

WEIGHTS = ResNet50_Weights.IMAGENET1K_V2


class RandomWeightsNotAllowed(RuntimeError):
    """No trained weights were found, and random weights were not explicitly allowed."""


@dataclass(frozen=True)
class WeightsInfo:
    """Where the model's weights came from. Every answer of the service repeats it."""

    source: str  # "file", "torchvision-cache" or "random"
    detail: str  # the file that was loaded, or the seed of the random weights
    is_random: bool


def torchvision_cache_file() -> Path:
    """Where torchvision keeps these weights once downloaded (honours TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(WEIGHTS.url)


def _load_state_dict(path: Path) -> dict:
    # weights_only=True: a weights file is data, never code to run.
    return torch.load(path, map_location="cpu", weights_only=True)


def load_resnet50(
    weights_path: str | os.PathLike | None = None, *, allow_random: bool = False, seed: int = 0
) -> tuple[torch.nn.Module, WeightsInfo]:
    """ResNet50 with weights from, in order: ``weights_path``, the torchvision cache, or, only
    when ``allow_random`` is true, random weights seeded with ``seed``.

    Never downloads anything. Raises FileNotFoundError for a missing ``weights_path`` (never a
    silent fall-back) and RandomWeightsNotAllowed when there are no weights and random ones
    were not allowed.
    """
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
    return model, info
