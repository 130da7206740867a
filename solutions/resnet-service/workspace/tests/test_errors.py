"""Every way a request can go wrong gets the right status and a problem document."""

from __future__ import annotations

import io

import pytest

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    """The response is an RFC 9457 problem document with ``status``; returns its body."""
    assert response.status_code == status, response.get_data(as_text=True)[:200]
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body


def test_no_image_is_a_400(client):
    assert_problem(client.post("/predict"), 400)


def test_multipart_without_the_file_field_is_a_400(client):
    assert_problem(client.post("/predict", data={"image": "x"}, content_type="multipart/form-data"), 400)


@pytest.mark.parametrize("top_k", ["0", "11", "-1", "two", "2.5"])
def test_invalid_top_k_is_a_400(client, make_image, top_k):
    assert_problem(client.post(f"/predict?top_k={top_k}", data=make_image(), content_type="image/png"), 400)


def test_unknown_path_is_a_404(client):
    assert_problem(client.get("/no/such/thing"), 404)


def test_wrong_method_is_a_405_with_allow(client):
    response = client.get("/predict")
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_a_body_over_the_limit_is_a_413(client, make_image):
    big = make_image(size=(400, 400), fmt="BMP")  # 480 kB > MAX_UPLOAD_BYTES=200000
    assert_problem(client.post("/predict", data=big, content_type="image/bmp"), 413)
    assert_problem(client.post("/predict", data={"file": (io.BytesIO(big), "big.bmp")}), 413)


def test_a_chunked_body_over_the_limit_is_a_413(client, make_image):
    big = make_image(size=(400, 400), fmt="BMP")
    response = client.post(
        "/predict",
        input_stream=io.BytesIO(big),
        content_type="image/bmp",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_problem(response, 413)


@pytest.mark.parametrize(
    "body, content_type",
    [(b"hello", "text/plain"), (b'{"a": 1}', "application/json"), (b"GIF? no, text", "image/png")],
)
def test_something_that_is_not_an_image_is_a_415(client, body, content_type):
    assert_problem(client.post("/predict", data=body, content_type=content_type), 415)


def test_a_truncated_image_is_a_422(client, make_image):
    jpeg = make_image(size=(300, 300), fmt="JPEG")
    assert_problem(client.post("/predict", data=jpeg[: len(jpeg) // 2], content_type="image/jpeg"), 422)


def test_a_decompression_bomb_is_a_422(client, make_image):
    bomb = make_image("1", size=(10000, 10000))  # 100 megapixels, a few kilobytes
    assert len(bomb) < 200000
    assert_problem(client.post("/predict", data=bomb, content_type="image/png"), 422)


def test_a_bug_is_a_500_without_internals(settings, make_image):
    from service.app import create_app
    from service.model import WeightsInfo

    class Broken:
        weights = WeightsInfo("random", "seed=0", is_random=True)

        def predict(self, image, top_k=5):
            raise RuntimeError("internal secret")

        def warm_up(self):
            pass

    app = create_app(settings, classifier=Broken())
    body = assert_problem(app.test_client().post("/predict", data=make_image(), content_type="image/png"), 500)
    assert "internal secret" not in str(body) and "Traceback" not in str(body)


def test_the_service_still_works_after_bad_requests(client, make_image):
    client.post("/predict", data=b"junk", content_type="image/png")
    assert client.post("/predict", data=make_image(), content_type="image/png").status_code == 200
    assert client.get("/health").status_code == 200

