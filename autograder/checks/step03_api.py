"""Step 03, the Flask API: grades ``service/app.py`` and its helpers by sending them requests.

The probe ``step03_api:serve`` builds the learner's applications in the sandbox with explicit
settings and, except where the real model is the point, a stand-in classifier made of the
learner's own ``Prediction`` and ``WeightsInfo`` (the verdicts then concern the HTTP layer only),
and serves them on Unix sockets; ``step03_requests`` sends the requests from the grader's process
and collects the answers, and the judging happens here. Paths, limits, ids, messages and images
are drawn for each run.
"""

from __future__ import annotations

import json
import re
import string

from autograder.checks import reference_model, step03_requests
from autograder.checks.context import Context
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome
from autograder.checks.samples import encode, random_crop
from autograder.checks.step00_orientation import package_version
from autograder.checks.stubs import stubs_left

STEP = StepChecks("03")
PROBABILITY_TOLERANCE = 1e-4
FILES = ("service/app.py", "service/problems.py", "service/metrics.py", "service/logs.py", "service/openapi.py")
PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_MEMBERS = ("type", "title", "status", "detail")


def _probe(
    ctx: Context,
    probe: str,
    arguments: dict,
    what: str,
    *,
    inputs: dict | None = None,
    timeout: float = 120,
) -> tuple[dict | None, Outcome | None]:
    if probe == "import_modules":
        value, failure = ctx.probe(f"step03_api:{probe}", arguments, files=FILES, inputs=inputs, timeout=timeout)
    else:  # the app served in the sandbox, the requests sent from here
        talk = getattr(step03_requests, probe)(**arguments)
        value, failure = ctx.probe(
            step03_requests.PROBE, talk.arguments, files=FILES, inputs=inputs, timeout=timeout, drive=talk.drive
        )
    if failure:
        if "NotImplementedError (service/" in failure and not any(f"({name}," in failure for name in FILES):
            failure += (
                ": that file belongs to an earlier step; finish it, or run `python -m autograder catch-up 03` "
                "to continue with the reference version"
            )
        return None, Outcome.fail(f"{what} failed: {failure}")
    return value, None


def _word(ctx: Context, length: int = 8) -> str:
    return "".join(ctx.rng.choice(string.ascii_lowercase) for _ in range(length))


def problem_failure(name: str, answer: dict, status: int) -> str:
    """Why ``answer`` is not an RFC 9457 problem document with ``status``; "" when it is one."""
    if answer["status"] != status:
        return f"{name}: expected status {status}, got {answer['status']} ({answer['text'][:120]!r})"
    if answer["mimetype"] != PROBLEM_MEDIA_TYPE:
        return f"{name}: the content type is {answer['mimetype']!r}, not {PROBLEM_MEDIA_TYPE}"
    document = answer["json"]
    if not isinstance(document, dict):
        return f"{name}: the body is not a JSON object"
    missing = [m for m in PROBLEM_MEMBERS if m not in document]
    if missing:
        return f"{name}: the problem document lacks {', '.join(missing)}"
    if document["status"] != status:
        return f"{name}: the document says status {document['status']!r} but the response is {status}"
    return ""


@STEP.check(
    "files-complete",
    "app.py, problems.py, metrics.py, logs.py and openapi.py exist and import, with no stub left",
    points=1,
    hint="Run every %%writefile cell of notebook 03, and replace each `raise NotImplementedError()`.",
    needs=("probe",),
)
def files_complete(ctx: Context) -> Outcome:
    value, failed = _probe(ctx, "import_modules", {}, "importing the service")
    if failed:
        return failed
    if value["errors"]:
        name, error = next(iter(value["errors"].items()))
        return Outcome.fail(f"importing the service failed: {name}: {error}")
    stubbed = stubs_left(ctx, FILES)
    if stubbed:
        return Outcome.fail("still to write: " + ", ".join(stubbed))
    return Outcome.ok("all five modules import, nothing left to write")


