"""Step 03 probes: the learner's Flask application driven through its test client.

Each probe builds the app with explicit settings and, except where the real model is the point,
a stand-in classifier made of the learner's own ``Prediction`` and ``WeightsInfo``, sends
requests, and returns every answer as plain facts (status, media type, headers, body). Paths,
limits, ids and messages are the grader's, drawn for this run.
"""

from __future__ import annotations

import importlib
import io
import json
import sys
import threading
import time

from .harness import describe_error, input_path

TEXT_LIMIT = 4000
MODULES = ("service.app", "service.problems", "service.metrics", "service.logs", "service.openapi")


def image_bytes(mode: str = "RGB", size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, size, color=None if mode == "1" else 128).save(buffer, fmt)
    return buffer.getvalue()


def _input(name: str) -> bytes:
    with open(input_path(name), "rb") as stream:
        return stream.read()


class StandInClassifier:
    """Duck-types the learner's Classifier: sorted, normalised predictions, no model."""

    def __init__(self, fail_with: BaseException | None = None, seed: int = 0):
        from service.model import Prediction
        from service.weights import WeightsInfo

        self.Prediction = Prediction
        self.weights = WeightsInfo("random", f"seed={seed}", is_random=True)
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


def settings(env: dict | None = None):
    from service.config import Settings

    return Settings.from_env(env or {})


def make_app(env: dict | None = None, **kwargs):
    from service.app import create_app

    if "classifier" not in kwargs and "loader" not in kwargs:
        kwargs["classifier"] = StandInClassifier()
    return create_app(settings(env), **kwargs)


def answer(response) -> dict:
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
        "text": body.decode("utf-8", "replace")[:TEXT_LIMIT],
    }


