"""Step 01, model inference: grades ``service/imaging.py``, ``service/weights.py`` and ``service/model.py``.

Each check runs a probe (``autograder/probes/step01_model.py``) on the learner's code in the
sandbox, with inputs drawn for this run: photos cropped at random, a weights file of a random
seed, random thread counts. The probes report what came back; the expected values are
computed here, in the grader's process (``reference_model``), and the verdicts decided here.
"""

from __future__ import annotations

import numpy

from autograder.checks import reference_model
from autograder.checks.context import Context
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome
from autograder.checks.samples import PHOTOS, encode, random_crop
from autograder.checks.stubs import stubs_left

STEP = StepChecks("01")
IMAGING_FILE, WEIGHTS_FILE, MODEL_FILE = "service/imaging.py", "service/weights.py", "service/model.py"
ALL_FILES = (IMAGING_FILE, WEIGHTS_FILE, MODEL_FILE)
# What each file must define; the service (step 03) and the hidden tests rely on these names.
PUBLIC_NAMES = {
    "service.imaging": ("to_rgb", "preprocess"),
    "service.weights": ("load_resnet50", "WeightsInfo", "RandomWeightsNotAllowed", "torchvision_cache_file"),
    "service.model": ("load_classifier", "Classifier", "Prediction", "MAX_TOP_K", "MODEL_NAME"),
}
PREPROCESS_TOLERANCE = 1e-5
PROBABILITY_TOLERANCE = 1e-4
LOGIT_TOLERANCE = 1e-4


def _seed(ctx: Context) -> int:
    return ctx.rng.randrange(1, 2**31)


def _batch(ctx: Context) -> numpy.ndarray:
    """A small random batch (ResNet50 takes any size through its adaptive pooling): quick to run."""
    generator = numpy.random.default_rng(ctx.rng.randrange(2**32))
    return generator.random((1, 3, 64, 64), dtype=numpy.float32)