@STEP.check(
    "factory-and-readiness",
    "create_app answers /health at once and /ready 503 until the model is loaded and warmed up",
    points=2,
    hint="create_app(settings, loader=...) starts loader(settings) and a warm-up in a background "
    "thread; /ready raises a 503 problem until both are done, and after a failed load; /health "
    "answers 200 meanwhile. create_app() without settings reads them from the environment.",
    needs=("probe",),
)
def factory_and_readiness(ctx: Context) -> Outcome:
    failure_file = f"/nowhere/{_word(ctx)}.pt"
    value, failed = _probe(ctx, "factory_and_readiness", {"failure_path": failure_file}, "building the app")
    if failed:
        return failed
    bad_port = _word(ctx, 5)
    started, failure = ctx.command(
        ["python", "-c", step03_requests.BAD_ENVIRONMENT_SCRIPT], env={"PORT": bad_port}, files=FILES
    )
    if failure:
        return Outcome.fail(f"create_app() with PORT={bad_port!r} in the environment failed: {failure}")
    if value["health_while_loading"]["status"] != 200:
        return Outcome.fail(
            f"/health answered {value['health_while_loading']['status']} while the model loaded; it must not wait for the model"
        )
    for name in ("ready_while_loading", "predict_while_loading"):
        failure = problem_failure(name.replace("_", " "), value[name], 503)
        if failure:
            return Outcome.fail(failure)
    if not value["became_ready"]:
        return Outcome.fail("/ready never answered 200 after the loader returned")
    if not value["warmed_before_ready"]:
        return Outcome.fail("/ready said 200 before warm_up() ran: ready means the first request is fast too")
    if value.get("loader_got_settings") != "Settings":
        return Outcome.fail("the loader must be called with the app's Settings")
    failure = problem_failure("/ready after a failed load", value["ready_after_failure"], 503)
    if failure:
        return Outcome.fail(failure)
    if failure_file not in json.dumps(value["ready_after_failure"]["json"]):
        return Outcome.fail("after a failed load, /ready's detail should say why (the loader's error)")
    if started["status"] == 0 or "ConfigError" not in started["stderr"] or "PORT" not in started["stderr"]:
        said = (started["stderr"].strip().splitlines() or ["it started"])[-1][:200]
        return Outcome.fail(
            f"create_app() with PORT={bad_port!r} in the environment must raise the ConfigError naming PORT; {said}"
        )
    return Outcome.ok("/health at once; /ready 503 while loading, 200 after load and warm-up, 503 after a failure")


@STEP.check(
    "root-and-health",
    "/ describes the service and its model; /health is cheap and never touches the model",
    points=1,
    hint="GET / answers service, version, model, ready and the weights source; GET /health answers "
    '{"status": "ok"} without calling the classifier.',
    needs=("probe",),
)
def root_and_health(ctx: Context) -> Outcome:
    value, failed = _probe(ctx, "root_and_health", {"health_calls": ctx.rng.randint(2, 5)}, "GET / and /health")
    if failed:
        return failed
    root = value["root"]
    if root["status"] != 200 or not isinstance(root["json"], dict):
        return Outcome.fail(f"GET / answered {root['status']} {root['text'][:100]!r}; expected a JSON object")
    missing = [k for k in ("service", "version", "model", "ready", "weights_source") if k not in root["json"]]
    if missing:
        return Outcome.fail("GET / lacks " + ", ".join(missing))
    if root["json"]["version"] != package_version(ctx) or root["json"]["model"] != "resnet50":
        return Outcome.fail("GET / should report service.__version__ and the model name resnet50")
    health = value["health"][0]
    if health["status"] != 200 or health["json"] != {"status": "ok"}:
        return Outcome.fail(f'/health answered {health["status"]} {health["text"][:80]!r}; expected {{"status": "ok"}}')
    if value["predict_calls"]:
        return Outcome.fail("GET / or /health ran the model: liveness must stay cheap under load")
    return Outcome.ok("/ and /health answer; the model was not touched")


