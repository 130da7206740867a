"""Step 05, the container image: grades the Dockerfile, then a built image answering real requests.

Static checks read the Dockerfile, the .dockerignore and hadolint's findings (the grading layer
runs hadolint); they need no Docker engine. The live checks read what happened when the grading
layer built the image and started the container (runners.docker), and talk to the running service
over 127.0.0.1; without a Docker engine they are *skipped*, never passed.
"""

from __future__ import annotations

from autograder.checks import dockerfile, reference_model
from autograder.checks.context import Context
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome
from autograder.checks.samples import encode, photo_jpeg_bytes, random_crop
from autograder.settings import current

STEP = StepChecks("05")
PREDICTION_KEYS = {"class_id", "label", "probability"}
PROBABILITY_TOLERANCE = 1e-4
PROBLEM_MEDIA_TYPE = "application/problem+json"
DOCKERFILE = "Dockerfile"
# docker stop's default: SIGTERM, then SIGKILL after this many seconds (Kubernetes waits 30).
STOP_GRACE_SECONDS = 10
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
    instructions = dockerfile.parse(ctx.read_text(DOCKERFILE))
    if not any(i.keyword == "FROM" for i in instructions):
        return None, Outcome.fail(f"{DOCKERFILE} has no FROM instruction")
    unfinished = dockerfile.unfinished(instructions)
    if unfinished:
        return None, Outcome.fail(f"{DOCKERFILE} is not written yet: {unfinished}")
    return instructions, None


@STEP.check(
    "hadolint-clean",
    "hadolint finds no error or warning in the Dockerfile",
    points=1,
    hint="Each finding names a rule (DL3008, SC2164...): look it up at https://github.com/hadolint/hadolint#rules. "
    "Run `hadolint workspace/Dockerfile` to see them all.",
    needs=("lint",),
)
def hadolint_clean(ctx: Context) -> Outcome:
    _, failed = _read(ctx)
    if failed:
        return failed
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
    patterns = ctx.read_text(".dockerignore").splitlines()
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
    needs=("image",),
)
def image_builds(ctx: Context) -> Outcome:
    build = ctx.build
    # Reported, never graded: on the offline CUDA wheels the reference image is about 6 GB, on the
    # CPU-only wheels about 1.5 GB. Instructors set their own figures (COURSE_IMAGE_BUDGET_GB...).
    settings = current()
    budget_gb, layer_budget = settings.image_budget_gb, settings.image_layer_budget
    size_gb = build.size_bytes / 1e9
    over = [
        f"{size_gb:.2f} GB is over the {budget_gb:g} GB budget" if size_gb > budget_gb else "",
        f"{build.layers} layers are over the budget of {layer_budget}" if build.layers > layer_budget else "",
    ]
    over = [note for note in over if note]
    budget = (
        "; ".join(over) + " (reported, not graded: `docker history` shows which layers weigh most)"
        if over
        else f"within the budget of {budget_gb:g} GB and {layer_budget} layers"
    )
    return Outcome.ok(
        f"built {build.tag}",
        build_seconds=f"{build.seconds:.1f}",
        image_size=f"{size_gb:.2f} GB",
        layers=str(build.layers),
        budget=budget,
    )


@STEP.check(
    "container-ready",
    "the container starts under the limits and becomes ready (/ready answers 200)",
    points=2,
    hint="The service must listen on 0.0.0.0:5000 inside the container (not 127.0.0.1) and finish "
    "loading the model, with a read-only root filesystem (only /tmp is writable) and within the memory "
    "limit; the message quotes the first error in the container's logs.",
    needs=("service",),
)
def container_ready(ctx: Context) -> Outcome:
    return Outcome.ok("ready", **ctx.service.figures)


