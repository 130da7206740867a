"""Grading a built image for real: Docker engine, real images, testcontainers. No mocks.

Variants copy the reference workspace, so their dependency layer comes from the build cache.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from autograder import course
from autograder.checks.result import Verdict
from autograder.grading import grade_step

pytestmark = [pytest.mark.container, pytest.mark.slow]
APP = "service/app.py"


LIVE_CHECKS = ("05.image-builds", "05.container-ready", "05.predict-contract")


def _verdicts(report) -> dict[str, Verdict]:
    """The live checks' verdicts (the static Dockerfile checks have tests of their own)."""
    return {r.id: r.verdict for r in report.results if r.id in LIVE_CHECKS}


@pytest.fixture
def no_leftovers(docker_engine):
    yield
    assert docker_engine.labelled_containers() == [], "the autograder left containers behind"


def test_reference_image_builds_serves_and_answers_predict(
    base_image, reference_workspace, no_leftovers, docker_engine
):
    seen_ips = []
    original = docker_engine.run_service

    def spying_run_service(*args, **kwargs):
        with original(*args, **kwargs) as service:
            seen_ips.append(docker_engine.published_host_ips(service.container_id))
            yield service

    import contextlib

    docker_engine.run_service = contextlib.contextmanager(spying_run_service)
    try:
        report = grade_step("05", reference_workspace)
    finally:
        docker_engine.run_service = original
    assert all(r.verdict is Verdict.PASSED for r in report.results), [(r.id, r.message) for r in report.results]
    figures = {name for r in report.results for name, _ in r.figures}
    assert {"build_seconds", "image_size", "startup_seconds", "inference_ms"} <= figures
    assert seen_ips == [{"127.0.0.1"}], "ports must be published on loopback only"


def test_a_dockerfile_that_never_builds_fails_with_the_log_tail(base_image, make_workspace, no_leftovers):
    workspace = make_workspace(("Dockerfile", "COPY service/ service/", "COPY service/ service/\nRUN exit 7"))
    report = grade_step("05", workspace)
    results = {r.id: r for r in report.results}
    assert results["05.image-builds"].verdict is Verdict.FAILED
    assert "returned a non-zero code: 7" in results["05.image-builds"].message
    assert "RUN exit 7" in results["05.image-builds"].message  # the log tail names the step
    assert results["05.container-ready"].verdict is Verdict.FAILED
    assert results["05.predict-contract"].verdict is Verdict.FAILED


def test_an_app_that_crashes_at_start_fails_readiness_fast(base_image, make_workspace, no_leftovers):
    workspace = make_workspace(
        (APP, "    app = Flask(__name__)", "    raise RuntimeError('crash on start')\n    app = Flask(__name__)")
    )
    started = time.monotonic()
    results = {r.id: r for r in grade_step("05", workspace).results}
    assert results["05.image-builds"].verdict is Verdict.PASSED
    ready = results["05.container-ready"]
    assert ready.verdict is Verdict.FAILED and "exited with status" in ready.message
    assert "crash on start" in ready.message  # the container's log tail is in the message
    assert time.monotonic() - started < 120, "an exited container must not wait for the start-up timeout"


def test_a_wrong_predict_shape_fails_only_the_contract(base_image, make_workspace, no_leftovers):
    workspace = make_workspace(
        (
            APP,
            '"predictions": [p.to_dict() for p in predictions]',
            '"predictions": {"top": [p.to_dict() for p in predictions]}',
        )
    )
    verdicts = _verdicts(grade_step("05", workspace))
    assert verdicts == {
        "05.image-builds": Verdict.PASSED,
        "05.container-ready": Verdict.PASSED,
        "05.predict-contract": Verdict.FAILED,
    }


def test_ctrl_c_midway_leaves_no_container(base_image, reference_workspace, docker_engine):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "autograder", "check", "05", "--workspace", str(reference_workspace)],
        cwd=course.REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not docker_engine.labelled_containers():
            assert process.poll() is None, "the run ended before its container started"
            assert time.monotonic() < deadline, "no container appeared"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert "interrupted" in output
    assert docker_engine.labelled_containers() == []


def test_leftovers_of_a_killed_run_are_removed_by_the_next(base_image, docker_engine):
    status, _ = docker_engine.run_once(base_image, ["true"])
    assert status == 0
    engine = docker_engine.client()
    stray = engine.containers.create(base_image, command=["sleep", "600"], labels={docker_engine.LABEL: "1"})
    stray.start()
    assert stray.short_id in docker_engine.labelled_containers()
    live_owner = engine.containers.create(
        base_image,
        command=["sleep", "600"],
        labels={docker_engine.LABEL: "1", docker_engine.OWNER_LABEL: str(os.getpid())},
    )
    try:
        removed = docker_engine.remove_leftover_containers()
        assert stray.short_id in removed
        assert live_owner.short_id not in removed, "a container of a running grading is not a leftover"
    finally:
        live_owner.remove(force=True)
    assert docker_engine.labelled_containers() == []


def test_prune_keeps_a_bounded_number_of_images(base_image, docker_engine):
    engine = docker_engine.client()
    before = {image.id for image in engine.images.list(filters={"label": docker_engine.LABEL})}
    docker_engine.prune_images(keep=3)
    after = [
        i
        for i in engine.images.list(filters={"label": docker_engine.LABEL})
        if any(tag.startswith(docker_engine.GRADED_REPOSITORY) for tag in i.tags)
    ]
    # Graded builds inherit the stand-in base image's labels: they are pruned all the same.
    assert len(after) <= 3
    assert len(engine.images.list(filters={"label": docker_engine.LABEL, "dangling": True})) <= 3
    assert docker_engine.image_exists(base_image), "the base image is never pruned"
    assert {i.id for i in after} <= before
