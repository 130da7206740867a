"""Step 01, model inference: grades ``service/imaging.py``, ``service/weights.py`` and ``service/model.py``.

Each check sends a short probe to the learner's code in a separate Python process (the runner
decides how), so an endless loop or a crash in the learner's code fails that check only.
The probes measure; the verdicts are decided here, where they can be read.
"""

from __future__ import annotations

from autograder.checks.context import Context
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome
from autograder.checks.samples import PHOTOS, photo_path
from autograder.checks.snippets import STUBBED_FUNCTIONS

STEP = StepChecks("01")
IMAGING_FILE, WEIGHTS_FILE, MODEL_FILE = "service/imaging.py", "service/weights.py", "service/model.py"
# What each file must define; the service (step 03) and the hidden tests rely on these names.
PUBLIC_NAMES = {
    "service.imaging": ("to_rgb", "preprocess"),
    "service.weights": ("load_resnet50", "WeightsInfo", "RandomWeightsNotAllowed", "torchvision_cache_file"),
    "service.model": ("load_classifier", "Classifier", "Prediction", "MAX_TOP_K", "MODEL_NAME"),
}
PREPROCESS_TOLERANCE = 1e-5
PROBABILITY_TOLERANCE = 1e-4

# Shared by the probes that need reference weights: a seeded ResNet50 saved as a state_dict file.
_REFERENCE_WEIGHTS = """
import torch, torchvision
from PIL import Image
from torchvision.models import ResNet50_Weights, resnet50

def reference_weights(path, seed=123):
    torch.manual_seed(seed)
    net = resnet50(weights=None).eval()
    torch.save(net.state_dict(), path)
    return net

def reference_probabilities(net, image):
    batch = ResNet50_Weights.IMAGENET1K_V2.transforms()(image.convert("RGB")).unsqueeze(0)
    with torch.inference_mode():
        return torch.softmax(net(batch), dim=1)[0]
"""


@STEP.check(
    "files-complete",
    "imaging.py, weights.py and model.py import, with every exercise filled in",
    points=1,
    hint="Run the three %%writefile cells after replacing each `raise NotImplementedError()`; keep "
    "work such as loading weights out of module level, so importing is quick and free of side effects.",
)
def files_complete(ctx: Context) -> Outcome:
    value, failure = ctx.probe(
        STUBBED_FUNCTIONS
        + f"""
import importlib, time

def probe():
    facts = {{"missing": [], "stubbed": [], "seconds": 0.0}}
    for name, wanted in {PUBLIC_NAMES!r}.items():
        started = time.perf_counter()
        module = importlib.import_module(name)
        facts["seconds"] += time.perf_counter() - started
        facts["missing"] += [f"{{name}}.{{n}}" for n in wanted if not hasattr(module, n)]
        facts["stubbed"] += [f"{{name}}.{{f}}" for f in stubbed_functions(module)]
    return facts
""",
        needs=(IMAGING_FILE, WEIGHTS_FILE, MODEL_FILE),
        timeout=60,
    )
    if failure:
        return Outcome.fail(f"importing the service modules failed: {failure}")
    if value["missing"]:
        return Outcome.fail("not defined: " + ", ".join(value["missing"]))
    if value["stubbed"]:
        return Outcome.fail("still an exercise stub (raise NotImplementedError) in: " + ", ".join(value["stubbed"]))
    return Outcome.ok(
        "all three import, define the public names, no stub left", import_seconds=f"{value['seconds']:.2f}"
    )


