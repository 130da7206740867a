"""Step 03's checks: pass on the reference workspace, fail on the untouched student workspace, and
fail for the right reason on a variant with one specific mistake."""

from __future__ import annotations

import pytest

from autograder.checks import step03_api

# Every check builds the learner's app in the sandbox, some with the real model.
pytestmark = pytest.mark.slow

STEP_ID = "03"
CHECK_IDS = [check.id for check in step03_api.STEP.checks]
APP, METRICS, LOGS, OPENAPI, PROBLEMS = (
    "service/app.py", "service/metrics.py", "service/logs.py", "service/openapi.py", "service/problems.py",
)  # fmt: skip


# "Passes on the reference" is proven by the solution notebooks' checkpoints
# (tests/course/test_solutions_execute.py) and "fails on the untouched release" by the release's
# Run All (tests/course/test_exercises_nbval.py): each grading of this step takes a minute.


def test_step_03_is_worth_twenty_visible_points():
    assert step03_api.STEP.max_points == 20


VARIANTS = {
    "ready-before-load": (
        "03.factory-and-readiness",
        [
            (
                APP,
                "        if self.classifier is None:\n            raise not_ready",
                "        if False:\n            raise not_ready",
            )
        ],
        "503",
    ),
    "environment-ignored": (
        "03.factory-and-readiness",
        [
            (
                APP,
                "    settings = Settings.from_env() if settings is None else settings",
                "    settings = settings or Settings()",
            )
        ],
        "must raise the ConfigError",
    ),
    "ready-before-warm-up": (
        "03.factory-and-readiness",
        [(APP, "                classifier.warm_up()  #", "                pass  #")],
        "warm_up",
    ),
    "health-runs-the-model": (
        "03.root-and-health",
        [
            (
                APP,
                '        return {"status": "ok"}',
                '        state.require().predict(Image.new("RGB", (8, 8)), top_k=1)\n        return {"status": "ok"}',
            )
        ],
        "ran the model",
    ),
    "top-k-default-ignored": (
        "03.predict-contract",
        [(APP, "        return settings.top_k_default", "        return 5")],
        "TOP_K_DEFAULT",
    ),
    "unsorted-predictions": (
        "03.predict-contract",
        [
            (
                APP,
                '"predictions": [p.to_dict() for p in predictions],',
                '"predictions": [p.to_dict() for p in predictions][::-1],',
            )
        ],
        "sorted",
    ),
    "raw-body-refused": (
        "03.predict-contract",
        [(APP, '    elif not request.mimetype or request.mimetype.startswith("image/")', "    elif False")],
        "raw",
    ),
    "errors-as-plain-json": (
        "03.errors-are-problems",
        [(PROBLEMS, "mimetype=PROBLEM_MEDIA_TYPE", 'mimetype="application/json"')],
        "content type",
    ),
    "allow-header-dropped": (
        "03.errors-are-problems",
        [
            (
                APP,
                '                problem = Problem(error.code or 500, "", error.description or "", headers=headers)',
                '                problem = Problem(error.code or 500, "", error.description or "")',
            )
        ],
        "Allow",
    ),
    "traceback-in-500": (
        "03.no-traceback-on-500",
        [
            (
                APP,
                "            detail = f\"the service failed to answer; quote request id {g.get('request_id')} to its operators\"",
                "            import traceback\n            detail = traceback.format_exc()",
            )
        ],
        "traceback",
    ),
    "exception-not-logged": (
        "03.no-traceback-on-500",
        [
            (
                APP,
                '            logger.error("unhandled error", exc_info=error',
                '            logger.debug("unhandled error", exc_info=error',
            )
        ],
        "logged",
    ),
    "no-size-limit": (
        "03.upload-limits",
        [(APP, '    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes', "")],
        "413",
    ),
    "size-checked-by-header-only": (
        "03.upload-limits",
        [
            (
                APP,
                '    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes',
                "    @app.before_request\n    def limit():\n"
                "        if (request.content_length or 0) > settings.max_upload_bytes:\n"
                '            raise Problem(413, "too-large", "too large")',
            ),
            (APP, "        if request.content_length is None and len(data) >= max_bytes:", "        if False:"),
        ],
        "chunked",
    ),
    "any-garbage-is-422": (
        "03.bad-images",
        [
            (
                APP,
                '                415,\n                "unsupported-media-type",\n                "the upload is not an image',
                '                422,\n                "unsupported-media-type",\n                "the upload is not an image',
            )
        ],
        "415",
    ),
    "no-pixel-limit": (
        "03.bad-images",
        [
            (
                APP,
                "        except (Image.DecompressionBombError, Image.DecompressionBombWarning):",
                "        except ZeroDivisionError:",
            ),
            (APP, "        if image.width * image.height > MAX_IMAGE_PIXELS:", "        if False:"),
            (
                APP,
                '        warnings.simplefilter("error", Image.DecompressionBombWarning)',
                '        warnings.simplefilter("ignore")',
            ),
        ],
        "bomb",
    ),
    "raw-path-as-label": (
        "03.metrics",
        [(APP, 'endpoint = request.url_rule.rule if request.url_rule else "unmatched"', "endpoint = request.path")],
        "label",
    ),
    "predictions-not-counted": (
        "03.metrics",
        [(APP, "        metrics.predictions.inc()\n", "")],
        "predictions_total",
    ),
    "global-registry": (
        "03.metrics",
        [
            (
                METRICS,
                "        self.registry = CollectorRegistry()",
                "        from prometheus_client import REGISTRY\n        self.registry = REGISTRY",
            )
        ],
        "failed",
    ),
    "plain-text-logs": (
        "03.json-logs",
        [(LOGS, "        return json.dumps(entry, default=str)", "        return str(entry)")],
        "not JSON",
    ),
    "client-id-trusted": (
        "03.json-logs",
        [(LOGS, "    if incoming and SAFE_REQUEST_ID.fullmatch(incoming):", "    if incoming:")],
        "unsafe",
    ),
    "handler-added-twice": (
        "03.json-logs",
        [
            (
                LOGS,
                '        if getattr(handler, "_resnet_service", False):\n            logger.removeHandler(handler)\n',
                "        pass\n",
            )
        ],
        "found 2",
    ),
    "openapi-misses-metrics": (
        "03.openapi-matches",
        [(OPENAPI, '        "/metrics": {', '        "/metricz": {')],
        "GET /metrics",
    ),
    "openapi-wrong-schema": (
        "03.openapi-matches",
        [(OPENAPI, '"inference_ms": {"type": "number", "minimum": 0},', '"inference_ms": {"type": "string"},')],
        "inference_ms",
    ),
    "openapi-misses-415": (
        "03.openapi-matches",
        [
            (
                OPENAPI,
                "**problem_responses(400, 413, 415, 422, 500, 503)",
                "**problem_responses(400, 413, 422, 500, 503)",
            )
        ],
        "415",
    ),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_catches_the_mistake(assert_variant_caught, variant):
    assert_variant_caught("03", variant, VARIANTS[variant])