@STEP.check(
    "predict-contract",
    "POST /predict with a JPEG answers the step 01 contract, with the model's own numbers",
    points=3,
    hint="Answer JSON with 'predictions' (a list of {class_id, label, probability}, highest first, "
    "top_k long), 'model', 'weights_source' and 'random_weights'; load the weights file MODEL_WEIGHTS_PATH "
    "names (the grader mounts one), exactly as step 01's load_resnet50 does.",
    needs=("service",),
)
def predict_contract(ctx: Context) -> Outcome:
    if (not_live := _live(ctx)) is not None:
        return not_live
    photo = random_crop("chelsea.png", ctx.rng)
    jpeg = encode(photo, "JPEG", quality=90)
    response = ctx.service.request("POST", "/predict?top_k=3", files={"file": ("cat.jpg", jpeg, "image/jpeg")})
    body, broken = _prediction(response, top_k=3)
    if broken:
        return Outcome.fail(f"POST /predict: {broken}")
    if body["weights_source"] != "file" or body["random_weights"] is not False:
        return Outcome.fail(
            f"the container was given a weights file (MODEL_WEIGHTS_PATH), yet its answer says weights_source "
            f"{body['weights_source']!r}, random_weights {body['random_weights']!r}: load the file it names"
        )
    wrong = _not_the_models(ctx, body, jpeg, 3)
    if wrong:
        return Outcome.fail(f"POST /predict: {wrong}")
    return Outcome.ok(
        f"top-3 answered in {body.get('inference_ms', '?')} ms, as the weights file predicts",
        inference_ms=str(body.get("inference_ms")),
    )


def _not_the_models(ctx: Context, body: dict, upload: bytes, top_k: int) -> str:
    """Why the answer's predictions are not what the grader's weights file gives for ``upload``."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(upload)) as image:
        expected = reference_model.probabilities(ctx.service.weights_seed, image)
    rows = [[p["class_id"], p["label"], p["probability"]] for p in body["predictions"]]
    wrong = reference_model.top_k_failure(rows, expected, top_k, PROBABILITY_TOLERANCE)
    return f"the predictions are not the model's (is MODEL_WEIGHTS_PATH loaded?): {wrong}" if wrong else ""


def _prediction(response, top_k: int) -> tuple[dict, str]:
    """The answer's body, and what is wrong with it against the step 01 contract ('' if nothing)."""
    if response.status_code != 200:
        return {}, f"answered {response.status_code}: {response.text[:200]}"
    try:
        body = response.json()
    except ValueError:
        return {}, f"did not answer JSON (Content-Type {response.headers.get('Content-Type')})"
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(predictions, list) or len(predictions) != top_k:
        return {}, f"expected {top_k} predictions for top_k={top_k}, got: {str(body)[:200]}"
    if any(not isinstance(p, dict) or set(p) != PREDICTION_KEYS for p in predictions):
        return {}, f"each prediction needs exactly the keys {sorted(PREDICTION_KEYS)}: {predictions[0]}"
    probabilities = [p["probability"] for p in predictions]
    if probabilities != sorted(probabilities, reverse=True):
        return {}, f"predictions are not sorted, highest first: {probabilities}"
    missing = [key for key in ("model", "weights_source", "random_weights") if key not in body]
    if missing:
        return {}, f"the answer does not say which model and weights answered: missing {missing}"
    return body, ""


def _live(ctx: Context) -> Outcome | None:
    """Fail when the container stopped since it got ready, else None (go on)."""
    if not ctx.service.running():
        return _with_read_only_hint(ctx, "the container is no longer running (`docker logs` tells why)")
    return None


def _with_read_only_hint(ctx: Context, message: str) -> Outcome:
    trouble = ctx.service.read_only_root_trouble()
    return Outcome.fail(
        f"{message}; the logs show writes to the read-only root filesystem: {trouble}" if trouble else message
    )


