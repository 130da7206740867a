"""Step 03, the Flask API: grades ``service/app.py`` and its helpers through Flask's test client.

Each probe builds the learner's application in a separate process with explicit settings and,
except where the real model is the point, a stand-in classifier made of the learner's own
``Prediction`` and ``WeightsInfo``: the verdicts then concern the HTTP layer only, and a probe
takes seconds. The probes collect facts; the judging happens here, in the grader's process.
"""

from __future__ import annotations

import json
import re

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from autograder.checks.context import Context
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome
from autograder.checks.snippets import STUBBED_FUNCTIONS

STEP = StepChecks("03")
FILES = ("service/app.py", "service/problems.py", "service/metrics.py", "service/logs.py", "service/openapi.py")
PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_MEMBERS = ("type", "title", "status", "detail")

# Prepended to every probe: builds apps and answers into plain, JSON-able facts.
HARNESS = (
    STUBBED_FUNCTIONS
    + r'''
import io, json, sys, threading, time
from PIL import Image

def image_bytes(mode="RGB", size=(64, 48), fmt="PNG"):
    buffer = io.BytesIO()
    Image.new(mode, size, color=None if mode == "1" else 128).save(buffer, fmt)
    return buffer.getvalue()

class StandInClassifier:
    """Duck-types the learner's Classifier: sorted, normalised predictions, no model."""
    def __init__(self, fail_with=None):
        from service.model import Prediction
        from service.weights import WeightsInfo
        self.Prediction = Prediction
        self.weights = WeightsInfo("random", "seed=0", is_random=True)
        self.calls = 0
        self.fail_with = fail_with
    def predict(self, image, top_k=5):
        self.calls += 1
        if self.fail_with:
            raise self.fail_with
        image.convert("RGB").load()
        return [self.Prediction(class_id=i, label=f"class {i}", probability=0.5 ** (i + 1)) for i in range(top_k)]
    def warm_up(self):
        pass

def settings(env=None):
    from service.config import Settings
    return Settings.from_env(env or {})

def make_app(env=None, **kwargs):
    from service.app import create_app
    if "classifier" not in kwargs and "loader" not in kwargs:
        kwargs["classifier"] = StandInClassifier()
    return create_app(settings(env), **kwargs)

def answer(response):
    body = response.get_data()
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    return {
        "status": response.status_code,
        "mimetype": response.mimetype,
        "headers": {k.lower(): v for k, v in response.headers.items()},
        "json": parsed,
        "text": body.decode("utf-8", "replace")[:4000],
    }

def wait_until(client, path, status, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.get(path).status_code == status:
            return True
        time.sleep(0.05)
    return False
'''
)


