"""The HTTP service: an application factory, the model loaded in the background, six endpoints.

    GET  /              what this service is and which model it serves
    GET  /health        liveness: the process answers (cheap, never touches the model)
    GET  /ready         readiness: 503 until the model is loaded and warmed up
    POST /predict       an image in (multipart field "file", or the raw body), top-k classes out
    GET  /metrics       Prometheus metrics
    GET  /openapi.json  the OpenAPI document of all of the above

Run it with gunicorn: ``gunicorn 'service.app:create_app()'``.
"""

from __future__ import annotations

import io
import threading
import time
import warnings
from collections.abc import Callable
from types import SimpleNamespace

from flask import Flask, Response, g, jsonify, request
from PIL import Image, UnidentifiedImageError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from service import __version__
from service.config import Settings
from service.logs import REQUEST_ID_HEADER, configure_logging, request_id
from service.metrics import Metrics
from service.model import MODEL_NAME, Classifier, load_classifier
from service.openapi import openapi_document
from service.problems import Problem

SERVICE_NAME = "resnet-service"
# Decoding a 20000 x 20000 PNG of a few kilobytes needs 1.2 GB of memory: a decompression bomb.
# Refuse images with more pixels than this before decoding them (PIL's own limit is 89 million).
MAX_IMAGE_PIXELS = 40_000_000
IMAGE_BODY_TYPES = ("application/octet-stream",)  # besides image/*


def default_loader(settings: Settings) -> Classifier:
    """The classifier the settings describe (weights file, torchvision cache or allowed random)."""
    return load_classifier(
        settings.weights_path,
        allow_random=settings.allow_random_weights,
        seed=settings.random_seed,
        num_threads=settings.torch_threads,
    )