@STEP.check(
    "to-rgb-all-modes",
    "to_rgb() gives 8-bit RGB for every kind of upload",
    points=2,
    hint="ImageOps.exif_transpose first; scale 16-bit images down (values >> 8) instead of letting "
    "convert() clip them; composite transparent images onto white before dropping alpha.",
)
def to_rgb_all_modes(ctx: Context) -> Outcome:
    photo = str(photo_path("chelsea.png"))
    value, failure = ctx.probe(
        f"""
import io
import numpy as np
from PIL import Image, ImageOps
from service.imaging import to_rgb

def diff(a, b):
    if a.size != b.size:
        return 999
    return int(np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max())

def probe():
    with Image.open({photo!r}) as photo:
        rgb = photo.convert("RGB")
    cases = {{}}
    for mode in ("L", "P", "CMYK"):
        image = rgb.convert(mode)
        out = to_rgb(image)
        cases[mode] = [out.mode, diff(out, image.convert("RGB"))]
    gray = np.asarray(rgb.convert("L"), dtype=np.uint16)
    sixteen = Image.fromarray(gray * 257)
    out = to_rgb(sixteen)
    cases[sixteen.mode] = [out.mode, diff(out, rgb.convert("L").convert("RGB"))]
    for mode in ("RGBA", "LA"):
        image = rgb.convert(mode)
        alpha = image.getchannel("A").copy()
        alpha.paste(0, (0, 0, 40, 40))  # a transparent corner
        black = Image.new(mode, (40, 40))
        image.putalpha(alpha)
        image.paste(black, (0, 0), None)
        image.putalpha(alpha)
        out = to_rgb(image)
        corner = np.asarray(out.crop((0, 0, 40, 40)), dtype=int)
        rest = diff(out.crop((50, 50, 200, 200)), image.convert("RGB").crop((50, 50, 200, 200)))
        cases[mode] = [out.mode, rest, int(corner.min())]
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated 90 degrees
    rgb.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    with Image.open(io.BytesIO(buffer.getvalue())) as sideways:
        sideways.load()
        out = to_rgb(sideways)
        upright = ImageOps.exif_transpose(sideways).convert("RGB")
    cases["EXIF-rotated JPEG"] = [out.mode, diff(out, upright), list(out.size), list(upright.size)]
    return cases
""",
        needs=(IMAGING_FILE,),
    )
    if failure:
        return Outcome.fail(f"to_rgb() failed: {failure}")
    for case, facts in value.items():
        if facts[0] != "RGB":
            return Outcome.fail(f"to_rgb() returned mode {facts[0]} for a {case} image; expected RGB")
        if case == "EXIF-rotated JPEG" and facts[2] != facts[3]:
            return Outcome.fail(f"a JPEG whose EXIF says 'rotated' came out {facts[2]}, upright it is {facts[3]}")
        if facts[1] > 2:
            return Outcome.fail(f"to_rgb() changed the pixels of a {case} image (max difference {facts[1]})")
        if case in ("RGBA", "LA") and facts[2] < 250:
            return Outcome.fail(f"transparent pixels of a {case} image came out dark, not white (min {facts[2]})")
    return Outcome.ok(f"RGB for {', '.join(value)}")