def _npy(array: numpy.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    numpy.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _array(value: object) -> numpy.ndarray | None:
    return value if isinstance(value, numpy.ndarray) else None


@STEP.check(
    "files-complete",
    "imaging.py, weights.py and model.py import, with every exercise filled in",
    points=1,
    hint="Run the three %%writefile cells after replacing each `raise NotImplementedError()`; keep "
    "work such as loading weights out of module level, so importing is quick and free of side effects.",
    needs=("probe",),
)
def files_complete(ctx: Context) -> Outcome:
    value, failure = ctx.probe(
        "step01_model:import_modules",
        {"wanted": {name: list(names) for name, names in PUBLIC_NAMES.items()}},
        files=ALL_FILES,
        timeout=60,
    )
    if failure:
        return Outcome.fail(f"importing the service modules failed: {failure}")
    if value["errors"]:
        name, error = next(iter(value["errors"].items()))
        return Outcome.fail(f"importing the service modules failed: {name}: {error}")
    missing = [f"{name}.{n}" for name, names in PUBLIC_NAMES.items() for n in names if n not in value["present"][name]]
    if missing:
        return Outcome.fail("not defined: " + ", ".join(missing))
    # Read from the source, not asked of the learner's process.
    stubbed = stubs_left(ctx, ALL_FILES)
    if stubbed:
        return Outcome.fail("still an exercise stub (raise NotImplementedError) in: " + ", ".join(stubbed))
    return Outcome.ok(
        "all three import, define the public names, no stub left", import_seconds=f"{value['seconds']:.2f}"
    )


def _to_rgb_cases(ctx: Context) -> dict[str, tuple]:
    """Input images of every kind (file bytes) and what to_rgb must make of each:
    case -> (file name, bytes, expected RGB array or None, transparent box or None)."""
    from PIL import Image, ImageOps

    rgb = random_crop("chelsea.png", ctx.rng)
    cases: dict[str, tuple] = {}
    for mode, image_format in (("L", "PNG"), ("P", "PNG"), ("CMYK", "TIFF")):
        image = rgb.convert(mode)
        cases[mode] = (
            f"{mode}.{image_format.lower()}",
            encode(image, image_format),
            numpy.asarray(image.convert("RGB")),
            None,
        )
    gray = numpy.asarray(rgb.convert("L"), dtype=numpy.uint16)
    noise = numpy.random.default_rng(ctx.rng.randrange(2**32)).integers(0, 256, gray.shape, dtype=numpy.uint16)
    sixteen = Image.fromarray(gray * 256 + noise)  # 16-bit, low byte random: only >> 8 gives gray
    expected = numpy.asarray(Image.fromarray(gray.astype(numpy.uint8)).convert("RGB"))
    cases[sixteen.mode] = ("sixteen.png", encode(sixteen), expected, None)
    for mode in ("RGBA", "LA"):
        image = rgb.convert(mode)
        alpha = image.getchannel("A").copy()
        side = ctx.rng.randint(20, 40)
        box = (ctx.rng.randint(0, image.width - side), ctx.rng.randint(0, image.height - side))
        box = (*box, box[0] + side, box[1] + side)
        alpha.paste(0, box)  # a transparent square, hiding black pixels
        image.paste(Image.new(mode, (side, side)), box[:2])
        image.putalpha(alpha)
        cases[mode] = (f"{mode}.png", encode(image), numpy.asarray(image.convert("RGB")), box)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated 90 degrees
    sideways = encode(rgb, "JPEG", exif=exif.tobytes(), quality=95)
    import io

    with Image.open(io.BytesIO(sideways)) as opened:
        upright = numpy.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    cases["EXIF-rotated JPEG"] = ("sideways.jpg", sideways, upright, None)
    return cases


@STEP.check(
    "to-rgb-all-modes",
    "to_rgb() gives 8-bit RGB for every kind of upload",
    points=2,
    hint="ImageOps.exif_transpose first; scale 16-bit images down (values >> 8) instead of letting "
    "convert() clip them; composite transparent images onto white before dropping alpha.",
    needs=("probe",),
)
def to_rgb_all_modes(ctx: Context) -> Outcome:
    cases = _to_rgb_cases(ctx)
    value, failure = ctx.probe(
        "step01_model:to_rgb_outputs",
        {"cases": {case: file_name for case, (file_name, _, _, _) in cases.items()}},
        inputs={file_name: content for file_name, content, _, _ in cases.values()},
        files=(IMAGING_FILE,),
    )
    if failure:
        return Outcome.fail(f"to_rgb() failed: {failure}")
    for case, (_, _, expected, box) in cases.items():
        facts = value.get(case) or {}
        if facts.get("mode") != "RGB":
            return Outcome.fail(
                f"to_rgb() returned mode {facts.get('mode', facts.get('type'))} for a {case} image; expected RGB"
            )
        got = _array(facts.get("pixels"))
        if got is None or got.shape != expected.shape:
            if case == "EXIF-rotated JPEG":
                size = list(expected.shape[1::-1])
                return Outcome.fail(
                    f"a JPEG whose EXIF says 'rotated' came out {facts.get('size')}, upright it is {size}"
                )
            return Outcome.fail(f"to_rgb() changed the size of a {case} image to {facts.get('size')}")
        difference = numpy.abs(got.astype(int) - expected.astype(int))
        if box is not None:
            corner = got[box[1] : box[3], box[0] : box[2]]
            if int(corner.min()) < 250:
                return Outcome.fail(
                    f"transparent pixels of a {case} image came out dark, not white (min {int(corner.min())})"
                )
            difference[box[1] : box[3], box[0] : box[2]] = 0
        if int(difference.max()) > 2:
            return Outcome.fail(
                f"to_rgb() changed the pixels of a {case} image (max difference {int(difference.max())})"
            )
    return Outcome.ok(f"RGB for {', '.join(cases)}")


@STEP.check(
    "preprocess-matches-torchvision",
    "preprocess() equals the transforms ResNet50 weights prescribe",
    points=2,
    hint="Read ResNet50_Weights.IMAGENET1K_V2.transforms(): resize the short side (bilinear, "
    "antialiased), centre-crop, scale to [0, 1], then normalise with the ImageNet mean and std. "
    "Convert to RGB first so grayscale and RGBA images work too.",
    needs=("probe",),
)
def preprocess_matches_torchvision(ctx: Context) -> Outcome:
    images, expected = {}, {}
    for name in PHOTOS[:2]:
        photo = random_crop(name, ctx.rng, minimum=(224, 224))
        for mode in ("RGB", "L", "RGBA"):
            file_name = f"{name.split('.')[0]}-{mode}.png"
            image = photo.convert(mode)
            images[file_name] = encode(image)
            expected[file_name] = reference_model.transform(image).numpy()
    value, failure = ctx.probe(
        "step01_model:preprocess_outputs", {"images": list(images)}, inputs=images, files=(IMAGING_FILE,)
    )
    if failure:
        return Outcome.fail(f"preprocess() failed: {failure}")
    worst = 0.0
    for row in value:
        what = row["image"].removesuffix(".png").replace("-", ":")
        if row["type"] != "Tensor":
            return Outcome.fail(f"preprocess() returned a {row['type']} for {what}, not a torch.Tensor")
        if row["shape"] != [3, 224, 224] or row["dtype"] != "torch.float32":
            return Outcome.fail(
                f"preprocess() gave shape {row['shape']} {row['dtype']} for {what}; "
                "expected [3, 224, 224] torch.float32 (one image, no batch dimension)"
            )
        got = _array(row.get("values"))
        wanted = expected.get(row["image"])
        if got is None or wanted is None:
            return Outcome.fail(f"preprocess() gave no values for {what}")
        difference = float(numpy.abs(got - wanted).max())
        worst = max(worst, difference)
        if not difference <= PREPROCESS_TOLERANCE:  # NaN too
            return Outcome.fail(
                f"preprocess() differs from torchvision's transforms on {what}: "
                f"max abs difference {difference:.3g} > {PREPROCESS_TOLERANCE:g}"
            )
    if len(value) != len(images):
        return Outcome.fail(f"preprocess() answered for {len(value)} of {len(images)} images")
    return Outcome.ok(f"matches on {len(value)} photo/mode pairs", max_abs_difference=f"{worst:.2g}")


@STEP.check(
    "random-weights-explicit",
    "random weights only when allowed, seeded and labelled",
    points=2,
    hint="With no weights file and no cached torchvision weights, load_resnet50() must raise "
    "RandomWeightsNotAllowed unless allow_random=True; random weights come from "
    "torch.manual_seed(seed) and WeightsInfo says they are random.",
    needs=("probe",),
)
def random_weights_explicit(ctx: Context) -> Outcome:
    first, other = _seed(ctx), _seed(ctx)
    batch = _batch(ctx)
    value, failure = ctx.probe(
        "step01_model:random_weights",
        {"seeds": [first, first, other], "batch": "batch.npy"},
        inputs={"batch.npy": _npy(batch)},
        files=(WEIGHTS_FILE,),
    )
    if failure:
        return Outcome.fail(f"loading random weights failed: {failure}")
    if value["refused"] != "yes":
        return Outcome.fail(
            "load_resnet50() without weights and without allow_random=True should raise "
            f"RandomWeightsNotAllowed; it gave: {value['refused']}"
        )
    runs = value["runs"]
    if len(runs) != 3 or any(_array(run.get("outputs")) is None for run in runs):
        return Outcome.fail("load_resnet50(allow_random=True) did not give a model that runs")
    if any(not run["is_random"] or run["source"] != "random" for run in runs):
        return Outcome.fail(
            f"random weights must be labelled: got is_random={runs[0]['is_random']}, source={runs[0]['source']!r}"
        )
    wanted_shape = (len(batch), reference_model.CLASSES)
    for run in runs:
        if run["outputs"].shape != wanted_shape or run.get("parameters") != reference_model.RESNET50_PARAMETERS:
            return Outcome.fail(
                f"load_resnet50(allow_random=True) must give a ResNet50 (torchvision's resnet50(weights=None)): "
                f"got outputs of shape {tuple(run['outputs'].shape)} and {run.get('parameters')} parameters, "
                f"expected {wanted_shape} and {reference_model.RESNET50_PARAMETERS:,}"
            )
    same, different = runs[0]["outputs"], runs[2]["outputs"]
    if same.shape != runs[1]["outputs"].shape or not numpy.array_equal(same, runs[1]["outputs"]):
        return Outcome.fail("two classifiers with the same seed give different outputs: seed before building")
    if same.shape == different.shape and numpy.array_equal(same, different):
        return Outcome.fail("different seeds give the same weights: is the seed used?")
    return Outcome.ok("refused without permission; seeded, reproducible and labelled when allowed")


@STEP.check(
    "weights-file-loaded",
    "weights load from a configured file",
    points=2,
    hint="torch.load(path, map_location='cpu', weights_only=True) gives a state_dict; load it with "
    "model.load_state_dict(...). A missing file is an error that names the path, never a silent "
    "fall-back to random weights.",
    needs=("probe",),
)
def weights_file_loaded(ctx: Context) -> Outcome:
    seed, batch = _seed(ctx), _batch(ctx)
    missing = f"no-such-weights-{ctx.rng.randrange(10**6)}.pt"
    value, failure = ctx.probe(
        "step01_model:weights_file",
        {"weights": "weights.pt", "batch": "batch.npy", "missing": missing},
        inputs={"weights.pt": reference_model.weights_file(seed, ctx.scratch), "batch.npy": _npy(batch)},
        files=(WEIGHTS_FILE,),
    )
    if failure:
        return Outcome.fail(f"loading a weights file failed: {failure}")
    got, expected = _array(value.get("outputs")), reference_model.logits(seed, batch)
    if got is None or got.shape != expected.shape:
        return Outcome.fail(f"the model gave outputs of shape {getattr(got, 'shape', None)}, expected {expected.shape}")
    difference = float(numpy.abs(got - expected).max())
    if not difference <= LOGIT_TOLERANCE:
        return Outcome.fail(f"the model's outputs differ from the saved weights' (max {difference:.3g})")
    if value["is_random"] or value["source"] != "file":
        return Outcome.fail(
            f"weights from a file should say source='file', is_random=False; got source={value['source']!r}, "
            f"is_random={value['is_random']}"
        )
    if missing not in value["missing_error"]:
        return Outcome.fail(f"a missing weights file should raise an error naming it; got: {value['missing_error']}")
    return Outcome.ok("loads a state_dict file; a missing file is an error that names it")


@STEP.check(
    "topk-contract",
    "predict() returns the top-k classes, sorted, with ImageNet labels",
    points=2,
    hint="softmax the logits, take torch.topk(probabilities, k), and build Prediction(class_id, "
    "label, probability) with the label from ResNet50_Weights.IMAGENET1K_V2.meta['categories'].",
    needs=("probe",),
)
def topk_contract(ctx: Context) -> Outcome:
    seed, photo = _seed(ctx), random_crop("chelsea.png", ctx.rng)
    ks = [ctx.rng.randint(3, 8), 1]
    value, failure = ctx.probe(
        "step01_model:top_k",
        {"weights": "weights.pt", "photo": "photo.png", "ks": ks},
        inputs={"weights.pt": reference_model.weights_file(seed, ctx.scratch), "photo.png": encode(photo)},
        files=ALL_FILES,
    )
    if failure:
        return Outcome.fail(f"predict() failed: {failure}")
    expected = reference_model.probabilities(seed, photo)
    for k in ks:
        wrong = reference_model.top_k_failure(value.get(str(k), []), expected, k, PROBABILITY_TOLERANCE)
        if wrong:
            return Outcome.fail(wrong)
    top = value[str(ks[0])][0]
    return Outcome.ok(f"top-{ks[0]} sorted and labelled (top: {top[1]} {top[2]:.4f})")


@STEP.check(
    "inference-mode",
    "the model runs in eval mode without tracking gradients",
    points=1,
    hint="Call model.eval() once after loading, and run the forward pass inside "
    "torch.inference_mode(): in training mode batch norm changes its statistics on every request.",
    needs=("probe",),
)
def inference_mode(ctx: Context) -> Outcome:
    seed, photo = _seed(ctx), random_crop("chelsea.png", ctx.rng)
    value, failure = ctx.probe(
        "step01_model:inference_mode",
        {"weights": "weights.pt", "photo": "photo.png"},
        inputs={"weights.pt": reference_model.weights_file(seed, ctx.scratch), "photo.png": encode(photo)},
        files=ALL_FILES,
    )
    if failure:
        return Outcome.fail(f"predict() failed: {failure}")
    if value["training"] or value["changed"]:
        return Outcome.fail(f"the model is in training mode (batch-norm statistics changed: {value['changed']})")
    if value["calls"] == 0:
        return Outcome.fail("predict() did not call classifier.model: keep the network in .model")
    if value["grad"]:
        return Outcome.fail("the forward pass tracked gradients: wrap it in torch.inference_mode()")
    if not value["first"] or value["first"] != value["second"]:
        return Outcome.fail("the same image gave different probabilities twice")
    # Eval mode shows in the numbers too: batch norm in training mode gives other probabilities.
    wrong = reference_model.top_k_failure(
        value["first"], reference_model.probabilities(seed, photo), 3, PROBABILITY_TOLERANCE
    )
    if wrong:
        return Outcome.fail(f"predictions in eval mode should be softmax of the loaded model's logits: {wrong}")
    return Outcome.ok("eval mode, no gradients, repeatable")


@STEP.check(
    "threads-and-warm-up",
    "the thread count is set deliberately, and warm_up() runs the model once",
    points=1,
    hint="load_classifier(num_threads=n) calls torch.set_num_threads(n); warm_up() sends one "
    "throw-away image through predict(), so the first real request is not the slow one.",
    needs=("probe",),
)
def threads_and_warm_up(ctx: Context) -> Outcome:
    wanted = ctx.rng.sample(range(1, 9), 3)
    value, failure = ctx.probe("step01_model:threads_and_warm_up", {"thread_counts": wanted}, files=ALL_FILES)
    if failure:
        return Outcome.fail(f"load_classifier(num_threads=...) or warm_up() failed: {failure}")
    if value["threads"] != wanted:
        return Outcome.fail(f"num_threads={wanted} one after the other left torch using {value['threads']} threads")
    if value["warm_up_calls"] < 1:
        return Outcome.fail("warm_up() did not run the model")
    return Outcome.ok("threads follow num_threads; warm-up runs one forward pass")
