"""Step 05, the container image: grades the Dockerfile, then a built image answering real requests.

Static checks read the Dockerfile, the .dockerignore and hadolint's findings (the grading layer
runs hadolint); they need no Docker engine. The live checks read what happened when the grading
layer built the image and started the container (runners.docker), and talk to the running service
over 127.0.0.1; without a Docker engine they are *skipped*, never passed.
"""

from __future__ import annotations

from autograder.checks import dockerfile
from autograder.checks.context import Context
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome
from autograder.checks.samples import photo_jpeg_bytes

STEP = StepChecks("05")
PREDICTION_KEYS = {"class_id", "label", "probability"}
DOCKERFILE = "Dockerfile"
# Never in the build context: history, notebooks, tests, caches, environments (size, secrets, cache busting).
MUST_IGNORE = (
    ".git/HEAD",
    "01-model-inference.ipynb",
    ".ipynb_checkpoints/03-flask-api-checkpoint.ipynb",
    "tests/test_api.py",
    "service/__pycache__/app.cpython-311.pyc",
    ".venv/bin/python",
    ".pytest_cache/v/cache/nodeids",
)
MUST_SEND = ("service/app.py", "requirements.txt")


def _read(ctx: Context) -> tuple[list[dockerfile.Instruction] | None, Outcome | None]:
    path = ctx.file(DOCKERFILE)
    if not path.is_file():
        return None, Outcome.fail(f"{DOCKERFILE} does not exist in the workspace: run the cell that writes it")
    instructions = dockerfile.parse(path.read_text())
    if not any(i.keyword == "FROM" for i in instructions):
        return None, Outcome.fail(f"{DOCKERFILE} has no FROM instruction")
    return instructions, None


@STEP.check(
    "hadolint-clean",
    "hadolint finds no error or warning in the Dockerfile",
    points=1,
    hint="Each finding names a rule (DL3008, SC2164...): look it up at https://github.com/hadolint/hadolint#rules. "
    "Run `hadolint workspace/Dockerfile` to see them all.",
)
def hadolint_clean(ctx: Context) -> Outcome:
    if ctx.lint_findings is None:
        return Outcome.fail(ctx.lint_error or "hadolint did not run")
    serious = [f for f in ctx.lint_findings if f.level in ("error", "warning")]
    others = len(ctx.lint_findings) - len(serious)
    if serious:
        return Outcome.fail("; ".join(f"{f.code} line {f.line}: {f.message}" for f in serious))
    return Outcome.ok("no errors or warnings" + (f" ({others} info/style notes)" if others else ""))


@STEP.check(
    "base-image-pinned",
    "every base image names a tag other than latest (or a digest)",
    points=1,
    hint="FROM python:3.11-slim, not FROM python or FROM python:latest: an untagged base changes under you.",
)
def base_image_pinned(ctx: Context) -> Outcome:
    instructions, failed = _read(ctx)
    if failed:
        return failed
    stage_names = set()
    for instruction in (i for i in instructions if i.keyword == "FROM"):
        image, name = dockerfile.from_image(instruction)
        if image not in stage_names and not dockerfile.image_is_pinned(image):
            return Outcome.fail(f"line {instruction.line}: FROM {image} is not pinned to a tag")
        if name:
            stage_names.add(name)
    return Outcome.ok("base images pinned")


@STEP.check(
    "multi-stage-non-root",
    "a build stage and a runtime stage; the runtime runs as a fixed, numeric non-root UID",
    points=2,
    hint="Install dependencies in a first stage (FROM ... AS build), COPY --from=build what the runtime "
    "needs, and end the last stage with USER 10001 (a number: Kubernetes' runAsNonRoot can only verify numbers).",
)
def multi_stage_non_root(ctx: Context) -> Outcome:
    instructions, failed = _read(ctx)
    if failed:
        return failed
    grouped = dockerfile.stages(instructions)
    if len(grouped) < 2:
        return Outcome.fail("one stage only: build tools and caches end up in the runtime image")
    final = grouped[-1]
    if not any(i.keyword == "COPY" and "--from=" in i.arguments for i in final):
        return Outcome.fail("the final stage copies nothing from the build stage (COPY --from=...)")
    users = [i for i in final if i.keyword == "USER"]
    if not users:
        return Outcome.fail("the final stage has no USER: the service would run as root")
    user = users[-1].arguments.split(":")[0].strip()
    if not user.isdigit():
        return Outcome.fail(f"USER {user}: use the numeric UID (USER 10001), so that non-root can be verified")
    if int(user) == 0:
        return Outcome.fail("USER 0 is root")
    return Outcome.ok(f"{len(grouped)} stages; runs as UID {user}")


@STEP.check(
    "healthcheck",
    "the final stage has a HEALTHCHECK on /health",
    points=1,
    hint="HEALTHCHECK CMD with a short --timeout, asking http://127.0.0.1:5000/health (the slim image has "
    "no curl: use python -c with urllib.request).",
)
def healthcheck(ctx: Context) -> Outcome:
    instructions, failed = _read(ctx)
    if failed:
        return failed
    checks = [i for i in dockerfile.stages(instructions)[-1] if i.keyword == "HEALTHCHECK"]
    if not checks or checks[-1].arguments.strip().upper() == "NONE":
        return Outcome.fail("no HEALTHCHECK in the final stage")
    if "/health" not in checks[-1].arguments:
        return Outcome.fail("the HEALTHCHECK does not ask /health")
    return Outcome.ok("HEALTHCHECK on /health")


@STEP.check(
    "no-secrets-or-remote-add",
    "no secrets in ENV or ARG, no ADD of URLs",
    points=1,
    hint="Secrets in ENV/ARG stay readable in the image's history (docker history); pass them at run time. "
    "Download with a pinned checksum in a RUN, or COPY files from the build context, instead of ADD <url>.",
)
def no_secrets_or_remote_add(ctx: Context) -> Outcome:
    instructions, failed = _read(ctx)
    if failed:
        return failed
    for instruction in instructions:
        if instruction.keyword == "ADD" and "://" in instruction.arguments:
            return Outcome.fail(f"line {instruction.line}: ADD of a URL")
        if instruction.keyword in ("ENV", "ARG"):
            for name, value in dockerfile.assignments(instruction).items():
                if dockerfile.SECRET_NAME.search(name) and value:
                    return Outcome.fail(
                        f"line {instruction.line}: {instruction.keyword} {name} holds a secret-looking value"
                    )
    return Outcome.ok("no secrets in the image's configuration, no remote ADD")


@STEP.check(
    "dockerignore",
    ".dockerignore keeps git, notebooks, tests, caches and environments out of the build context",
    points=1,
    hint="One pattern per line: .git, *.ipynb, **/.ipynb_checkpoints, tests/, **/__pycache__, .venv, "
    ".pytest_cache. Never the service's own files.",
)
def dockerignore(ctx: Context) -> Outcome:
    path = ctx.file(".dockerignore")
    if not path.is_file():
        return Outcome.fail(".dockerignore does not exist: every file of the workspace would be sent to the build")
    patterns = path.read_text().splitlines()
    sent = [p for p in MUST_IGNORE if not dockerfile.dockerignore_excludes(patterns, p)]
    if sent:
        return Outcome.fail("still sent to the build: " + ", ".join(sent))
    dropped = [p for p in MUST_SEND if dockerfile.dockerignore_excludes(patterns, p)]
    if dropped:
        return Outcome.fail("left out although the image needs it: " + ", ".join(dropped))
    return Outcome.ok("the build context holds the service and nothing else of note")


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
