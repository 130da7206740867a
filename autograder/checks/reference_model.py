"""What a correct classifier answers, computed in the grader's own process.

The probes report what the learner's code returned; these functions give the values to compare
them with: a seeded ResNet50 (saved as the weights file the learner's code loads), the
transforms its weights prescribe, softmax over its logits. Models are cached per seed, so the
checks of one run build each at most once.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy

RESNET50_PARAMETERS = 25_557_032  # torchvision's resnet50(): what any ResNet50 with 1000 classes has
CLASSES = 1000


@functools.lru_cache(maxsize=2)
def seeded_model(seed: int):
    """A ResNet50 with random weights drawn from ``seed``, in eval mode; the global RNG is left as it was."""
    import torch
    from torchvision.models import resnet50

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return resnet50(weights=None).eval()


def weights_file(seed: int, folder: Path) -> Path:
    """The state_dict of ``seeded_model(seed)`` saved in ``folder`` (once)."""
    import torch

    path = Path(folder) / f"resnet50-seed-{seed}.pt"
    if not path.is_file():
        partial = path.with_suffix(".partial")
        torch.save(seeded_model(seed).state_dict(), partial)
        partial.replace(path)
    return path


def logits(seed: int, batch: numpy.ndarray) -> numpy.ndarray:
    import torch

    with torch.inference_mode():
        return seeded_model(seed)(torch.from_numpy(batch)).numpy()


def transform(image):
    """The (3, 224, 224) tensor ResNet50_Weights.IMAGENET1K_V2 prescribes for an RGB ``image``."""
    from torchvision.models import ResNet50_Weights

    return ResNet50_Weights.IMAGENET1K_V2.transforms()(image.convert("RGB"))


def probabilities(seed: int, image) -> numpy.ndarray:
    """softmax(logits) over the 1000 classes for ``image``, by ``seeded_model(seed)``."""
    import torch

    with torch.inference_mode():
        batch = transform(image).unsqueeze(0)
        return torch.softmax(seeded_model(seed)(batch), dim=1)[0].numpy()


@functools.cache
def categories() -> tuple[str, ...]:
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def top_k_failure(rows: list, expected: numpy.ndarray, k: int, tolerance: float) -> str:
    """Why ``rows`` ([class_id, label, probability], highest first) are not the top ``k`` of
    ``expected``; "" when they are. Classes whose probabilities tie within ``tolerance`` may
    come in either order."""
    if len(rows) != k:
        return f"predict(image, top_k={k}) returned {len(rows)} predictions"
    try:
        ids = [int(row[0]) for row in rows]
        probabilities_ = [float(row[2]) for row in rows]
        labels = [str(row[1]) for row in rows]
    except (TypeError, ValueError, IndexError):
        return f"predict(image, top_k={k}) returned rows that are not (class_id, label, probability)"
    if probabilities_ != sorted(probabilities_, reverse=True):
        return f"predictions are not sorted by probability, highest first: {probabilities_}"
    if any(not 0 <= i < len(expected) for i in ids):
        return f"class ids {ids} are not ImageNet classes (0 to {len(expected) - 1})"
    names = categories()
    if any(label != names[i] for i, label in zip(ids, labels, strict=True)):
        return "a label does not match its class_id in the ImageNet category list"
    worst = max(abs(p - float(expected[i])) for i, p in zip(ids, probabilities_, strict=True))
    if worst > tolerance:
        return (
            f"probabilities differ from softmax(logits) by {worst:.3g}: "
            "softmax over all 1000 classes, before taking the top k"
        )
    # The k-th answered class must be at least as likely as any class left out (up to ties).
    left_out = numpy.delete(expected, ids)
    if left_out.size and float(left_out.max()) > float(expected[ids[-1]]) + tolerance:
        wanted = [int(i) for i in numpy.argsort(-expected)[:k]]
        return f"top-{k} class ids {ids} differ from the expected {wanted}"
    return ""