@STEP.check(
    "predict-contract",
    "/predict classifies multipart and raw uploads (JPEG, RGBA PNG, grayscale) with the real model",
    points=3,
    hint="Accept the multipart field 'file' or a raw image/* body; answer predictions [{class_id, label, "
    "probability}] sorted by probability, model, weights_source, random_weights, top_k and inference_ms; "
    "top_k defaults to TOP_K_DEFAULT and is refused above TOP_K_MAX.",
    needs=("probe",),
)
def predict_contract(ctx: Context) -> Outcome:
    rng = ctx.rng
    top_k_default = rng.choice([2, 3, 4, 6, 7])
    top_k_max = rng.randint(8, 15)
    seed = rng.randrange(1, 2**31)
    photos = {
        "multipart JPEG": (random_crop("chelsea.png", rng), "JPEG", {"quality": 90}),
        "raw RGBA PNG": (random_crop("coffee.png", rng).convert("RGBA"), "PNG", {}),
        "raw grayscale PNG": (random_crop("astronaut.png", rng).convert("L"), "PNG", {}),
    }
    wanted_k = {"multipart JPEG": rng.randint(1, top_k_max), "raw RGBA PNG": None, "raw grayscale PNG": top_k_max}
    files, uploads, images = {}, {}, {}
    for index, (name, (image, image_format, options)) in enumerate(photos.items()):
        file_name = f"upload-{index}.{image_format.lower()}"
        files[file_name] = encode(image, image_format, **options)
        images[name] = files[file_name]
        uploads[name] = {
            "file": file_name,
            "kind": "multipart" if name.startswith("multipart") else "raw",
            "filename": f"photo-{_word(ctx, 4)}.jpg",
            "content_type": "image/png",
            "top_k": wanted_k[name],
        }
    refused = {"above_max": str(top_k_max + rng.randint(1, 5)), "not_a_number": _word(ctx, 5)}
    value, failed = _probe(
        ctx,
        "predict_contract",
        {
            "weights": "weights.pt",
            "uploads": uploads,
            "files": files,
            "env": {"TOP_K_DEFAULT": str(top_k_default), "TOP_K_MAX": str(top_k_max)},
            "refused": refused,
        },
        "POST /predict",
        inputs={"weights.pt": reference_model.weights_file(seed, ctx.scratch)},
        timeout=180,
    )
    if failed:
        return failed
    import io

    from PIL import Image

    for name in photos:
        answer = value[name]
        wanted = wanted_k[name] or top_k_default
        if answer["status"] != 200 or answer["mimetype"] != "application/json":
            return Outcome.fail(f"{name}: answered {answer['status']} {answer['mimetype']} {answer['text'][:160]!r}")
        body = answer["json"]
        if not isinstance(body, dict):
            return Outcome.fail(f"{name}: the answer is not a JSON object")
        missing = [
            k
            for k in ("predictions", "model", "weights_source", "random_weights", "top_k", "inference_ms")
            if k not in body
        ]
        if missing:
            return Outcome.fail(f"{name}: the answer lacks " + ", ".join(missing))
        predictions = body["predictions"]
        if not isinstance(predictions, list) or len(predictions) != wanted:
            count = len(predictions) if isinstance(predictions, list) else "no list of"
            return Outcome.fail(
                f"{name}: {count} predictions, expected {wanted}"
                + (f" (TOP_K_DEFAULT={top_k_default})" if wanted_k[name] is None else "")
            )
        try:
            rows = [[p["class_id"], p["label"], p["probability"]] for p in predictions]
        except (KeyError, TypeError):
            return Outcome.fail(f"{name}: each prediction must be {{class_id, label, probability}}")
        with Image.open(io.BytesIO(images[name])) as upload:
            expected = reference_model.probabilities(seed, upload)
        wrong = reference_model.top_k_failure(rows, expected, wanted, PROBABILITY_TOLERANCE)
        if wrong:
            return Outcome.fail(f"{name}: {wrong}")
        if body["weights_source"] != "file" or body["random_weights"] is not False:
            return Outcome.fail(
                f"{name}: the answer must repeat where the weights came from (weights_source 'file', "
                f"random_weights false for a weights file); got {body['weights_source']!r}, {body['random_weights']!r}"
            )
        if not isinstance(body["inference_ms"], int | float) or body["inference_ms"] < 0:
            return Outcome.fail(f"{name}: inference_ms must be a number of milliseconds")
    for name, raw in refused.items():
        what = f"top_k {raw} (TOP_K_MAX={top_k_max})" if name == "above_max" else f"top_k {raw}"
        failure = problem_failure(what, value[name], 400)
        if failure:
            return Outcome.fail(failure)
    ms = value["multipart JPEG"]["json"]["inference_ms"]
    return Outcome.ok("multipart and raw uploads classified, sorted and labelled", inference=f"{ms:.0f} ms")