def _probe(ctx: Context, body: str, what: str, *, timeout: float = 120) -> tuple[dict | None, Outcome | None]:
    value, failure = ctx.probe(HARNESS + body, needs=FILES, timeout=timeout)
    if failure:
        if "NotImplementedError (service/" in failure and not any(f"({name}," in failure for name in FILES):
            failure += (
                ": that file belongs to an earlier step; finish it, or run `python -m autograder catch-up 03` "
                "to continue with the reference version"
            )
        return None, Outcome.fail(f"{what} failed: {failure}")
    return value, None


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
)
def files_complete(ctx: Context) -> Outcome:
    value, failed = _probe(
        ctx,
        """
import importlib

def probe():
    stubs = {}
    for name in ("service.app", "service.problems", "service.metrics", "service.logs", "service.openapi"):
        stubs[name] = stubbed_functions(importlib.import_module(name))
    return {"stubs": stubs}
""",
        "importing the service",
    )
    if failed:
        return failed
    stubbed = [f"{module}.{name}" for module, names in value["stubs"].items() for name in names]
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
)
def factory_and_readiness(ctx: Context) -> Outcome:
    value, failed = _probe(
        ctx,
        """
def probe():
    facts = {}
    release, warmed = threading.Event(), []
    class Slow(StandInClassifier):
        def warm_up(self):
            warmed.append(True)
    def slow_loader(settings):
        facts["loader_got_settings"] = type(settings).__name__
        release.wait(20)
        return Slow()
    app = make_app(loader=slow_loader)
    client = app.test_client()
    facts["health_while_loading"] = answer(client.get("/health"))
    facts["ready_while_loading"] = answer(client.get("/ready"))
    facts["predict_while_loading"] = answer(client.post("/predict", data=image_bytes(), content_type="image/png"))
    release.set()
    facts["became_ready"] = wait_until(client, "/ready", 200)
    facts["warmed_before_ready"] = bool(warmed)
    facts["ready_after"] = answer(client.get("/ready"))

    def broken_loader(settings):
        raise FileNotFoundError("weights file /nowhere/resnet50.pt does not exist")
    broken = make_app(loader=broken_loader).test_client()
    time.sleep(0.5)
    facts["ready_after_failure"] = answer(broken.get("/ready"))

    import os
    from service.app import create_app
    from service.config import ConfigError
    os.environ["PORT"] = "eighty"
    try:
        create_app(classifier=StandInClassifier())
        facts["bad_environment"] = "started"
    except ConfigError as error:
        facts["bad_environment"] = str(error)
    return facts
""",
        "building the app",
    )
    if failed:
        return failed
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
    if "resnet50.pt" not in json.dumps(value["ready_after_failure"]["json"]):
        return Outcome.fail("after a failed load, /ready's detail should say why (the loader's error)")
    if "PORT" not in value["bad_environment"]:
        return Outcome.fail("create_app() with PORT=eighty in the environment started; it must raise the ConfigError")
    return Outcome.ok("/health at once; /ready 503 while loading, 200 after load and warm-up, 503 after a failure")


@STEP.check(
    "root-and-health",
    "/ describes the service and its model; /health is cheap and never touches the model",
    points=1,
    hint="GET / answers service, version, model, ready and the weights source; GET /health answers "
    '{"status": "ok"} without calling the classifier.',
)
def root_and_health(ctx: Context) -> Outcome:
    value, failed = _probe(
        ctx,
        """
def probe():
    classifier = StandInClassifier()
    client = make_app(classifier=classifier).test_client()
    facts = {"root": answer(client.get("/")), "health": [answer(client.get("/health")) for _ in range(3)]}
    facts["predict_calls"] = classifier.calls
    from service import __version__
    facts["version"] = __version__
    return facts
""",
        "GET / and /health",
    )
    if failed:
        return failed
    root = value["root"]
    if root["status"] != 200 or not isinstance(root["json"], dict):
        return Outcome.fail(f"GET / answered {root['status']} {root['text'][:100]!r}; expected a JSON object")
    missing = [k for k in ("service", "version", "model", "ready", "weights_source") if k not in root["json"]]
    if missing:
        return Outcome.fail("GET / lacks " + ", ".join(missing))
    if root["json"]["version"] != value["version"] or root["json"]["model"] != "resnet50":
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
)
def predict_contract(ctx: Context) -> Outcome:
    value, failed = _probe(
        ctx,
        """
def probe():
    from service.model import CATEGORIES, load_classifier
    classifier = load_classifier(allow_random=True, seed=0, num_threads=2)
    client = make_app({"TOP_K_DEFAULT": "4", "TOP_K_MAX": "10"}, classifier=classifier).test_client()
    facts = {
        "multipart_jpeg": answer(client.post("/predict?top_k=3", data={"file": (io.BytesIO(image_bytes(fmt="JPEG")), "photo.jpg")})),
        "raw_rgba_png": answer(client.post("/predict", data=image_bytes("RGBA"), content_type="image/png")),
        "raw_grayscale": answer(client.post("/predict?top_k=10", data=image_bytes("L"), content_type="image/png")),
        "above_max": answer(client.post("/predict?top_k=11", data=image_bytes(), content_type="image/png")),
        "not_a_number": answer(client.post("/predict?top_k=three", data=image_bytes(), content_type="image/png")),
    }
    facts["labels"] = CATEGORIES
    return facts
""",
        "POST /predict",
        timeout=180,
    )
    if failed:
        return failed
    labels = value["labels"]
    for name, wanted in (("multipart_jpeg", 3), ("raw_rgba_png", 4), ("raw_grayscale", 10)):
        answer = value[name]
        what = name.replace("_", " ")
        if answer["status"] != 200 or answer["mimetype"] != "application/json":
            return Outcome.fail(f"{what}: answered {answer['status']} {answer['mimetype']} {answer['text'][:160]!r}")
        body = answer["json"]
        missing = [
            k
            for k in ("predictions", "model", "weights_source", "random_weights", "top_k", "inference_ms")
            if k not in body
        ]
        if missing:
            return Outcome.fail(f"{what}: the answer lacks " + ", ".join(missing))
        predictions = body["predictions"]
        if len(predictions) != wanted:
            return Outcome.fail(
                f"{what}: {len(predictions)} predictions, expected {wanted}"
                + (" (TOP_K_DEFAULT=4)" if wanted == 4 else "")
            )
        try:
            probabilities = [p["probability"] for p in predictions]
            if any(labels[p["class_id"]] != p["label"] for p in predictions):
                return Outcome.fail(f"{what}: a label does not belong to its class_id")
        except (KeyError, TypeError, IndexError):
            return Outcome.fail(f"{what}: each prediction must be {{class_id, label, probability}}")
        if probabilities != sorted(probabilities, reverse=True):
            return Outcome.fail(f"{what}: predictions are not sorted by probability, highest first")
        if not all(0 <= p <= 1 for p in probabilities) or sum(probabilities) > 1.0001:
            return Outcome.fail(f"{what}: probabilities must lie in [0, 1] and sum to at most 1 (softmax)")
        if body["weights_source"] != "random" or body["random_weights"] is not True:
            return Outcome.fail(f"{what}: random weights must be reported as such (weights_source 'random')")
        if not isinstance(body["inference_ms"], int | float) or body["inference_ms"] < 0:
            return Outcome.fail(f"{what}: inference_ms must be a number of milliseconds")
    for name in ("above_max", "not_a_number"):
        failure = problem_failure(f"top_k {'11 (TOP_K_MAX=10)' if name == 'above_max' else 'three'}", value[name], 400)
        if failure:
            return Outcome.fail(failure)
    ms = value["multipart_jpeg"]["json"]["inference_ms"]
    return Outcome.ok("multipart and raw uploads classified, sorted and labelled", inference=f"{ms:.0f} ms")