class ModelState:
    """The classifier, loaded in a background thread so that the server answers /health at once
    and /ready says 503 until the model is loaded and warmed up."""

    def __init__(self) -> None:
        self._loaded = threading.Event()
        self.classifier: Classifier | None = None
        self.error: str = ""

    @property
    def ready(self) -> bool:
        return self._loaded.is_set()

    def set(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self._loaded.set()

    def load_in_background(self, load: Callable[[], Classifier], on_loaded: Callable, on_failed: Callable) -> None:
        def run() -> None:
            try:
                classifier = load()
                classifier.warm_up()  # ready means fast: the first request is not the slow one
            except Exception as error:
                self.error = f"{type(error).__name__}: {error}"
                on_failed(error)
                return
            self.set(classifier)  # only now, after loading and warming up, does /ready say 200
            on_loaded(classifier)

        threading.Thread(target=run, name="model-loader", daemon=True).start()

    def wait(self, timeout: float) -> bool:
        """Block until the model is ready (tests, scripts); False after ``timeout`` seconds."""
        return self._loaded.wait(timeout)

    def require(self) -> Classifier:
        """The classifier, or a 503 problem while it is loading (or failed to load)."""
        if self.classifier is None:
            raise not_ready(self.error)
        return self.classifier


def not_ready(error: str) -> Problem:
    if error:
        return Problem(503, "model-failed", f"the model failed to load: {error}", title="Model failed to load")
    return Problem(503, "not-ready", "the model is still loading; try again shortly", headers={"Retry-After": "5"})


def parse_top_k(raw: str | None, settings: Settings) -> int:
    """The ``top_k`` query parameter: an integer from 1 to TOP_K_MAX, TOP_K_DEFAULT when absent."""
    if raw is None or raw == "":
        return settings.top_k_default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= settings.top_k_max:
        raise Problem(400, "invalid-top-k", f"top_k must be an integer from 1 to {settings.top_k_max}, got {raw!r}")
    return value


def read_upload(max_bytes: int) -> bytes:
    """The uploaded image's bytes: multipart field ``file``, or the raw body sent as image/* or
    application/octet-stream; 413 when the body is larger than ``max_bytes``.

    Werkzeug refuses a Content-Length over app.config["MAX_CONTENT_LENGTH"] by itself. A chunked
    body (no Content-Length) it silently cuts at the limit: a raw body that reaches the limit
    without a Content-Length is therefore too large.
    """
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        data = upload.read() if upload is not None else b""
    elif not request.mimetype or request.mimetype.startswith("image/") or request.mimetype in IMAGE_BODY_TYPES:
        data = request.get_data(cache=False)
        if request.content_length is None and len(data) >= max_bytes:
            raise RequestEntityTooLarge()
    else:
        raise Problem(
            415,
            "unsupported-media-type",
            f"a body of type {request.mimetype} is not an image: send image/* or multipart/form-data",
        )
    if not data:
        raise Problem(
            400, "no-image", "send an image as the multipart form field 'file' or as the request body", title="No image"
        )
    return data


def too_many_pixels() -> Problem:
    detail = f"the image has more than {MAX_IMAGE_PIXELS} pixels (a decompression bomb?); scale it down first"
    return Problem(422, "too-many-pixels", detail, title="Image too large to decode")


def decode_image(data: bytes) -> Image.Image:
    """The decoded image, or a problem: 415 when the bytes are no image format we read, 422 when
    they are one but cannot be decoded (corrupt, truncated) or have too many pixels."""
    with warnings.catch_warnings():
        # PIL warns above 89 million pixels and refuses above twice that; we refuse earlier.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))  # reads the header only: cheap
        except UnidentifiedImageError:
            raise Problem(
                415,
                "unsupported-media-type",
                "the upload is not an image in a format the service reads (JPEG, PNG, ...)",
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise too_many_pixels() from None
        except Exception as error:
            raise Problem(
                422, "undecodable-image", f"the image header is corrupt ({error})", title="Undecodable image"
            ) from None
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise too_many_pixels()
        try:
            image.load()  # decodes the pixels: truncated or corrupt data fails here
        except Exception as error:
            raise Problem(
                422, "undecodable-image", f"the image could not be decoded ({error})", title="Undecodable image"
            ) from None
    return image


def create_app(
    settings: Settings | None = None,
    *,
    classifier: Classifier | None = None,
    loader: Callable[[Settings], Classifier] | None = None,
) -> Flask:
    """The application. ``settings`` default to the environment (a ConfigError stops start-up).

    With ``classifier`` the app is ready at once (tests); otherwise ``loader(settings)``
    (default_loader) runs in a background thread, followed by a warm-up.
    """
    settings = Settings.from_env() if settings is None else settings
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    logger = configure_logging(settings.log_level)
    metrics = Metrics()
    state = ModelState()
    # Tests and scripts reach these through the app: app.extensions["resnet_service"].state.wait(30)
    app.extensions["resnet_service"] = SimpleNamespace(settings=settings, metrics=metrics, state=state)

    def on_loaded(loaded: Classifier) -> None:
        info = loaded.weights
        metrics.model_info.labels(MODEL_NAME, info.source, str(info.is_random).lower()).set(1)
        logger.info("model ready", extra={"fields": {"weights_source": info.source, "weights": info.detail}})

    def on_failed(error: Exception) -> None:
        logger.error("model failed to load", exc_info=error)

    if classifier is not None:
        state.set(classifier)
        on_loaded(classifier)
    else:
        load = loader or default_loader
        state.load_in_background(lambda: load(settings), on_loaded, on_failed)

    def model_fields() -> dict:
        current = state.classifier
        return {
            "model": MODEL_NAME,
            "weights_source": current.weights.source if current else None,
            "random_weights": current.weights.is_random if current else None,
        }

    # Every request: an id (the client's X-Request-ID or a new one), a timer, a metric and a log line.
    @app.before_request
    def start_request() -> None:
        g.request_id = request_id(request.headers.get(REQUEST_ID_HEADER))
        g.started = time.perf_counter()

    @app.after_request
    def finish_request(response: Response) -> Response:
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        # The route template ("/predict"), never the raw path: /wp-login.php must not become a label.
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.observe_request(endpoint=endpoint, method=request.method, status=response.status_code, seconds=seconds)
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        logger.info(
            "request",
            extra={
                "fields": {
                    "request_id": g.get("request_id"),
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 1),
                    "bytes_in": request.content_length,
                }
            },
        )
        return response

    @app.errorhandler(Exception)
    def answer_problem(error: Exception) -> Response:
        """Every error, ours or Werkzeug's or a bug, leaves as problem+json; a bug's traceback
        goes to the log, never into the response."""
        if isinstance(error, Problem):
            problem = error
        elif isinstance(error, HTTPException):
            headers = {k: v for k, v in error.get_headers() if k.lower() not in ("content-type", "content-length")}
            if error.code == 413:
                detail = f"the upload is larger than {settings.max_upload_bytes} bytes (MAX_UPLOAD_BYTES)"
                problem = Problem(413, "too-large", detail, headers=headers)
            else:
                problem = Problem(error.code or 500, "", error.description or "", headers=headers)
        else:
            logger.error("unhandled error", exc_info=error, extra={"fields": {"request_id": g.get("request_id")}})
            detail = f"the service failed to answer; quote request id {g.get('request_id')} to its operators"
            problem = Problem(500, "internal-error", detail)
        metrics.errors.labels(type=problem.metric_label).inc()
        return problem.to_response(instance=request.path, request_id=g.get("request_id", ""))

    @app.get("/")
    def info():
        return {
            "service": SERVICE_NAME,
            "version": __version__,
            "ready": state.ready,
            **model_fields(),
            "endpoints": ["/", "/health", "/ready", "/predict", "/metrics", "/openapi.json"],
            "openapi": "/openapi.json",
        }

    @app.get("/health")
    def health():
        # Liveness: the process answers. A model that failed to load will never get better in this
        # process, so say so and let the orchestrator restart it; never touch the model here.
        if state.error:
            raise not_ready(state.error)
        return {"status": "ok"}

    @app.get("/ready")
    def ready():
        state.require()
        return {"ready": True, **model_fields()}

    @app.post("/predict")
    def predict():
        current = state.require()
        top_k = parse_top_k(request.args.get("top_k"), settings)
        image = decode_image(read_upload(settings.max_upload_bytes))
        started = time.perf_counter()
        predictions = current.predict(image, top_k=top_k)
        seconds = time.perf_counter() - started
        metrics.predictions.inc()
        metrics.inference.observe(seconds)
        return jsonify(
            {
                **model_fields(),
                "predictions": [p.to_dict() for p in predictions],
                "top_k": top_k,
                "inference_ms": round(seconds * 1000, 2),
                "request_id": g.request_id,
            }
        )

    @app.get("/metrics")
    def prometheus_metrics():
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    @app.get("/openapi.json")
    def openapi():
        return openapi_document(settings)

    return app
