"""A first HTTP front for the classifier, so you can see your model serve from step 01 on.

Step 03 rebuilds this into the full service (configuration, metrics, every error case).
"""

from __future__ import annotations

import io
import os
import time

from flask import Flask, jsonify, request
from PIL import Image, UnidentifiedImageError

from service.model import MAX_TOP_K, MODEL_NAME, Classifier, load_classifier


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def create_app(classifier: Classifier | None = None) -> Flask:
    """Application factory: the model loads here, once per process, never at import time."""
    app = Flask(__name__)
    if classifier is None:
        classifier = load_classifier(
            weights_path=os.environ.get("MODEL_WEIGHTS_PATH") or None,
            allow_random=_flag("MODEL_ALLOW_RANDOM_WEIGHTS"),
            seed=int(os.environ.get("MODEL_RANDOM_SEED", "0")),
            num_threads=int(os.environ.get("TORCH_NUM_THREADS", "0")) or None,
        )
        classifier.warm_up()

    def problem(status: int, title: str, detail: str):
        """An RFC 9457 problem document: the error format every answer of ours uses."""
        response = jsonify(type="about:blank", title=title, status=status, detail=detail)
        response.status_code = status
        response.mimetype = "application/problem+json"
        return response

    def weights_fields() -> dict:
        return {
            "model": MODEL_NAME,
            "weights_source": classifier.weights.source,
            "random_weights": classifier.weights.is_random,
        }

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/ready")
    def ready():
        return {"ready": True, **weights_fields()}

    @app.post("/predict")
    def predict():
        upload = request.files.get("file")
        if upload is None:
            return problem(400, "No image", "send the image as a multipart form field named 'file'")
        top_k = request.args.get("top_k", default=5, type=int)
        if not 1 <= top_k <= MAX_TOP_K:
            return problem(400, "Invalid top_k", f"top_k must be an integer from 1 to {MAX_TOP_K}")
        try:
            image = Image.open(io.BytesIO(upload.read()))
            image.load()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            return problem(422, "Unreadable image", "the file could not be decoded as an image")
        started = time.perf_counter()
        predictions = classifier.predict(image, top_k=top_k)
        return {
            **weights_fields(),
            "predictions": [p.to_dict() for p in predictions],
            "inference_ms": round((time.perf_counter() - started) * 1000, 1),
        }

    return app
