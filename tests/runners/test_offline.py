"""The offline stand-in for python:3.11-slim behaves like the official image for the usual
Dockerfile patterns, installing from the wheelhouse that graded builds reach on their own loopback
(and nothing else). Real builds, no mocks."""

from __future__ import annotations

import textwrap
import urllib.request

import pytest

from autograder.errors import AutograderError
from autograder.runners import offline

pytestmark = pytest.mark.container

# Small pure-Python packages the reference requirements already put in the wheelhouse.
PATTERNS = {
    "plain-pip-install": """
        FROM python:3.11-slim
        RUN pip install blinker
        CMD ["python", "-c", "import blinker, sys; print(sys.executable, blinker.__file__)"]
    """,
    "venv-copied-between-stages": """
        FROM python:3.11-slim AS builder
        RUN python -m venv /opt/venv && /opt/venv/bin/pip install blinker
        FROM python:3.11-slim
        COPY --from=builder /opt/venv /opt/venv
        ENV PATH=/opt/venv/bin:$PATH
        CMD ["python", "-c", "import blinker, sys; print(sys.executable, blinker.__file__)"]
    """,
    "prefix-install-copied-to-usr-local": """
        FROM python:3.11-slim AS builder
        RUN pip install --prefix=/install flask
        FROM python:3.11-slim
        COPY --from=builder /install /usr/local
        CMD ["sh", "-c", "flask --version && python -c 'import flask; print(flask.__file__)'"]
    """,
    "user-install-as-non-root": """
        FROM python:3.11-slim
        RUN useradd --create-home --uid 10001 app
        USER app
        RUN pip install --user blinker
        CMD ["python", "-c", "import blinker; print(blinker.__file__)"]
    """,
    "official-layout-paths": """
        FROM python:3.11-slim
        CMD ["sh", "-c", "test -x /usr/local/bin/python && python -c 'import sys; assert sys.version_info[:2] == (3, 11); print(sys.prefix)' && pip --version"]
    """,
}


@pytest.fixture(scope="module")
def stand_in(base_image, docker_engine):
    if not offline.is_stand_in(base_image):
        pytest.skip("python:3.11-slim here is the official image, not the stand-in")
    if not offline.wheelhouse_dir().is_dir():
        pytest.fail("no wheelhouse: run python -m autograder offline setup")
    return base_image


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_dockerfile_pattern_works_on_the_stand_in(stand_in, docker_engine, tmp_path, pattern):
    (tmp_path / "Dockerfile").write_text(textwrap.dedent(PATTERNS[pattern]).strip() + "\n")
    tag = f"resnet-course/pattern-test:{pattern}"
    try:
        with offline.build_network() as network_mode:
            build = docker_engine.build_image(tmp_path, tag, network_mode=network_mode)
        status, output = docker_engine.run_once(build.tag)
        assert status == 0, output
    finally:
        docker_engine.remove_image(tag)
    if pattern == "prefix-install-copied-to-usr-local":
        assert "/usr/local/lib/python3.11/site-packages/flask" in output
    if pattern == "user-install-as-non-root":
        assert "/home/app/.local/lib/python3.11/site-packages/blinker" in output


def test_wheelhouse_is_served_on_loopback_only_while_in_use(tmp_path):
    (tmp_path / "example-1.0-py3-none-any.whl").write_bytes(b"")
    with offline.serve_wheelhouse(tmp_path, port=38765) as url:
        assert url == "http://127.0.0.1:38765/"
        listing = urllib.request.urlopen(url, timeout=5).read().decode()
        assert "example-1.0-py3-none-any.whl" in listing
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_serving_a_missing_wheelhouse_says_how_to_make_one(tmp_path):
    with pytest.raises(AutograderError, match="offline wheelhouse"):
        with offline.serve_wheelhouse(tmp_path / "absent"):
            pass


def test_apt_mirror_comes_from_the_machine_not_from_the_code():
    assert offline.apt_mirror().startswith(("http://", "https://", "file:/"))


def test_the_prometheus_image_behaves_like_the_official_one(prometheus_image, docker_engine):
    """What learners' compose files and the grader rely on: the binaries where the official image
    has them, busybox's wget for healthchecks, user nobody, the default flags and config."""
    attributes = docker_engine.client().images.get(prometheus_image).attrs["Config"]
    assert attributes["User"].split(":")[0] in ("65534", "nobody")
    assert attributes["Entrypoint"][0] in ("/bin/prometheus", "/usr/bin/prometheus")
    assert "--config.file=/etc/prometheus/prometheus.yml" in attributes["Cmd"]
    status, output = docker_engine.run_tool(
        prometheus_image,
        [
            "-c",
            "promtool --version && wget --help 2>&1 | head -1 && promtool check config /etc/prometheus/prometheus.yml",
        ],
        entrypoint="/bin/sh",
    )
    assert status == 0, output
    assert "version 2.42.0" in output and "BusyBox" in output and "SUCCESS" in output