@STEP.check(
    "preprocess-matches-torchvision",
    "preprocess() equals the transforms ResNet50 weights prescribe",
    points=2,
    hint="Read ResNet50_Weights.IMAGENET1K_V2.transforms(): resize the short side (bilinear, "
    "antialiased), centre-crop, scale to [0, 1], then normalise with the ImageNet mean and std. "
    "Convert to RGB first so grayscale and RGBA images work too.",
)
def preprocess_matches_torchvision(ctx: Context) -> Outcome:
    paths = [str(photo_path(name)) for name in PHOTOS[:2]]
    value, failure = ctx.probe(
        f"""
import torch
from PIL import Image
from torchvision.models import ResNet50_Weights
from service.imaging import preprocess

def probe():
    expected_transform = ResNet50_Weights.IMAGENET1K_V2.transforms()
    rows = []
    for path in {paths!r}:
        with Image.open(path) as photo:
            photo.load()
        for mode in ("RGB", "L", "RGBA"):
            image = photo.convert(mode)
            got = preprocess(image)
            expected = expected_transform(image.convert("RGB"))
            row = {{"image": path.rsplit("/", 1)[-1] + ":" + mode, "type": type(got).__name__}}
            if isinstance(got, torch.Tensor):
                row.update(shape=list(got.shape), dtype=str(got.dtype))
                if got.shape == expected.shape:
                    row["max_diff"] = float((got.float() - expected).abs().max())
            rows.append(row)
    return rows
""",
        needs=(IMAGING_FILE,),
    )
    if failure:
        return Outcome.fail(f"preprocess() failed: {failure}")
    worst = 0.0
    for row in value:
        if row["type"] != "Tensor":
            return Outcome.fail(f"preprocess() returned a {row['type']} for {row['image']}, not a torch.Tensor")
        if row["shape"] != [3, 224, 224] or row["dtype"] != "torch.float32":
            return Outcome.fail(
                f"preprocess() gave shape {row['shape']} {row['dtype']} for {row['image']}; "
                "expected [3, 224, 224] torch.float32 (one image, no batch dimension)"
            )
        worst = max(worst, row["max_diff"])
        if row["max_diff"] > PREPROCESS_TOLERANCE:
            return Outcome.fail(
                f"preprocess() differs from torchvision's transforms on {row['image']}: "
                f"max abs difference {row['max_diff']:.3g} > {PREPROCESS_TOLERANCE:g}"
            )
    return Outcome.ok(f"matches on {len(value)} photo/mode pairs", max_abs_difference=f"{worst:.2g}")


@STEP.check(
    "random-weights-explicit",
    "random weights only when allowed, seeded and labelled",
    points=2,
    hint="With no weights file and no cached torchvision weights, load_resnet50() must raise "
    "RandomWeightsNotAllowed unless allow_random=True; random weights come from "
    "torch.manual_seed(seed) and WeightsInfo says they are random.",
)
def random_weights_explicit(ctx: Context) -> Outcome:
    value, failure = ctx.probe(
        """
import os, tempfile, torch
os.environ["TORCH_HOME"] = tempfile.mkdtemp()  # an empty torchvision cache
from service.weights import load_resnet50, RandomWeightsNotAllowed

def outputs(loaded):
    torch.manual_seed(0)
    batch = torch.rand(1, 3, 224, 224)
    with torch.inference_mode():
        return loaded[0].eval()(batch)

def probe():
    facts = {}
    try:
        load_resnet50(weights_path=None)
        facts["refused"] = "no error"
    except RandomWeightsNotAllowed:
        facts["refused"] = "yes"
    except Exception as error:
        facts["refused"] = f"{type(error).__name__}: {error}"
    first = load_resnet50(weights_path=None, allow_random=True, seed=7)
    again = load_resnet50(weights_path=None, allow_random=True, seed=7)
    other = load_resnet50(weights_path=None, allow_random=True, seed=8)
    facts["is_random"] = bool(first[1].is_random)
    facts["source"] = str(first[1].source)
    facts["same_seed_equal"] = bool(torch.equal(outputs(first), outputs(again)))
    facts["other_seed_differs"] = not bool(torch.equal(outputs(first), outputs(other)))
    return facts
""",
        needs=(WEIGHTS_FILE,),
    )
    if failure:
        return Outcome.fail(f"loading random weights failed: {failure}")
    if value["refused"] != "yes":
        return Outcome.fail(
            "load_resnet50() without weights and without allow_random=True should raise "
            f"RandomWeightsNotAllowed; it gave: {value['refused']}"
        )
    if not value["is_random"] or value["source"] != "random":
        return Outcome.fail(
            f"random weights must be labelled: got is_random={value['is_random']}, source={value['source']!r}"
        )
    if not value["same_seed_equal"]:
        return Outcome.fail("two classifiers with the same seed give different outputs: seed before building")
    if not value["other_seed_differs"]:
        return Outcome.fail("different seeds give the same weights: is the seed used?")
    return Outcome.ok("refused without permission; seeded, reproducible and labelled when allowed")