def wait_until(client, path: str, status: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.get(path).status_code == status:
            return True
        time.sleep(0.05)
    return False


def import_modules() -> dict:
    errors = {}
    for name in MODULES:
        try:
            importlib.import_module(name)
        except BaseException as error:
            errors[name] = describe_error(error)
    return {"errors": errors}


def factory_and_readiness(failure_path: str, bad_port: str) -> dict:
    import os

    from service.app import create_app
    from service.config import ConfigError

    facts: dict = {}
    release, warmed = threading.Event(), []

    class Slow(StandInClassifier):
        def warm_up(self):
            warmed.append(True)

    def slow_loader(loader_settings):
        facts["loader_got_settings"] = type(loader_settings).__name__
        release.wait(20)
        return Slow()

    client = make_app(loader=slow_loader).test_client()
    facts["health_while_loading"] = answer(client.get("/health"))
    facts["ready_while_loading"] = answer(client.get("/ready"))
    facts["predict_while_loading"] = answer(client.post("/predict", data=image_bytes(), content_type="image/png"))
    release.set()
    facts["became_ready"] = wait_until(client, "/ready", 200)
    facts["warmed_before_ready"] = bool(warmed)
    facts["ready_after"] = answer(client.get("/ready"))

    def broken_loader(loader_settings):
        raise FileNotFoundError(f"weights file {failure_path} does not exist")

    broken = make_app(loader=broken_loader).test_client()
    time.sleep(0.5)
    facts["ready_after_failure"] = answer(broken.get("/ready"))
    os.environ["PORT"] = bad_port
    try:
        create_app(classifier=StandInClassifier())
        facts["bad_environment"] = "started"
    except ConfigError as error:
        facts["bad_environment"] = str(error)
    return facts


def root_and_health(health_calls: int) -> dict:
    classifier = StandInClassifier()
    client = make_app(classifier=classifier).test_client()
    facts = {"root": answer(client.get("/")), "health": [answer(client.get("/health")) for _ in range(health_calls)]}
    facts["predict_calls"] = classifier.calls
    return facts


def predict_contract(weights: str, uploads: dict[str, dict], env: dict, refused: dict[str, str]) -> dict:
    """The real model, loaded from the grader's weights file, answering each upload."""
    from service.model import load_classifier

    classifier = load_classifier(weights_path=input_path(weights), num_threads=2)
    client = make_app(env, classifier=classifier).test_client()
    facts = {}
    for name, upload in uploads.items():
        data = _input(upload["file"])
        query = f"?top_k={upload['top_k']}" if upload.get("top_k") is not None else ""
        if upload["kind"] == "multipart":
            response = client.post("/predict" + query, data={"file": (io.BytesIO(data), upload["filename"])})
        else:
            response = client.post("/predict" + query, data=data, content_type=upload["content_type"])
        facts[name] = answer(response)
    for name, top_k in refused.items():
        facts[name] = answer(client.post(f"/predict?top_k={top_k}", data=image_bytes(), content_type="image/png"))
    return facts


def errors_are_problems(unknown_path: str) -> dict:
    client = make_app().test_client()
    return {
        "no file (empty multipart)": answer(
            client.post("/predict", data={"other": "x"}, content_type="multipart/form-data")
        ),
        "no body": answer(client.post("/predict")),
        "unknown path": answer(client.get(unknown_path)),
        "GET /predict": answer(client.get("/predict")),
        "DELETE /health": answer(client.delete("/health")),
    }


def no_traceback_on_500(secret: str) -> dict:
    sys.stderr = captured = io.StringIO()
    try:
        broken = StandInClassifier(fail_with=RuntimeError(secret))
        app = make_app(classifier=broken)
        app.testing = False
        client = app.test_client()
        failed = answer(client.post("/predict", data=image_bytes(), content_type="image/png"))
        health_after = answer(client.get("/health"))
    finally:
        sys.stderr = sys.__stderr__
    return {"failed": failed, "health_after": health_after, "log": captured.getvalue()[-6000:]}


def upload_limits(limit: int, large_side: int) -> dict:
    client = make_app({"MAX_UPLOAD_BYTES": str(limit)}).test_client()
    large = image_bytes(size=(large_side, large_side), fmt="BMP")
    # A chunked upload has no Content-Length; gunicorn then sets wsgi.input_terminated.
    chunked = {"wsgi.input_terminated": True}
    return {
        "small raw": answer(client.post("/predict", data=image_bytes(size=(16, 12)), content_type="image/png")),
        "large raw": answer(client.post("/predict", data=large, content_type="image/bmp")),
        "large multipart": answer(client.post("/predict", data={"file": (io.BytesIO(large), "big.bmp")})),
        "large chunked": answer(
            client.post(
                "/predict",
                input_stream=io.BytesIO(large),
                content_type="image/bmp",
                headers={"Transfer-Encoding": "chunked"},
                environ_overrides=chunked,
            )
        ),
        "large_size": len(large),
    }


def bad_images(text: str, side: int, bomb_side: int) -> dict:
    client = make_app().test_client()
    jpeg = image_bytes(size=(side, side), fmt="JPEG")
    bomb = image_bytes("1", size=(bomb_side, bomb_side))  # many megapixels in a few kilobytes

    def post(data: bytes, kind: str = "image/png") -> dict:
        return answer(client.post("/predict", data=data, content_type=kind))

    return {
        "text/plain body": post(text.encode(), "text/plain"),
        "JSON body": post(json.dumps({"image": text}).encode(), "application/json"),
        "random bytes as image/png": post(bytes(range(256)) * 4),
        "a text file as multipart": answer(
            client.post("/predict", data={"file": (io.BytesIO(text.encode()), "notes.txt")})
        ),
        "truncated JPEG": post(jpeg[: len(jpeg) // 2], "image/jpeg"),
        "decompression bomb PNG": post(bomb),
        "a good image afterwards": post(image_bytes()),
    }


def metrics(scanner_path: str, predictions: int) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape(client) -> dict:
        response = client.get("/metrics")
        samples = []
        try:
            for family in text_string_to_metric_families(response.get_data(as_text=True)):
                samples += [[s.name, dict(s.labels), s.value] for s in family.samples]
        except Exception as error:
            return {"status": response.status_code, "mimetype": response.mimetype, "samples": [], "error": str(error)}
        return {"status": response.status_code, "mimetype": response.mimetype, "samples": samples}

    make_app()  # two apps in one process: separate registries
    client = make_app().test_client()
    before = scrape(client)
    for _ in range(predictions):
        client.post("/predict", data=image_bytes(), content_type="image/png")
    client.get(scanner_path)
    client.post("/predict", data=b"nope", content_type="text/plain")
    return {"before": before, "after": scrape(client)}


def json_logs(safe_id: str, unsafe_id: str, missing_path: str) -> dict:
    sys.stderr = captured = io.StringIO()
    try:
        make_app({"LOG_LEVEL": "INFO"})  # a second app in the same process must not double the lines
        client = make_app({"LOG_LEVEL": "INFO"}).test_client()
        responses = [
            client.get("/health", headers={"X-Request-ID": safe_id}),
            client.post("/predict", data=image_bytes(), content_type="image/png"),
            client.get(missing_path, headers={"X-Request-ID": unsafe_id}),
        ]
        ids = [r.headers.get("X-Request-ID") for r in responses]
    finally:
        sys.stderr = sys.__stderr__
    return {"ids": ids, "log": captured.getvalue()[-20000:]}


def openapi_matches(top_k_max: int, top_k: int) -> dict:
    app = make_app({"TOP_K_MAX": str(top_k_max)})
    client = app.test_client()
    routes = sorted(
        [rule.rule, method.lower()]
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )
    png_header_only = b"\x89PNG\r\n\x1a\n" + b"0" * 40
    calls = [
        ["/", "get", answer(client.get("/"))],
        ["/health", "get", answer(client.get("/health"))],
        ["/ready", "get", answer(client.get("/ready"))],
        ["/metrics", "get", answer(client.get("/metrics"))],
        [
            "/predict",
            "post",
            answer(client.post(f"/predict?top_k={top_k}", data=image_bytes(), content_type="image/png")),
        ],
        ["/predict", "post", answer(client.post("/predict"))],
        ["/predict", "post", answer(client.post("/predict", data=b"x", content_type="text/plain"))],
        ["/predict", "post", answer(client.post("/predict", data=png_header_only, content_type="image/png"))],
    ]
    return {"routes": routes, "calls": calls, "document": answer(client.get("/openapi.json"))}