@STEP.check(
    "runs-as-non-root",
    "the image says USER non-root, and every process in the running container has a non-zero UID",
    points=2,
    hint="USER 10001 in the final stage, after the steps that need root (useradd, apt-get), and no "
    "entrypoint script that switches back: the engine reports each process's UID.",
    needs=("service",),
)
def runs_as_non_root(ctx: Context) -> Outcome:
    if (not_live := _live(ctx)) is not None:
        return not_live
    user = ctx.service.configured_user()
    if user.split(":")[0] in ("", "0", "root"):
        return Outcome.fail(f"the image's configuration runs as root (USER {user or 'unset'})")
    processes = ctx.service.process_uids()
    as_root = [f"PID {pid} ({command})" for pid, (uid, command) in processes.items() if uid in ("0", "root")]
    if as_root:
        return Outcome.fail("processes running as root: " + ", ".join(as_root))
    uids = sorted({uid for uid, _ in processes.values()})
    return Outcome.ok(f"USER {user}; {len(processes)} processes, UID {', '.join(uids)}")


@STEP.check(
    "predicts-png-and-grayscale",
    "POST /predict answers the contract for an RGBA PNG and a grayscale JPEG too",
    points=2,
    hint="Convert every upload to RGB before the transforms (image.convert('RGB')): a PNG has an alpha "
    "channel, a grayscale JPEG one channel, and ResNet50 wants three.",
    needs=("service",),
)
def predicts_png_and_grayscale(ctx: Context) -> Outcome:
    if (not_live := _live(ctx)) is not None:
        return not_live
    uploads = {
        "an RGBA PNG": ("cup.png", encode(random_crop("coffee.png", ctx.rng).convert("RGBA")), "image/png"),
        "a grayscale JPEG": (
            "astronaut.jpg",
            encode(random_crop("astronaut.png", ctx.rng).convert("L"), "JPEG"),
            "image/jpeg",
        ),
    }
    for kind, upload in uploads.items():
        response = ctx.service.request("POST", "/predict?top_k=2", files={"file": upload})
        body, broken = _prediction(response, top_k=2)
        if broken:
            return _with_read_only_hint(ctx, f"POST /predict with {kind}: {broken}")
        wrong = _not_the_models(ctx, body, upload[1], 2)
        if wrong:
            return Outcome.fail(f"POST /predict with {kind}: {wrong}")
    return Outcome.ok("RGBA PNG and grayscale JPEG classified")


@STEP.check(
    "metrics-rise",
    "/metrics is served by the container, and its counters rise with requests",
    points=1,
    hint="Under gunicorn each worker has its own counters: with several workers a scrape sees one of "
    "them. Count requests in http_requests_total and predictions in predictions_total (step 03).",
    needs=("service",),
)
def metrics_rise(ctx: Context) -> Outcome:
    if (not_live := _live(ctx)) is not None:
        return not_live
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    def scrape(session) -> dict[str, float]:
        response = ctx.service.request("GET", "/metrics", session=session, timeout=30)
        if response.status_code != 200:
            raise ValueError(f"/metrics answered {response.status_code}")
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
        return totals

    upload = {"file": ("cat.jpg", photo_jpeg_bytes(), "image/jpeg")}
    # Each gunicorn worker counts its own requests, and a scrape reaches one of them: one
    # keep-alive connection stays with one worker, and a few rounds cover servers that close it.
    for _ in range(3):
        with requests.Session() as session:
            try:
                before = scrape(session)
                for _ in range(2):
                    ctx.service.request("POST", "/predict?top_k=1", session=session, files=upload, timeout=60)
                after = scrape(session)
            except ValueError as error:
                return Outcome.fail(f"{error} (Prometheus text format expected)")
        names = ("http_requests_total", "predictions_total")
        risen = sorted(name for name in names if after.get(name, 0) > before.get(name, 0))
        if risen:
            return Outcome.ok(f"{', '.join(risen)} rose after 2 predictions")
    return Outcome.fail(
        "neither http_requests_total nor predictions_total rose after predictions, in 3 tries: "
        f"{sorted(after)[:12] or 'no metrics at all'}"
    )


