"""POST /predict: what a client may rely on."""

from __future__ import annotations

import io

import pytest

from service.model import CATEGORIES


def test_a_png_upload_answers_the_top_k_default(client, make_image):
    response = client.post("/predict", data={"file": (io.BytesIO(make_image()), "photo.png")})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert len(response.get_json()["predictions"]) == 3  # TOP_K_DEFAULT in conftest.py


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16"])
def test_every_image_mode_is_classified(client, make_image, mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    response = client.post("/predict", data=make_image(mode, fmt=fmt), content_type=f"image/{fmt.lower()}")
    assert response.status_code == 200, response.get_json()


def test_a_raw_jpeg_body_is_accepted(client, make_image):
    response = client.post("/predict", data=make_image(fmt="JPEG"), content_type="image/jpeg")
    assert response.status_code == 200


def test_octet_stream_is_accepted(client, make_image):
    response = client.post("/predict", data=make_image(), content_type="application/octet-stream")
    assert response.status_code == 200


@pytest.mark.parametrize("top_k", [1, 5, 10])
def test_top_k_sets_the_number_of_predictions(client, make_image, top_k):
    response = client.post(f"/predict?top_k={top_k}", data=make_image(), content_type="image/png")
    assert response.status_code == 200
    body = response.get_json()
    assert len(body["predictions"]) == top_k
    assert body["top_k"] == top_k


def test_predictions_are_sorted_labelled_probabilities(client, make_image):
    body = client.post("/predict?top_k=10", data=make_image(), content_type="image/png").get_json()
    probabilities = [p["probability"] for p in body["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert sum(probabilities) <= 1.0 + 1e-6
    for prediction in body["predictions"]:
        assert set(prediction) == {"class_id", "label", "probability"}
        assert prediction["label"] == CATEGORIES[prediction["class_id"]]


def test_the_answer_says_which_model_and_weights(client, make_image):
    body = client.post("/predict", data=make_image(), content_type="image/png").get_json()
    assert body["model"] == "resnet50"
    assert body["weights_source"] == "random" and body["random_weights"] is True
    assert body["inference_ms"] >= 0


def test_predictions_are_deterministic(client, make_image):
    first, second = (
        client.post("/predict", data=make_image(), content_type="image/png").get_json()["predictions"] for _ in range(2)
    )
    assert first == second