@STEP.check(
    "errors-are-problems",
    "400, 404 and 405 answer RFC 9457 problem documents with the right status",
    points=2,
    hint="Register one error handler for Exception that turns your Problem and Werkzeug's "
    "HTTPException into application/problem+json with type, title, status and detail; keep "
    "Werkzeug's headers (405 has Allow).",
    needs=("probe",),
)
def errors_are_problems(ctx: Context) -> Outcome:
    unknown = f"/no/such/{_word(ctx)}"
    value, failed = _probe(ctx, "errors_are_problems", {"unknown_path": unknown}, "sending bad requests")
    if failed:
        return failed
    statuses = {
        "no file (empty multipart)": 400,
        "no body": 400,
        "unknown path": 404,
        "GET /predict": 405,
        "DELETE /health": 405,
    }
    for name, status in statuses.items():
        failure = problem_failure(name, value[name], status)
        if failure:
            return Outcome.fail(failure)
    if "post" not in value["GET /predict"]["headers"].get("allow", "").lower():
        return Outcome.fail("the 405 answer lost its Allow header (which methods the path accepts)")
    return Outcome.ok("400, 404 and 405 are problem documents")


@STEP.check(
    "no-traceback-on-500",
    "a bug answers 500 problem+json without traceback or internals, and the service goes on",
    points=1,
    hint="The handler for unexpected exceptions logs them (with the traceback) and answers a 500 "
    "problem whose detail says only that the service failed, with the request id.",
    needs=("probe",),
)
def no_traceback_on_500(ctx: Context) -> Outcome:
    secret = f"secret-{_word(ctx, 12)}-in-message"
    value, failed = _probe(ctx, "no_traceback_on_500", {"secret": secret}, "a failing classifier")
    if failed:
        return failed
    failure = problem_failure("a crash in the model", value["failed"], 500)
    if failure:
        return Outcome.fail(failure)
    text = value["failed"]["text"]
    if "Traceback" in text or 'File "' in text:
        return Outcome.fail("the 500 answer contains a traceback: log it, never send it")
    if secret in text:
        return Outcome.fail("the 500 answer repeats the exception's message; internals belong in the log only")
    if value["health_after"]["status"] != 200:
        return Outcome.fail("after the 500, /health no longer answers 200")
    if secret not in value["log"]:
        return Outcome.fail("the exception was not logged: operators need it (log it with exc_info)")
    return Outcome.ok("500 problem without internals; the error went to the log")


@STEP.check(
    "upload-limits",
    "uploads over MAX_UPLOAD_BYTES get 413, with or without Content-Length",
    points=2,
    hint="Set app.config['MAX_CONTENT_LENGTH'] from the settings: Werkzeug then refuses large bodies "
    "(also chunked ones without Content-Length) with a 413 your error handler turns into a problem.",
    needs=("probe",),
)
def upload_limits(ctx: Context) -> Outcome:
    limit = ctx.rng.randint(2048, 8192)
    value, failed = _probe(
        ctx, "upload_limits", {"limit": limit, "large_side": ctx.rng.randint(200, 320)}, "large uploads"
    )
    if failed:
        return failed
    if value["small raw"]["status"] != 200:
        return Outcome.fail(f"an image under the limit answered {value['small raw']['status']}")
    for name in ("large raw", "large multipart", "large chunked"):
        failure = problem_failure(f"{name} upload over MAX_UPLOAD_BYTES={limit}", value[name], 413)
        if failure:
            return Outcome.fail(failure)
    return Outcome.ok("413 problem documents for uploads over the limit, also without Content-Length")