@STEP.check(
    "errors-are-problems",
    "400, 404 and 405 answer RFC 9457 problem documents with the right status",
    points=2,
    hint="Register one error handler for Exception that turns your Problem and Werkzeug's "
    "HTTPException into application/problem+json with type, title, status and detail; keep "
    "Werkzeug's headers (405 has Allow).",
)
def errors_are_problems(ctx: Context) -> Outcome:
    value, failed = _probe(
        ctx,
        """
def probe():
    client = make_app().test_client()
    return {
        "no file (empty multipart)": answer(client.post("/predict", data={"other": "x"}, content_type="multipart/form-data")),
        "no body": answer(client.post("/predict")),
        "unknown path": answer(client.get("/no/such/path")),
        "GET /predict": answer(client.get("/predict")),
        "DELETE /health": answer(client.delete("/health")),
    }
""",
        "sending bad requests",
    )
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
)
def no_traceback_on_500(ctx: Context) -> Outcome:
    value, failed = _probe(
        ctx,
        """
def probe():
    sys.stderr = io.StringIO()
    broken = StandInClassifier(fail_with=RuntimeError("secret-database-password-in-message"))
    app = make_app(classifier=broken)
    app.testing = False
    client = app.test_client()
    failed = answer(client.post("/predict", data=image_bytes(), content_type="image/png"))
    return {"failed": failed, "health_after": answer(client.get("/health")), "log": sys.stderr.getvalue()[-3000:]}
""",
        "a failing classifier",
    )
    if failed:
        return failed
    failure = problem_failure("a crash in the model", value["failed"], 500)
    if failure:
        return Outcome.fail(failure)
    text = value["failed"]["text"]
    if "Traceback" in text or 'File "' in text:
        return Outcome.fail("the 500 answer contains a traceback: log it, never send it")
    if "secret-database-password-in-message" in text:
        return Outcome.fail("the 500 answer repeats the exception's message; internals belong in the log only")
    if value["health_after"]["status"] != 200:
        return Outcome.fail("after the 500, /health no longer answers 200")
    if "secret-database-password-in-message" not in value["log"]:
        return Outcome.fail("the exception was not logged: operators need it (log it with exc_info)")
    return Outcome.ok("500 problem without internals; the error went to the log")


