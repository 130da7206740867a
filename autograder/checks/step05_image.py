"""Step 05, the container image: grades a built image answering real requests.

The grading layer builds the workspace's Dockerfile and starts the container (runners.docker);
these checks read what happened and talk to the running service over 127.0.0.1.
Without a Docker engine every check here is *skipped*, never passed.
"""

from __future__ import annotations

from autograder.checks.context import Context
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome
from autograder.checks.samples import photo_jpeg_bytes

STEP = StepChecks("05")
PREDICTION_KEYS = {"class_id", "label", "probability"}


@STEP.check(
    "image-builds",
    "the Dockerfile builds",
    points=2,
    hint="Read the build log's last lines: the failing instruction is named there. Offline, every "
    "package must be in the wheelhouse (python -m autograder offline wheelhouse -r workspace/requirements.txt).",
)
def image_builds(ctx: Context) -> Outcome:
    if ctx.skip_reason:
        return Outcome.skip(ctx.skip_reason)
    build = ctx.build
    if build is None:
        return Outcome.fail(ctx.build_error or "the image was not built")
    return Outcome.ok(
        f"built {build.tag}",
        build_seconds=f"{build.seconds:.1f}",
        image_size=f"{build.size_bytes / 1e9:.2f} GB",
        layers=str(build.layers),
    )


@STEP.check(
    "container-ready",
    "the container starts and answers /health",
    points=2,
    hint="The service must listen on 0.0.0.0:5000 inside the container (not 127.0.0.1) and finish "
    "loading the model; the message shows the container's last log lines.",
)
def container_ready(ctx: Context) -> Outcome:
    if ctx.skip_reason:
        return Outcome.skip(ctx.skip_reason)
    if ctx.service is None:
        return Outcome.fail(ctx.service_error or "the container was not started because the build failed")
    return Outcome.ok("ready", **ctx.service.figures)


@STEP.check(
    "predict-contract",
    "POST /predict with a JPEG answers the step 01 contract",
    points=3,
    hint="Answer JSON with 'predictions' (a list of {class_id, label, probability}, highest first, "
    "top_k long), 'model', 'weights_source' and 'random_weights'.",
)
def predict_contract(ctx: Context) -> Outcome:
    if ctx.skip_reason:
        return Outcome.skip(ctx.skip_reason)
    if ctx.service is None:
        return Outcome.fail("no running container to ask")
    response = ctx.service.request(
        "POST", "/predict?top_k=3", files={"file": ("cat.jpg", photo_jpeg_bytes("chelsea.png"), "image/jpeg")}
    )
    if response.status_code != 200:
        return Outcome.fail(f"POST /predict answered {response.status_code}: {response.text[:200]}")
    try:
        body = response.json()
    except ValueError:
        return Outcome.fail(f"POST /predict did not answer JSON (Content-Type {response.headers.get('Content-Type')})")
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(predictions, list) or len(predictions) != 3:
        return Outcome.fail(f"expected 3 predictions for top_k=3, got: {str(body)[:200]}")
    if any(not isinstance(p, dict) or set(p) != PREDICTION_KEYS for p in predictions):
        return Outcome.fail(f"each prediction needs exactly the keys {sorted(PREDICTION_KEYS)}: {predictions[0]}")
    probabilities = [p["probability"] for p in predictions]
    if probabilities != sorted(probabilities, reverse=True):
        return Outcome.fail(f"predictions are not sorted, highest first: {probabilities}")
    missing = [key for key in ("model", "weights_source", "random_weights") if key not in body]
    if missing:
        return Outcome.fail(f"the answer does not say which model and weights answered: missing {missing}")
    if body["random_weights"] is not True and ctx.random_weights_expected:
        return Outcome.fail("the container runs on random weights but its answer does not say so")
    return Outcome.ok(
        f"top-3 answered in {body.get('inference_ms', '?')} ms", inference_ms=str(body.get("inference_ms"))
    )