@STEP.check(
    "bad-images",
    "not an image: 415; corrupt, truncated or decompression-bomb image: 422; the service goes on",
    points=2,
    hint="Only image/*, application/octet-stream and multipart bodies are images; PIL's "
    "UnidentifiedImageError means 415; a failing load() means 422; check width x height against a "
    "pixel limit before decoding (and catch Image.DecompressionBombError).",
    needs=("probe",),
)
def bad_images(ctx: Context) -> Outcome:
    value, failed = _probe(
        ctx,
        "bad_images",
        {
            "text": f"just text {_word(ctx)}",
            "side": ctx.rng.randint(150, 260),
            # Over PIL's warning limit (89 megapixels), under the size where PIL refuses by itself.
            "bomb_side": ctx.rng.randint(10000, 13000),
        },
        "bad images",
    )
    if failed:
        return failed
    expected = {
        "text/plain body": 415,
        "JSON body": 415,
        "random bytes as image/png": 415,
        "a text file as multipart": 415,
        "truncated JPEG": 422,
        "decompression bomb PNG": 422,
    }
    for name, status in expected.items():
        failure = problem_failure(name, value[name], status)
        if failure:
            return Outcome.fail(failure)
    if value["a good image afterwards"]["status"] != 200:
        return Outcome.fail("after the bad images, a good one no longer gets 200")
    return Outcome.ok("415 for non-images, 422 for corrupt, truncated and bomb images; still serving")


