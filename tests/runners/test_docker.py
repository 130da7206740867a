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
from autograder.notebook import image_layers

pytestmark = [pytest.mark.container, pytest.mark.slow]
APP = "service/app.py"
GUNICORN = "gunicorn.conf.py"
DOCKERFILE = "Dockerfile"

# In the order they run: every check after container-ready needs the running container.
AFTER_READY = (
    "predict-contract",
    "runs-as-non-root",
    "predicts-png-and-grayscale",
    "metrics-rise",
    "bad-requests-answered",
    "graceful-shutdown",
)
LIVE_CHECKS = tuple(f"05.{name}" for name in ("image-builds", "container-ready", *AFTER_READY))


def _verdicts(report) -> dict[str, Verdict]:
    """The live checks' verdicts (the static Dockerfile checks have tests of their own)."""
    return {r.id: r.verdict for r in report.results if r.id in LIVE_CHECKS}


def _failed(report) -> set[str]:
    return {r.id.split(".", 1)[1] for r in report.results if r.verdict is not Verdict.PASSED}


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
    assert {"build_seconds", "image_size", "layers", "budget", "startup_seconds", "limits", "stop_seconds"} <= figures
    assert seen_ips == [{"127.0.0.1"}], "ports must be published on loopback only"
    # What notebook 05 shows of the image just built: its size and where the gigabytes are.
    layers = image_layers(reference_workspace)
    assert " GB in " in layers and "/opt/venv" in layers


@pytest.mark.parametrize(("budget_gb", "verdict_word"), [(100.0, "within the budget"), (0.1, "over the 0.1 GB budget")])
def test_the_size_budget_is_reported_and_never_graded(
    budget_gb, verdict_word, base_image, reference_workspace, docker_engine, monkeypatch
):
    monkeypatch.setattr("autograder.checks.step05_image.IMAGE_BUDGET_GB", budget_gb)

    def no_container(*args, **kwargs):
        raise AssertionError("grading the build alone must not start a container")

    monkeypatch.setattr(docker_engine, "run_service", no_container)
    [result] = grade_step("05", reference_workspace, only=["image-builds"]).results
    assert result.verdict is Verdict.PASSED
    assert verdict_word in dict(result.figures)["budget"]


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
    assert _failed(grade_step("05", workspace)) == {"predict-contract", "predicts-png-and-grayscale"}


# Fixtures that must fail, each for its own reason: (edits, the checks that fail, what the
# learner is told). Every other check of step 05 must pass on them.
FAILING_IMAGES = {
    "root-user": (
        [(DOCKERFILE, "USER 10001\n", "")],
        {"multi-stage-non-root", "runs-as-non-root"},
        "runs as root (USER unset)",
    ),
    "no-healthcheck": (
        [
            (DOCKERFILE, "HEALTHCHECK --interval", "# HEALTHCHECK --interval"),
            (DOCKERFILE, '    CMD ["python"', '#    CMD ["python"'),
        ],
        {"healthcheck"},
        "no HEALTHCHECK in the final stage",
    ),
    "wrong-port": (
        [(GUNICORN, 'bind = f"0.0.0.0:{settings.port}"', 'bind = "0.0.0.0:8000"')],
        {"container-ready", *AFTER_READY},
        "listens on 0.0.0.0:8000, not on port 5000",
    ),
    "loopback-only": (
        [(GUNICORN, 'bind = f"0.0.0.0:{settings.port}"', 'bind = f"127.0.0.1:{settings.port}"')],
        {"container-ready", *AFTER_READY},
        "listens on 127.0.0.1:5000, the container's own loopback",
    ),
    "never-ready": (
        [(APP, "            self.set(classifier)  #", "            pass  #")],
        {"container-ready", *AFTER_READY},
        "/health answers 200, so the server is up, but /ready still says 503",
    ),
    "writes-to-its-root-filesystem": (
        [(APP, "    app = Flask(__name__)", "    open('/app/started', 'w').close()\n    app = Flask(__name__)")],
        {"container-ready", *AFTER_READY},
        "it tried to write to its read-only root filesystem",
    ),
    "alpha-and-gray-not-converted": (
        [("service/imaging.py", '    return image.convert("RGB")', "    return image")],
        {"predicts-png-and-grayscale"},
        "POST /predict with an RGBA PNG: answered 500",
    ),
    "metrics-elsewhere": (
        [(APP, '@app.get("/metrics")', '@app.get("/prometheus")')],
        {"metrics-rise"},
        "/metrics answered 404",
    ),
    "errors-as-plain-json": (
        [("service/problems.py", "mimetype=PROBLEM_MEDIA_TYPE", 'mimetype="application/json"')],
        {"bad-requests-answered"},
        "answered 400 application/json, expected a 4xx application/problem+json",
    ),
    "shell-form-cmd": (
        [
            (
                DOCKERFILE,
                'CMD ["gunicorn", "--config", "gunicorn.conf.py", "service.app:create_app()"]',
                'CMD ["sh", "-c", "gunicorn --config gunicorn.conf.py \'service.app:create_app()\' && echo stopped"]',
            )
        ],
        {"graceful-shutdown"},
        "SIGTERM did not stop it: killed after the 10 s grace period",
    ),
}