@STEP.check(
    "weights-file-loaded",
    "weights load from a configured file",
    points=2,
    hint="torch.load(path, map_location='cpu', weights_only=True) gives a state_dict; load it with "
    "model.load_state_dict(...). A missing file is an error that names the path, never a silent "
    "fall-back to random weights.",
)
def weights_file_loaded(ctx: Context) -> Outcome:
    value, failure = ctx.probe(
        _REFERENCE_WEIGHTS
        + """
import os, tempfile
from service.weights import load_resnet50

def probe():
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "resnet50-test.pt")
    reference = reference_weights(path)
    model, info = load_resnet50(weights_path=path)
    torch.manual_seed(0)
    batch = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        diff = float((model.eval()(batch) - reference(batch)).abs().max())
    missing = os.path.join(folder, "no-such-weights.pt")
    try:
        load_resnet50(weights_path=missing, allow_random=True)
        missing_error = "no error"
    except Exception as error:
        missing_error = f"{type(error).__name__}: {error}"
    return {"diff": diff, "is_random": bool(info.is_random),
            "source": str(info.source), "missing_error": missing_error,
            "missing_named": "no-such-weights.pt" in missing_error}
""",
        needs=(WEIGHTS_FILE,),
    )
    if failure:
        return Outcome.fail(f"loading a weights file failed: {failure}")
    if value["diff"] > 1e-4:
        return Outcome.fail(f"the model's outputs differ from the saved weights' (max {value['diff']:.3g})")
    if value["is_random"] or value["source"] != "file":
        return Outcome.fail(f"weights from a file should say source='file', is_random=False; got {value}")
    if not value["missing_named"]:
        return Outcome.fail(f"a missing weights file should raise an error naming it; got: {value['missing_error']}")
    return Outcome.ok("loads a state_dict file; a missing file is an error that names it")


@STEP.check(
    "topk-contract",
    "predict() returns the top-k classes, sorted, with ImageNet labels",
    points=2,
    hint="softmax the logits, take torch.topk(probabilities, k), and build Prediction(class_id, "
    "label, probability) with the label from ResNet50_Weights.IMAGENET1K_V2.meta['categories'].",
)
def topk_contract(ctx: Context) -> Outcome:
    photo = str(photo_path("chelsea.png"))
    value, failure = ctx.probe(
        _REFERENCE_WEIGHTS
        + f"""
import os, tempfile
from service.model import load_classifier

def probe():
    path = os.path.join(tempfile.mkdtemp(), "w.pt")
    reference = reference_weights(path)
    classifier = load_classifier(weights_path=path)
    categories = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    with Image.open({photo!r}) as image:
        image.load()
    expected = reference_probabilities(reference, image)
    facts = {{}}
    for k in (5, 1):
        predictions = classifier.predict(image, top_k=k)
        rows = [[int(p.class_id), str(p.label), float(p.probability)] for p in predictions]
        facts[str(k)] = {{
            "rows": rows,
            "labels_ok": all(label == categories[cid] for cid, label, _ in rows),
            "expected_ids": [int(i) for i in torch.topk(expected, k).indices],
            "max_prob_diff": max((abs(p - float(expected[cid])) for cid, _, p in rows), default=0.0),
        }}
    return facts
""",
        needs=(IMAGING_FILE, WEIGHTS_FILE, MODEL_FILE),
    )
    if failure:
        return Outcome.fail(f"predict() failed: {failure}")
    for k, facts in ((5, value["5"]), (1, value["1"])):
        rows = facts["rows"]
        if len(rows) != k:
            return Outcome.fail(f"predict(image, top_k={k}) returned {len(rows)} predictions")
        probabilities = [p for _, _, p in rows]
        if probabilities != sorted(probabilities, reverse=True):
            return Outcome.fail(f"predictions are not sorted by probability, highest first: {probabilities}")
        if not facts["labels_ok"]:
            return Outcome.fail("a label does not match its class_id in the ImageNet category list")
        if [cid for cid, _, _ in rows] != facts["expected_ids"]:
            return Outcome.fail(
                f"top-{k} class ids {[c for c, _, _ in rows]} differ from the expected {facts['expected_ids']}"
            )
        if facts["max_prob_diff"] > PROBABILITY_TOLERANCE:
            return Outcome.fail(
                f"probabilities differ from softmax(logits) by {facts['max_prob_diff']:.3g}: "
                "softmax over all 1000 classes, before taking the top k"
            )
    top = value["5"]["rows"][0]
    return Outcome.ok(f"top-5 sorted and labelled (top: {top[1]} {top[2]:.4f})")