@STEP.check(
    "metrics",
    "/metrics exposes requests, latency, predictions, errors and model info in Prometheus format",
    points=2,
    hint="http_requests_total{endpoint,method,status} with the route template as endpoint (never the raw "
    "path), http_request_duration_seconds histogram, predictions_total, errors_total{type}, "
    "model_info{model,weights_source,...} = 1; one CollectorRegistry per app.",
    needs=("probe",),
)
def metrics(ctx: Context) -> Outcome:
    scanner = f"/scanner-{_word(ctx, 6)}/wp-login.php"
    predictions = ctx.rng.randint(2, 4)
    value, failed = _probe(ctx, "metrics", {"scanner_path": scanner, "predictions": predictions}, "scraping /metrics")
    if failed:
        return failed
    after = value["after"]
    if after["status"] != 200 or after["mimetype"] != "text/plain":
        return Outcome.fail(f"/metrics answered {after['status']} {after['mimetype']}; expected 200 text/plain")

    def total(snapshot: dict, name: str, **labels: str) -> float:
        return sum(
            v for n, ls, v in snapshot["samples"] if n == name and all(ls.get(k) == w for k, w in labels.items())
        )

    def gain(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(value["before"], name, **labels)

    if gain("http_requests_total", endpoint="/predict", method="POST", status="200") != predictions:
        return Outcome.fail(
            'http_requests_total{endpoint="/predict",method="POST",status="200"} did not rise by '
            f"{predictions} after {predictions} predictions"
        )
    if any(scanner.split("/")[1] in json.dumps(labels) for _, labels, _ in after["samples"]):
        return Outcome.fail(
            "a raw URL became a label value: use the route template (or 'unmatched'), or any scanner creates unlimited time series"
        )
    if gain("http_request_duration_seconds_count", endpoint="/predict") < predictions + 1:
        return Outcome.fail(
            "http_request_duration_seconds (a histogram with an endpoint label) did not count the /predict requests"
        )
    if not any(n == "http_request_duration_seconds_bucket" for n, _, _ in after["samples"]):
        return Outcome.fail("http_request_duration_seconds must be a histogram (with _bucket series)")
    if gain("predictions_total") != predictions:
        return Outcome.fail(
            f"predictions_total rose by {gain('predictions_total'):g} after {predictions} predictions, "
            f"expected {predictions}"
        )
    if gain("errors_total") < 2 or not any(n == "errors_total" and ls.get("type") for n, ls, _ in after["samples"]):
        return Outcome.fail("errors_total{type=...} did not count the 404 and the 415")
    if not any(
        n == "model_info" and ls.get("model") == "resnet50" and ls.get("weights_source") and v == 1
        for n, ls, v in after["samples"]
    ):
        return Outcome.fail('model_info{model="resnet50",weights_source=...} 1 is missing')
    return Outcome.ok("requests, latency, predictions, errors and model info are exposed and counted")


@STEP.check(
    "json-logs",
    "one JSON log line per request on stderr, with the request id also sent back as X-Request-ID",
    points=2,
    hint="A logging.Formatter that emits json.dumps of time, level, message and the request's fields; "
    "after_request logs request_id, method, path, status and duration_ms; a safe incoming "
    "X-Request-ID is kept, an unsafe one replaced.",
    needs=("probe",),
)
def json_logs(ctx: Context) -> Outcome:
    safe_id = f"trace-{ctx.rng.randint(10, 99)}.{_word(ctx, 4)}"
    unsafe_id = f"<script>{_word(ctx, 5)}</script> " + "x" * 200
    missing = f"/missing-{_word(ctx, 5)}"
    value, failed = _probe(
        ctx,
        "json_logs",
        {"safe_id": safe_id, "unsafe_id": unsafe_id, "missing_path": missing},
        "logging requests",
    )
    if failed:
        return failed
    lines = [line for line in value["log"].splitlines() if line.strip()]
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            return Outcome.fail(f"a log line is not JSON: {line[:120]!r}")
    if not all(isinstance(e, dict) for e in entries):
        return Outcome.fail("each log line must be a JSON object")
    ids = value["ids"]
    if ids[0] != safe_id:
        return Outcome.fail(f"the client's X-Request-ID {safe_id!r} came back as {ids[0]!r}; keep safe incoming ids")
    if not ids[1] or not ids[2] or "<script>" in ids[2] or ids[2] == unsafe_id:
        return Outcome.fail("every response needs an X-Request-ID, and an unsafe incoming one must be replaced")
    for request_id, path in zip(ids, ("/health", "/predict", missing), strict=True):
        matching = [e for e in entries if e.get("request_id") == request_id]
        if len(matching) != 1:
            return Outcome.fail(f"{path}: expected one log line with request_id {request_id!r}, found {len(matching)}")
        missing = [k for k in ("method", "path", "status", "duration_ms") if k not in matching[0]]
        if missing:
            return Outcome.fail(f"the log line of {path} lacks " + ", ".join(missing))
        if matching[0]["path"] != path:
            return Outcome.fail(f"the log line of {path} says path {matching[0]['path']!r}")
    return Outcome.ok("one JSON line per request, ids kept or made, and sent back")


@STEP.check(
    "openapi-matches",
    "/openapi.json documents every route, and real answers validate against it",
    points=2,
    hint="Every route and method of the app is a documented operation (and nothing else); each "
    "real answer's status and content type are listed for its operation, and its JSON body "
    "validates against the schema given there.",
    needs=("probe",),
)
def openapi_matches(ctx: Context) -> Outcome:
    top_k_max = ctx.rng.randint(5, 20)
    value, failed = _probe(
        ctx,
        "openapi_matches",
        {"top_k_max": top_k_max, "top_k": ctx.rng.randint(1, top_k_max)},
        "reading /openapi.json",
    )
    if failed:
        return failed
    document = value["document"]
    if document["status"] != 200 or not isinstance(document["json"], dict):
        return Outcome.fail(f"/openapi.json answered {document['status']} {document['text'][:100]!r}")
    spec = document["json"]
    if not str(spec.get("openapi", "")).startswith("3."):
        return Outcome.fail("the document needs an 'openapi' version field (3.1.0)")
    paths = spec.get("paths") or {}
    documented = sorted([path, method] for path, item in paths.items() for method in item if method in HTTP_METHODS)
    routes = [[_openapi_path(path), method] for path, method in value["routes"]]
    undocumented = [f"{m.upper()} {p}" for p, m in routes if [p, m] not in documented]
    if undocumented:
        return Outcome.fail("routes missing from the document: " + ", ".join(undocumented))
    phantom = [f"{m.upper()} {p}" for p, m in documented if [p, m] not in routes]
    if phantom:
        return Outcome.fail("the document describes operations the app does not have: " + ", ".join(phantom))
    for path, method, answer in value["calls"]:
        failure = _validate_answer(spec, path, method, answer)
        if failure:
            return Outcome.fail(failure)
    return Outcome.ok(f"{len(routes)} operations documented; {len(value['calls'])} real answers validate")


HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _openapi_path(flask_rule: str) -> str:
    """/items/<int:item_id> -> /items/{item_id}"""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", flask_rule)


def _validate_answer(spec: dict, path: str, method: str, answer: dict) -> str:
    """Why a real ``answer`` contradicts the document; "" when it matches."""
    operation = ((spec.get("paths") or {}).get(path) or {}).get(method)
    if not isinstance(operation, dict):
        return f"the document has no {method.upper()} {path} operation"
    responses = operation.get("responses") or {}
    status = str(answer["status"])
    described = responses.get(status) or responses.get(status[0] + "XX") or responses.get("default")
    what = f"{method.upper()} {path} answered {status} {answer['mimetype']}"
    if described is None:
        return f"{what}, but the document lists only {', '.join(responses) or 'no responses'} for it"
    content = described.get("content") or {}
    media = content.get(answer["mimetype"]) or content.get(answer["mimetype"].split("/")[0] + "/*")
    if media is None:
        return f"{what}, but the document gives {', '.join(content) or 'no content'} for {status}"
    schema = media.get("schema")
    if schema is None or answer["json"] is None:
        return ""
    # Imported here: jsonschema's import builds parsers for its format checks (about 2 s), which
    # every other step's grading would pay for nothing.
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    try:
        root = Resource.from_contents(_defused(spec), default_specification=DRAFT202012)
        registry = Registry().with_resource("urn:openapi", root)
        validator = jsonschema.Draft202012Validator(_rebase_refs(_defused(schema)), registry=registry)
        error = jsonschema.exceptions.best_match(validator.iter_errors(answer["json"]))
    except Exception as problem:  # noqa: BLE001 - an unusable schema of the learner's, whatever it is
        return f"the document's schema for {status} of {method.upper()} {path} cannot be used: {type(problem).__name__}"
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the body"
        return f"{what} that does not match its documented schema at {where}: {error.message[:200]}"
    return ""


# Keywords whose cost the document's author controls: a regular expression can backtrack for
# hours (re has no timeout), uniqueItems compares every pair of a large array. The grader never
# evaluates them; each is recognised by its value's type, so a property named "pattern" stays.
COSTLY_KEYWORDS = {"pattern": str, "patternProperties": dict, "uniqueItems": bool, "format": str}


def _defused(schema: object, depth: int = 0) -> object:
    """``schema`` without the costly keywords, and no deeper than the parser's limits allow."""
    if depth > 200:
        raise RecursionError("the schema is nested too deep")
    if isinstance(schema, dict):
        return {
            k: _defused(v, depth + 1)
            for k, v in schema.items()
            if not (k in COSTLY_KEYWORDS and isinstance(v, COSTLY_KEYWORDS[k]))
        }
    if isinstance(schema, list):
        return [_defused(v, depth + 1) for v in schema]
    return schema


def _rebase_refs(schema: object) -> object:
    """Point the document's local "#/components/..." references at the registered document."""
    if isinstance(schema, dict):
        return {
            k: ("urn:openapi" + v if k == "$ref" and v.startswith("#/") else _rebase_refs(v)) for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_rebase_refs(v) for v in schema]
    return schema
