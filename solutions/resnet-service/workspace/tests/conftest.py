"""Fixtures shared by every test: settings, a classifier, the app, its client, and test images."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image

from service.app import create_app
from service.config import Settings
from service.model import load_classifier

# Small limits make the edge cases cheap to reach.
TEST_ENV = {"TOP_K_DEFAULT": "3", "TOP_K_MAX": "10", "MAX_UPLOAD_BYTES": "200000"}


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env(TEST_ENV)


@pytest.fixture(scope="session")
def classifier():
    """The real model on seeded random weights: loaded once for the whole session (about a second)."""
    return load_classifier(allow_random=True, seed=0, num_threads=2)


@pytest.fixture
def app(settings, classifier):
    """A fresh app per test (fresh metrics too), ready at once because it is handed the classifier."""
    return create_app(settings, classifier=classifier)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_image():
    """make_image(mode="RGB", size=(64, 48), fmt="PNG") -> the encoded bytes of a new image."""

    def make(mode: str = "RGB", size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> bytes:
        buffer = io.BytesIO()
        Image.new(mode, size, color=None if mode == "1" else 100).save(buffer, fmt)
        return buffer.getvalue()

    return make


@pytest.fixture
def slow_app(settings, classifier):
    """An app whose loader waits until the test calls ``slow_app.release()``: readiness, observed."""
    released = threading.Event()

    def loader(_settings):
        released.wait(30)
        return classifier

    app = create_app(settings, loader=loader)
    app.release = released.set
    yield app
    # Never leave the loader thread behind: it would still be running PyTorch while Python exits.
    released.set()
    app.extensions["resnet_service"].state.wait(30)