@STEP.check(
    "inference-mode",
    "the model runs in eval mode without tracking gradients",
    points=1,
    hint="Call model.eval() once after loading, and run the forward pass inside "
    "torch.inference_mode(): in training mode batch norm changes its statistics on every request.",
)
def inference_mode(ctx: Context) -> Outcome:
    photo = str(photo_path("chelsea.png"))
    value, failure = ctx.probe(
        f"""
import torch
from PIL import Image
from service.model import load_classifier

def probe():
    classifier = load_classifier(weights_path=None, allow_random=True, seed=0)
    model = classifier.model
    stats = {{name: buf.clone() for name, buf in model.named_buffers() if "running" in name}}
    grad_seen = []
    hook = model.register_forward_hook(lambda m, i, o: grad_seen.append(bool(o.requires_grad)))
    with Image.open({photo!r}) as image:
        first = [p.probability for p in classifier.predict(image, top_k=3)]
        second = [p.probability for p in classifier.predict(image, top_k=3)]
    hook.remove()
    changed = [n for n, b in model.named_buffers() if n in stats and not torch.equal(stats[n], b)]
    return {{"training": bool(model.training), "changed": changed[:3], "grad": any(grad_seen),
            "calls": len(grad_seen), "repeatable": first == second}}
""",
        needs=(IMAGING_FILE, WEIGHTS_FILE, MODEL_FILE),
    )
    if failure:
        return Outcome.fail(f"predict() failed: {failure}")
    if value["training"] or value["changed"]:
        return Outcome.fail(f"the model is in training mode (batch-norm statistics changed: {value['changed']})")
    if value["calls"] == 0:
        return Outcome.fail("predict() did not call classifier.model: keep the network in .model")
    if value["grad"]:
        return Outcome.fail("the forward pass tracked gradients: wrap it in torch.inference_mode()")
    if not value["repeatable"]:
        return Outcome.fail("the same image gave different probabilities twice")
    return Outcome.ok("eval mode, no gradients, repeatable")


@STEP.check(
    "threads-and-warm-up",
    "the thread count is set deliberately, and warm_up() runs the model once",
    points=1,
    hint="load_classifier(num_threads=n) calls torch.set_num_threads(n); warm_up() sends one "
    "throw-away image through predict(), so the first real request is not the slow one.",
)
def threads_and_warm_up(ctx: Context) -> Outcome:
    value, failure = ctx.probe(
        """
import torch
from service.model import load_classifier

def probe():
    threads = []
    for wanted in (1, 2):
        classifier = load_classifier(allow_random=True, num_threads=wanted)
        threads.append(torch.get_num_threads())
    calls = []
    hook = classifier.model.register_forward_hook(lambda *args: calls.append(1))
    classifier.warm_up()
    hook.remove()
    return {"threads": threads, "warm_up_calls": len(calls)}
""",
        needs=(IMAGING_FILE, WEIGHTS_FILE, MODEL_FILE),
    )
    if failure:
        return Outcome.fail(f"load_classifier(num_threads=...) or warm_up() failed: {failure}")
    if value["threads"] != [1, 2]:
        return Outcome.fail(f"num_threads=1 then 2 left torch using {value['threads']} threads")
    if value["warm_up_calls"] < 1:
        return Outcome.fail("warm_up() did not run the model")
    return Outcome.ok("threads follow num_threads; warm-up runs one forward pass")
