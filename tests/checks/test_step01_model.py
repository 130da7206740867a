"""Step 01's checks: each passes on the reference workspace, fails on the untouched student
workspace, and fails for the right reason on a variant with one specific mistake."""

from __future__ import annotations

import pytest

from autograder.checks import step01_model
from autograder.checks.result import Verdict
from autograder.grading import grade_step

# Every check runs the learner's model code in the sandbox: minutes, not seconds.
pytestmark = pytest.mark.slow

CHECK_IDS = [check.id for check in step01_model.STEP.checks]
IMAGING, WEIGHTS, MODEL = "service/imaging.py", "service/weights.py", "service/model.py"


# "Passes on the reference" is proven by the solution notebooks' checkpoints
# (tests/course/test_solutions_execute.py) and "fails on the untouched release" by the release's
# Run All (tests/course/test_exercises_nbval.py): each grading of this step takes a minute.


def test_step_01_is_worth_thirteen_visible_points():
    assert step01_model.STEP.max_points == 13


# Each variant makes one mistake learners make; the named check must catch it.
VARIANTS = {
    "resizes-the-tensor-without-antialias": (
        "01.preprocess-matches-torchvision",
        [
            (IMAGING, "    image = to_rgb(image)\n", "    image = F.pil_to_tensor(to_rgb(image))\n"),
            (IMAGING, "antialias=True)", "antialias=False)"),
            (
                IMAGING,
                "F.convert_image_dtype(F.pil_to_tensor(image), torch.float)",
                "F.convert_image_dtype(image, torch.float)",
            ),
        ],
        "differs from torchvision",
    ),
    "not-normalised": (
        "01.preprocess-matches-torchvision",
        [(IMAGING, "return F.normalize(tensor, mean=TRANSFORM.mean, std=TRANSFORM.std)", "return tensor")],
        "differs from torchvision",
    ),
    "squashes-instead-of-crop": (
        "01.preprocess-matches-torchvision",
        [(IMAGING, "image = F.resize(image, TRANSFORM.resize_size,", "image = F.resize(image, [224, 224],")],
        "differs from torchvision",
    ),
    "no-rgb-conversion-before-preprocess": (
        "01.preprocess-matches-torchvision",
        [(IMAGING, "    image = to_rgb(image)\n", "")],
        "",
    ),
    "ignores-exif-orientation": (
        "01.to-rgb-all-modes",
        [(IMAGING, "    image = ImageOps.exif_transpose(image)\n", "")],
        "EXIF",
    ),
    "clips-16-bit-to-white": (
        "01.to-rgb-all-modes",
        [(IMAGING, "    if image.mode in SIXTEEN_BIT_MODES:", "    if False:")],
        "changed the pixels",
    ),
    "drops-alpha-without-compositing": (
        "01.to-rgb-all-modes",
        [(IMAGING, 'image.mode in ("RGBA", "LA", "PA")', "image.mode in ()")],
        "transparent pixels",
    ),
    "silent-random-fallback": (
        "01.random-weights-explicit",
        [(WEIGHTS, "    elif allow_random:\n", "    elif True:\n")],
        "RandomWeightsNotAllowed",
    ),
    "unseeded-random": (
        "01.random-weights-explicit",
        [(WEIGHTS, "    torch.manual_seed(seed)  # makes", "    torch.seed()  # makes")],
        "same seed",
    ),
    "random-not-labelled": (
        "01.random-weights-explicit",
        [
            (
                WEIGHTS,
                'WeightsInfo("random", f"seed={seed}", is_random=True)',
                'WeightsInfo("random", f"seed={seed}", is_random=False)',
            )
        ],
        "labelled",
    ),
    "not-a-resnet50": (  # a seeded, labelled, reproducible stand-in that is no ResNet50
        "01.random-weights-explicit",
        [
            (
                WEIGHTS,
                "    model = resnet50(weights=None)  # the architecture only: never a download\n",
                "    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3))\n"
                "    if state is not None:\n"
                "        model = resnet50(weights=None)\n",
            )
        ],
        "must give a ResNet50",
    ),
    "missing-file-falls-back": (
        "01.weights-file-loaded",
        [
            (
                WEIGHTS,
                "    if weights_path is not None:",
                "    if weights_path is not None and Path(weights_path).is_file():",
            )
        ],
        "missing weights file",
    ),
    "softmax-after-topk": (
        "01.topk-contract",
        [
            (
                MODEL,
                "probabilities = torch.softmax(self.model(batch), dim=1)[0]",
                "probabilities = self.model(batch)[0]",
            ),
            (
                MODEL,
                "values, indices = torch.topk(probabilities, top_k)",
                "values, indices = torch.topk(probabilities, top_k)\n        values = torch.softmax(values, dim=0)",
            ),
        ],
        "softmax",
    ),
    "ascending-order": (
        "01.topk-contract",
        [
            (
                MODEL,
                "for value, index in zip(values, indices)",
                "for value, index in reversed(list(zip(values, indices)))",
            )
        ],
        "not sorted",
    ),
    "training-mode": (
        "01.inference-mode",
        [(MODEL, "        self.model = model.eval()", "        self.model = model.train()")],
        "training mode",
    ),
    "tracks-gradients": (
        "01.inference-mode",
        [
            (
                MODEL,
                "        with torch.inference_mode():\n            probabilities",
                "        if True:\n            probabilities",
            )
        ],
        "gradients",
    ),
    "ignores-num-threads": (
        "01.threads-and-warm-up",
        [(MODEL, "    if num_threads:\n        torch.set_num_threads(num_threads)\n", "")],
        "threads",
    ),
    "crashes-at-import": (
        "01.files-complete",
        [(MODEL, "MAX_TOP_K = len(CATEGORIES)", "MAX_TOP_K = len(CATEGORIES)\nraise SystemExit('boom')")],
        "importing the service modules failed",
    ),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_specific_mistake_fails_the_check_that_covers_it(assert_variant_caught, variant):
    assert_variant_caught("01", variant, VARIANTS[variant])


def test_an_endless_loop_fails_the_checks_without_hanging(make_workspace, monkeypatch):
    monkeypatch.setenv("COURSE_PROBE_TIMEOUT", "8")
    workspace = make_workspace(
        (MODEL, "MAX_TOP_K = len(CATEGORIES)", "MAX_TOP_K = len(CATEGORIES)\nwhile True:\n    pass")
    )
    result = grade_step("01", workspace, only=["files-complete"]).results[0]
    assert result.verdict is Verdict.FAILED and "did not finish in time" in result.message


def test_missing_model_file_names_it(tmp_path):
    (tmp_path / "service").mkdir()
    result = grade_step("01", tmp_path, only=["topk-contract"]).results[0]
    assert result.verdict is Verdict.FAILED and "service/imaging.py does not exist" in result.message