@STEP.check(
    "upload-limits",
    "uploads over MAX_UPLOAD_BYTES get 413, with or without Content-Length",
    points=2,
    hint="Set app.config['MAX_CONTENT_LENGTH'] from the settings: Werkzeug then refuses large bodies "
    "(also chunked ones without Content-Length) with a 413 your error handler turns into a problem.",
)
def upload_limits(ctx: Context) -> Outcome:
    value, failed = _probe(
        ctx,
        """
def probe():
    client = make_app({"MAX_UPLOAD_BYTES": "4096"}).test_client()
    large = image_bytes(size=(300, 300), fmt="BMP")  # 270 kB
    # A chunked upload has no Content-Length; gunicorn then sets wsgi.input_terminated.
    chunked = {"wsgi.input_terminated": True}
    return {
        "small raw": answer(client.post("/predict", data=image_bytes(), content_type="image/png")),
        "large raw": answer(client.post("/predict", data=large, content_type="image/bmp")),
        "large multipart": answer(client.post("/predict", data={"file": (io.BytesIO(large), "big.bmp")})),
        "large chunked": answer(client.post("/predict", input_stream=io.BytesIO(large), content_type="image/bmp",
                                            headers={"Transfer-Encoding": "chunked"},
                                            environ_overrides=chunked)),
    }
""",
        "large uploads",
    )
    if failed:
        return failed
    if value["small raw"]["status"] != 200:
        return Outcome.fail(f"an image under the limit answered {value['small raw']['status']}")
    for name in ("large raw", "large multipart", "large chunked"):
        failure = problem_failure(f"{name} upload over MAX_UPLOAD_BYTES=4096", value[name], 413)
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
)
def bad_images(ctx: Context) -> Outcome:
    value, failed = _probe(
        ctx,
        """
def probe():
    client = make_app().test_client()
    jpeg = image_bytes(size=(200, 200), fmt="JPEG")
    bomb = image_bytes("1", size=(12000, 12000))  # 144 megapixels in a few kilobytes
    post = lambda data, kind="image/png": answer(client.post("/predict", data=data, content_type=kind))
    return {
        "text/plain body": post(b"hello", "text/plain"),
        "JSON body": post(b'{"image": "cat.jpg"}', "application/json"),
        "random bytes as image/png": post(bytes(range(256)) * 4),
        "a text file as multipart": answer(client.post("/predict", data={"file": (io.BytesIO(b"just text"), "notes.txt")})),
        "truncated JPEG": post(jpeg[: len(jpeg) // 2], "image/jpeg"),
        "decompression bomb PNG": post(bomb),
        "a good image afterwards": post(image_bytes()),
        "bomb_size": len(bomb),
    }
""",
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
)
def metrics(ctx: Context) -> Outcome:
    value, failed = _probe(
        ctx,
        """
def probe():
    from prometheus_client.parser import text_string_to_metric_families
    def scrape(client):
        response = client.get("/metrics")
        samples = []
        for family in text_string_to_metric_families(response.get_data(as_text=True)):
            samples += [[s.name, s.labels, s.value] for s in family.samples]
        return {"status": response.status_code, "mimetype": response.mimetype, "samples": samples}
    first_app, second_app = make_app(), make_app()  # two apps in one process: separate registries
    client = second_app.test_client()
    before = scrape(client)
    client.post("/predict", data=image_bytes(), content_type="image/png")
    client.post("/predict", data=image_bytes(), content_type="image/png")
    client.get("/scanner-probe-7f3a9c/wp-login.php")
    client.post("/predict", data=b"nope", content_type="text/plain")
    return {"before": before, "after": scrape(client)}
""",
        "scraping /metrics",
    )
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

    if gain("http_requests_total", endpoint="/predict", method="POST", status="200") != 2:
        return Outcome.fail(
            'http_requests_total{endpoint="/predict",method="POST",status="200"} did not rise by 2 after two predictions'
        )
    if any("scanner-probe-7f3a9c" in json.dumps(labels) for _, labels, _ in after["samples"]):
        return Outcome.fail(
            "a raw URL became a label value: use the route template (or 'unmatched'), or any scanner creates unlimited time series"
        )
    if gain("http_request_duration_seconds_count", endpoint="/predict") < 3:
        return Outcome.fail(
            "http_request_duration_seconds (a histogram with an endpoint label) did not count the /predict requests"
        )
    if not any(n == "http_request_duration_seconds_bucket" for n, _, _ in after["samples"]):
        return Outcome.fail("http_request_duration_seconds must be a histogram (with _bucket series)")
    if gain("predictions_total") != 2:
        return Outcome.fail(
            f"predictions_total rose by {gain('predictions_total'):g} after two predictions, expected 2"
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
)
def json_logs(ctx: Context) -> Outcome:
    value, failed = _probe(
        ctx,
        """
def probe():
    sys.stderr = captured = io.StringIO()
    make_app({"LOG_LEVEL": "INFO"})  # a second app in the same process must not double the lines
    client = make_app({"LOG_LEVEL": "INFO"}).test_client()
    responses = [
        client.get("/health", headers={"X-Request-ID": "trace-42.a"}),
        client.post("/predict", data=image_bytes(), content_type="image/png"),
        client.get("/missing", headers={"X-Request-ID": "<script>evil</script> " + "x" * 200}),
    ]
    ids = [r.headers.get("X-Request-ID") for r in responses]
    sys.stderr = sys.__stderr__
    return {"ids": ids, "log": captured.getvalue()}
""",
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
    if ids[0] != "trace-42.a":
        return Outcome.fail(f"the client's X-Request-ID 'trace-42.a' came back as {ids[0]!r}; keep safe incoming ids")
    if not ids[1] or not ids[2] or "evil" in ids[2]:
        return Outcome.fail("every response needs an X-Request-ID, and an unsafe incoming one must be replaced")
    for request_id, path in zip(ids, ("/health", "/predict", "/missing"), strict=True):
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
)
def openapi_matches(ctx: Context) -> Outcome:
    value, failed = _probe(
        ctx,
        """
def probe():
    app = make_app({"TOP_K_MAX": "10"})
    client = app.test_client()
    routes = sorted(
        [rule.rule, method.lower()] for rule in app.url_map.iter_rules() if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )
    calls = [
        ["/", "get", answer(client.get("/"))],
        ["/health", "get", answer(client.get("/health"))],
        ["/ready", "get", answer(client.get("/ready"))],
        ["/metrics", "get", answer(client.get("/metrics"))],
        ["/predict", "post", answer(client.post("/predict?top_k=2", data=image_bytes(), content_type="image/png"))],
        ["/predict", "post", answer(client.post("/predict"))],
        ["/predict", "post", answer(client.post("/predict", data=b"x", content_type="text/plain"))],
        ["/predict", "post", answer(client.post("/predict", data=b"\\x89PNG\\r\\n\\x1a\\n" + b"0" * 40, content_type="image/png"))],
    ]
    document = answer(client.get("/openapi.json"))
    return {"routes": routes, "calls": calls, "document": document}
""",
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
    responses = spec["paths"][path][method].get("responses", {})
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
    root = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:openapi", root)
    resolved = _rebase_refs(schema)
    validator = jsonschema.Draft202012Validator(resolved, registry=registry)
    error = jsonschema.exceptions.best_match(validator.iter_errors(answer["json"]))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the body"
        return f"{what} that does not match its documented schema at {where}: {error.message[:200]}"
    return ""


def _rebase_refs(schema: object) -> object:
    """Point the document's local "#/components/..." references at the registered document."""
    if isinstance(schema, dict):
        return {
            k: ("urn:openapi" + v if k == "$ref" and v.startswith("#/") else _rebase_refs(v)) for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_rebase_refs(v) for v in schema]
    return schema