# Requests a service meets in the wild; each must get a 4xx problem document, none may hurt it.
BAD_REQUESTS = (
    ("POST", "/predict", {}, "no body"),
    ("POST", "/predict", {"data": b"not an image", "headers": {"Content-Type": "text/plain"}}, "a text body"),
    (
        "POST",
        "/predict",
        {"data": b"\xff\xd8\xff\xe0" + b"\0" * 64, "headers": {"Content-Type": "image/jpeg"}},
        "a truncated JPEG",
    ),
    ("POST", "/predict?top_k=-3", {"files": {"file": ("cat.jpg", b"", "image/jpeg")}}, "top_k=-3 and an empty file"),
    ("GET", "/predict", {}, "GET on /predict"),
    ("GET", "/wp-login.php", {}, "an unknown path"),
)


@STEP.check(
    "bad-requests-answered",
    "malformed requests get 4xx problem+json, and the container stays up and healthy",
    points=2,
    hint="Step 03's error handlers answer every HTTPException as application/problem+json; a bad "
    "upload must never crash a worker or take the container down.",
    needs=("service",),
)
def bad_requests_answered(ctx: Context) -> Outcome:
    if (not_live := _live(ctx)) is not None:
        return not_live
    for method, path, options, what in BAD_REQUESTS:
        response = ctx.service.request(method, path, **options)
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if not 400 <= response.status_code < 500 or media_type != PROBLEM_MEDIA_TYPE:
            return _with_read_only_hint(
                ctx,
                f"{method} {path} with {what} answered {response.status_code} {media_type or 'no Content-Type'}, "
                f"expected a 4xx {PROBLEM_MEDIA_TYPE}",
            )
    if not ctx.service.running():
        return Outcome.fail("the container stopped after the bad requests")
    health = ctx.service.request("GET", "/health")
    if health.status_code != 200:
        return Outcome.fail(f"after the bad requests /health answers {health.status_code}")
    return Outcome.ok(f"{len(BAD_REQUESTS)} malformed requests answered 4xx problem+json; still healthy")


# Runs last (last=True): it stops the container, so every other live check must have run before it.
@STEP.check(
    "graceful-shutdown",
    f"docker stop (SIGTERM) ends the container cleanly, with status 0, within {STOP_GRACE_SECONDS} s",
    points=1,
    hint='Use the exec form, CMD ["gunicorn", ...], so gunicorn is PID 1 and gets SIGTERM itself: a shell '
    "(CMD gunicorn ... without brackets) does not pass it on, and the engine kills the container after "
    "the grace period. Keep gunicorn's graceful_timeout below it.",
    needs=("service",),
    last=True,
)
def graceful_shutdown(ctx: Context) -> Outcome:
    if (not_live := _live(ctx)) is not None:
        return not_live
    stopped = ctx.service.stop(grace=STOP_GRACE_SECONDS)
    figures = {"stop_seconds": f"{stopped.seconds:.1f}"}
    if stopped.oom_killed:
        return Outcome.fail("the container was killed for using more memory than its limit", **figures)
    if stopped.exit_code == 137 or stopped.seconds >= STOP_GRACE_SECONDS:
        return Outcome.fail(
            f"SIGTERM did not stop it: killed after the {STOP_GRACE_SECONDS} s grace period (status {stopped.exit_code})",
            **figures,
        )
    if stopped.exit_code != 0:
        return Outcome.fail(
            f"it exited with status {stopped.exit_code} on SIGTERM, not 0"
            + (": the process died of the signal instead of handling it" if stopped.exit_code == 143 else "")
            + f"; last log lines:\n{stopped.logs}",
            **figures,
        )
    return Outcome.ok(f"stopped cleanly in {stopped.seconds:.1f} s", **figures)


# What grading can do without building the image: the Dockerfile's own checks.
STATIC_CHECKS = frozenset(c.id.split(".", 1)[1] for c in STEP.checks if not {"image", "service"} & set(c.needs))