@pytest.mark.parametrize("fixture", FAILING_IMAGES)
def test_a_faulty_image_fails_exactly_where_expected(fixture, base_image, make_workspace, no_leftovers, monkeypatch):
    edits, expected_failures, told = FAILING_IMAGES[fixture]
    # A service that never gets ready must not cost the whole start-up allowance here.
    monkeypatch.setattr("autograder.runners.docker.STARTUP_TIMEOUT_SECONDS", 40)
    report = grade_step("05", make_workspace(*edits, name=fixture))
    assert _failed(report) == expected_failures, [(r.id, r.message) for r in report.results]
    messages = "\n".join(r.message for r in report.results)
    assert told in messages


def _grading_with_a_running_container(workspace, docker_engine, **popen) -> subprocess.Popen:
    """`check 05` in a subprocess, returned once its service container exists (the run is midway).

    Its own container is the one labelled with its PID: a rebuild's short-lived intermediate
    containers carry the autograder's label too, and vanish when the build is cancelled."""
    process = subprocess.Popen(
        [sys.executable, "-m", "autograder", "check", "05", "--workspace", str(workspace)],
        cwd=course.REPO_ROOT,
        **popen,
    )
    engine = docker_engine.client()
    owned = {"label": f"{docker_engine.OWNER_LABEL}={process.pid}"}
    deadline = time.monotonic() + 300
    try:
        while not engine.containers.list(all=True, filters=owned):
            assert process.poll() is None, "the run ended before its container started"
            assert time.monotonic() < deadline, "no container appeared"
            time.sleep(0.2)
    except BaseException:
        process.kill()
        raise
    return process


def test_baked_in_weights_are_used_and_must_be_what_they_claim(base_image, make_workspace, no_leftovers):
    """A weights file in weights/ goes into the image and the service loads it; weights that are
    not trained (here: a random initialisation) cannot pass for trained ones."""
    import torch
    from torchvision.models import resnet50

    workspace = make_workspace(name="baked-in-weights")
    torch.manual_seed(1)
    torch.save(resnet50(weights=None).state_dict(), workspace / "weights" / "resnet50-11ad3fa6.pth")
    report = grade_step("05", workspace)
    assert _failed(report) == {"predict-contract"}, [(r.id, r.message) for r in report.results]
    contract = next(r for r in report.results if r.id == "05.predict-contract")
    assert "weights_source 'torchvision-cache'" in contract.message


def test_ctrl_c_midway_leaves_no_container(base_image, reference_workspace, docker_engine):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = _grading_with_a_running_container(
        reference_workspace, docker_engine, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert "interrupted" in output
    assert docker_engine.labelled_containers() == []


def test_a_run_killed_midway_leaves_a_container_that_the_next_run_removes(
    base_image, reference_workspace, docker_engine
):
    """SIGKILL allows no clean-up at all: the container stays, and the next grading sweeps it."""
    process = _grading_with_a_running_container(
        reference_workspace, docker_engine, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    process.kill()
    process.wait(timeout=60)
    assert docker_engine.labelled_containers(), "a killed run cannot clean up: its container is left"
    report = grade_step("05", reference_workspace, only=["container-ready"])  # the next run
    assert report.all_passed, [r.message for r in report.results]
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
