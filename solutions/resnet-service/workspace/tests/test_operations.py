"""What operators rely on: liveness, readiness, metrics, request ids, the OpenAPI document."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families


def metric(client, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` with these labels, read from /metrics."""
    text = client.get("/metrics").get_data(as_text=True)
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_health_answers_ok(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_ready_waits_for_the_model(slow_app, make_image):
    client = slow_app.test_client()
    assert client.get("/health").status_code == 200  # alive while loading
    assert client.get("/ready").status_code == 503
    assert client.get("/ready").mimetype == "application/problem+json"
    assert client.post("/predict", data=make_image(), content_type="image/png").status_code == 503
    slow_app.release()
    assert slow_app.extensions["resnet_service"].state.wait(30)
    assert client.get("/ready").status_code == 200
    assert client.post("/predict", data=make_image(), content_type="image/png").status_code == 200


def test_root_describes_the_service(client):
    body = client.get("/").get_json()
    assert body["model"] == "resnet50" and body["ready"] is True and body["version"]


def test_requests_and_predictions_are_counted(client, make_image):
    for _ in range(2):
        client.post("/predict", data=make_image(), content_type="image/png")
    assert metric(client, "http_requests_total", endpoint="/predict", method="POST", status="200") == 2
    assert metric(client, "predictions_total") == 2
    assert metric(client, "http_request_duration_seconds_count", endpoint="/predict") == 2


def test_errors_are_counted_by_type(client):
    client.post("/predict", data=b"text", content_type="text/plain")
    assert metric(client, "errors_total") == 1


def test_model_info_says_what_is_served(client):
    assert metric(client, "model_info", model="resnet50", weights_source="random", random_weights="true") == 1


def test_unknown_paths_do_not_become_labels(client):
    client.get("/a/random/path/123")
    assert "/a/random/path/123" not in client.get("/metrics").get_data(as_text=True)


def test_metrics_content_type(client):
    assert client.get("/metrics").mimetype == "text/plain"


@pytest.mark.parametrize("path", ["/", "/health", "/nowhere"])
def test_every_response_has_a_request_id(client, path):
    assert client.get(path).headers.get("X-Request-ID")


def test_a_safe_request_id_is_kept_and_an_unsafe_one_replaced(client):
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    assert client.get("/health", headers={"X-Request-ID": "<bad> id"}).headers["X-Request-ID"] != "<bad> id"


def test_the_openapi_document_lists_every_route(app, client):
    paths = client.get("/openapi.json").get_json()["paths"]
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert method.lower() in paths[rule.rule], f"{method} {rule.rule} is not documented"

