"""Step 01 probes: the learner's imaging, weights and model code called on the grader's inputs.

Every input (photos cropped at random, seeds, a weights file, thread counts) is chosen by the
grader for this run; these functions return what the learner's code made of them.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import time

from .harness import input_path


def _open(name: str):
    from PIL import Image

    with Image.open(input_path(name)) as image:
        image.load()
        return image


def _batch(name: str):
    import numpy
    import torch

    return torch.from_numpy(numpy.load(input_path(name), allow_pickle=False))


def import_modules(wanted: dict[str, list[str]]) -> dict:
    """Import each module; which of its wanted names exist, and what importing raised."""
    from .harness import describe_error

    facts = {"errors": {}, "present": {}, "seconds": 0.0}
    for name, names in wanted.items():
        started = time.perf_counter()
        try:
            module = importlib.import_module(name)
        except BaseException as error:
            facts["errors"][name] = describe_error(error)
            continue
        finally:
            facts["seconds"] += time.perf_counter() - started
        facts["present"][name] = [n for n in names if hasattr(module, n)]
    return facts


def to_rgb_outputs(cases: dict[str, str]) -> dict:
    """``to_rgb`` of each input image: its mode, size and pixels."""
    import numpy
    from service.imaging import to_rgb

    outputs = {}
    for case, file_name in cases.items():
        out = to_rgb(_open(file_name))
        outputs[case] = {"type": type(out).__name__}
        if hasattr(out, "mode") and hasattr(out, "size"):
            outputs[case].update(mode=out.mode, size=list(out.size))
            if out.mode == "RGB":
                outputs[case]["pixels"] = numpy.asarray(out, dtype=numpy.uint8)
    return outputs


def preprocess_outputs(images: list[str]) -> list:
    """``preprocess`` of each input image: the type, shape and dtype of what came back, and the
    values when it is a tensor."""
    import torch
    from service.imaging import preprocess

    rows = []
    for file_name in images:
        got = preprocess(_open(file_name))
        row = {"image": file_name, "type": type(got).__name__}
        if isinstance(got, torch.Tensor):
            row.update(shape=list(got.shape), dtype=str(got.dtype))
            if got.numel() <= 3 * 512 * 512:
                row["values"] = got.detach().float()
        rows.append(row)
    return rows


def random_weights(seeds: list[int], batch: str) -> dict:
    """Refusal without permission; labels and outputs of random weights for each seed."""
    import torch

    os.environ["TORCH_HOME"] = tempfile.mkdtemp()  # an empty torchvision cache
    from service.weights import RandomWeightsNotAllowed, load_resnet50

    facts = {}
    try:
        load_resnet50(weights_path=None)
        facts["refused"] = "no error"
    except RandomWeightsNotAllowed:
        facts["refused"] = "yes"
    except Exception as error:
        facts["refused"] = f"{type(error).__name__}: {error}"
    inputs = _batch(batch)
    facts["runs"] = []
    for seed in seeds:
        model, info = load_resnet50(weights_path=None, allow_random=True, seed=seed)
        with torch.inference_mode():
            outputs = model.eval()(inputs)
        parameters = sum(int(p.numel()) for p in model.parameters())
        facts["runs"].append(
            {
                "seed": seed,
                "is_random": bool(info.is_random),
                "source": str(info.source),
                "outputs": outputs,
                "parameters": parameters,
            }
        )
    return facts


def weights_file(weights: str, batch: str, missing: str) -> dict:
    """Outputs of the model loaded from the grader's weights file, and what a missing file raises."""
    import torch
    from service.weights import load_resnet50

    model, info = load_resnet50(weights_path=input_path(weights))
    with torch.inference_mode():
        outputs = model.eval()(_batch(batch))
    absent = os.path.join(tempfile.mkdtemp(), missing)
    try:
        load_resnet50(weights_path=absent, allow_random=True)
        missing_error = "no error"
    except Exception as error:
        missing_error = f"{type(error).__name__}: {error}"
    return {
        "outputs": outputs,
        "is_random": bool(info.is_random),
        "source": str(info.source),
        "missing_error": missing_error,
    }


def top_k(weights: str, photo: str, ks: list[int]) -> dict:
    """``predict(photo, top_k=k)`` for each k, as (class_id, label, probability) rows."""
    from service.model import load_classifier

    classifier = load_classifier(weights_path=input_path(weights))
    image = _open(photo)
    return {
        str(k): [[int(p.class_id), str(p.label), float(p.probability)] for p in classifier.predict(image, top_k=k)]
        for k in ks
    }


def inference_mode(weights: str, photo: str) -> dict:
    """Training flag, batch-norm statistics and gradient tracking around two predictions."""
    import torch
    from service.model import load_classifier

    classifier = load_classifier(weights_path=input_path(weights))
    model = classifier.model
    stats = {name: buffer.clone() for name, buffer in model.named_buffers() if "running" in name}
    grad_seen: list[bool] = []
    hook = model.register_forward_hook(lambda m, i, o: grad_seen.append(bool(o.requires_grad)))
    image = _open(photo)
    first = [[int(p.class_id), str(p.label), float(p.probability)] for p in classifier.predict(image, top_k=3)]
    second = [[int(p.class_id), str(p.label), float(p.probability)] for p in classifier.predict(image, top_k=3)]
    hook.remove()
    changed = [n for n, b in model.named_buffers() if n in stats and not torch.equal(stats[n], b)]
    return {
        "training": bool(model.training),
        "changed": changed[:3],
        "grad": any(grad_seen),
        "calls": len(grad_seen),
        "first": first,
        "second": second,
    }


def threads_and_warm_up(thread_counts: list[int]) -> dict:
    """torch's thread count after each ``load_classifier(num_threads=n)``; forward passes of warm_up()."""
    import torch
    from service.model import load_classifier

    threads = []
    for wanted in thread_counts:
        classifier = load_classifier(allow_random=True, num_threads=wanted)
        threads.append(torch.get_num_threads())
    calls: list[int] = []
    hook = classifier.model.register_forward_hook(lambda *args: calls.append(1))
    classifier.warm_up()
    hook.remove()
    return {"threads": threads, "warm_up_calls": len(calls)}
