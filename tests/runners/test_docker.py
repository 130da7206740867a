"""Grading a built image for real: Docker engine, real images, testcontainers. No mocks.

Variants copy the reference workspace, so their dependency layer comes from the build cache.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from autograder import course
from autograder.checks.result import Verdict
from autograder.grading import grade_step
from autograder.notebook import image_layers

# These tests run one after the other on one worker (--dist loadscope), beside other modules'
# gradings (notebook 05's among them): pins keep the image cache's pruning off what they use.
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
    assert docker_engine.labelled_containers(owner_pid=os.getpid()) == [], "the autograder left containers behind"


def test_reference_image_builds_serves_and_answers_predict(
    base_image, reference_workspace, no_leftovers, docker_engine
):
    seen_ips, seen_networks, seen_egress, seen_logs = [], [], [], []
    original = docker_engine.run_service

    def spying_run_service(*args, **kwargs):
        with original(*args, **kwargs) as service:
            seen_ips.append(docker_engine.published_host_ips(service.relay_id))
            seen_ips.append(docker_engine.published_host_ips(service.container_id))
            seen_networks.append(_networks_of(docker_engine, service.container_id))
            seen_egress.append(_egress(docker_engine, service.container_id))
            config = docker_engine.client().api.inspect_container(service.container_id)["HostConfig"]["LogConfig"]
            seen_logs.append(config["Config"].get("max-size"))
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
    assert seen_ips == [{"127.0.0.1"}, set()], "only the relay publishes a port, on loopback only"
    assert seen_networks == [[True]], "the graded container's only network is an internal one"
    assert "connected" not in seen_egress[0] and seen_egress[0].strip(), "a graded container has no way out"
    assert seen_logs == ["10m"], "a graded container's logs are capped"
    tag = next(r for r in report.results if r.id == "05.image-builds").message.removeprefix("built ")
    assert re.fullmatch(r"resnet-course/graded:[0-9a-f]{16}", tag), "graded images get tags nobody can predict"
    # What notebook 05 shows of the image just built: its size and where the gigabytes are.
    layers = image_layers(reference_workspace)
    assert " GB in " in layers and "/opt/venv" in layers


def _networks_of(docker_engine, container_id: str) -> list[bool]:
    """Whether each network the container is on is internal (no gateway, no way out)."""
    engine = docker_engine.client()
    attached = engine.api.inspect_container(container_id)["NetworkSettings"]["Networks"]
    return [engine.api.inspect_network(name)["Internal"] for name in attached]


def _egress(docker_engine, container_id: str) -> str:
    """Try to open a connection out of the container, to TEST-NET-1 (RFC 5737: routed nowhere,
    so nothing leaves even where a route exists)."""
    code = (
        "import socket\ns = socket.socket()\ns.settimeout(3)\n"
        "try:\n    s.connect(('192.0.2.1', 9))\n    print('connected')\n"
        "except OSError as error:\n    print(error)"
    )
    container = docker_engine.client().containers.get(container_id)
    return container.exec_run(["python", "-c", code]).output.decode(errors="replace")


@pytest.mark.parametrize(("budget_gb", "verdict_word"), [(100.0, "within the budget"), (0.1, "over the 0.1 GB budget")])
def test_the_size_budget_is_reported_and_never_graded(
    budget_gb, verdict_word, base_image, reference_workspace, docker_engine, monkeypatch
):
    monkeypatch.setenv("COURSE_IMAGE_BUDGET_GB", str(budget_gb))

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
    monkeypatch.setenv("COURSE_STARTUP_TIMEOUT", "25")
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
    # The service container: the build's wheelhouse server carries the owner label too.
    owned = {"label": [f"{docker_engine.OWNER_LABEL}={process.pid}", docker_engine.RUN_LABEL]}
    deadline = time.monotonic() + 300
    try:
        # The low-level listing: the high-level one inspects each container, and the engine may
        # answer 404 for one it has just listed (being created, or removed meanwhile).
        while not engine.api.containers(all=True, filters=owned):
            assert process.poll() is None, "the run ended before its container started"
            assert time.monotonic() < deadline, "no container appeared"
            time.sleep(0.2)
    except BaseException:
        process.kill()
        process.wait()  # reaped: a zombie would still count as a live owner for the sweep
        raise
    return process


def test_a_service_that_ignores_the_weights_file_fails_the_contract(base_image, make_workspace, no_leftovers):
    """The container gets the grader's weights file through MODEL_WEIGHTS_PATH; a service that
    loads anything else (here: random weights, whatever it is told) answers other numbers."""
    workspace = make_workspace(
        (
            APP,
            "    app = Flask(__name__)",
            "    settings = replace(settings, weights_path=None, allow_random_weights=True)\n    app = Flask(__name__)",
        ),
        (
            APP,
            "from __future__ import annotations\n",
            "from __future__ import annotations\n\nfrom dataclasses import replace\n",
        ),
        name="ignores-weights-file",
    )
    report = grade_step("05", workspace)
    assert _failed(report) == {"predict-contract", "predicts-png-and-grayscale"}, [
        (r.id, r.message) for r in report.results
    ]
    contract = next(r for r in report.results if r.id == "05.predict-contract")
    assert "load the file it names" in contract.message


# Answers every /predict with the same well-formed body: what a learner could ship to look done.
CANNED_SERVER = """
from flask import Flask, jsonify

def create_app():
    app = Flask(__name__)
    body = {"predictions": [{"class_id": 281, "label": "tabby", "probability": 0.6},
                            {"class_id": 282, "label": "tiger cat", "probability": 0.3},
                            {"class_id": 285, "label": "Egyptian cat", "probability": 0.1}],
            "model": "resnet50", "weights_source": "file", "random_weights": False, "top_k": 3, "inference_ms": 5.0}

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/ready")
    def ready():
        return {"status": "ready"}

    @app.post("/predict")
    def predict():
        return jsonify(body)

    return app
"""


def test_a_stub_server_with_canned_answers_fails(base_image, make_workspace, no_leftovers):
    workspace = make_workspace(name="canned-answers")
    (workspace / APP).write_text(CANNED_SERVER)
    results = {r.id: r for r in grade_step("05", workspace).results}
    assert results["05.container-ready"].passed
    assert results["05.predict-contract"].verdict is Verdict.FAILED
    assert "not the model's" in results["05.predict-contract"].message


@pytest.mark.parametrize(
    ("edit", "refused"),
    [
        (
            ("FROM python:3.11-slim AS build", "FROM resnet-course/graded:anything AS build"),
            "FROM resnet-course/graded",
        ),
        (
            ("COPY --from=build /opt/venv /opt/venv", "COPY --from=busybox:1 /opt/venv /opt/venv"),
            "COPY --from=busybox:1",
        ),
    ],
    ids=["from-another-image", "copy-from-another-image"],
)
def test_builds_start_only_from_the_course_base_image(edit, refused, base_image, make_workspace, no_leftovers):
    workspace = make_workspace((DOCKERFILE, *edit), name="foreign-image")
    [result] = grade_step("05", workspace, only=["image-builds"]).results
    assert result.verdict is Verdict.FAILED
    assert "the image was not built" in result.message and refused in result.message


def test_a_build_reaches_the_wheelhouse_and_nothing_else(base_image, make_workspace, no_leftovers):
    """A RUN step that calls a service on the grader's loopback: with --network host it got in."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    probe = f"RUN python -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)\""
    workspace = make_workspace((DOCKERFILE, "WORKDIR /build\n", f"WORKDIR /build\n{probe}\n"), name="host-probe")
    try:
        [result] = grade_step("05", workspace, only=["image-builds"]).results
        with pytest.raises(OSError):
            listener.accept()  # nobody came
    finally:
        listener.close()
    assert result.verdict is Verdict.FAILED and "Connection refused" in result.message


def test_a_build_that_runs_too_long_is_stopped_and_leaves_nothing(
    base_image, make_workspace, no_leftovers, docker_engine, monkeypatch
):
    monkeypatch.setenv("COURSE_BUILD_TIMEOUT", "20")
    workspace = make_workspace((DOCKERFILE, "WORKDIR /build\n", "WORKDIR /build\nRUN sleep 600\n"), name="slow-build")
    started = time.monotonic()
    [result] = grade_step("05", workspace, only=["image-builds"]).results
    assert result.verdict is Verdict.FAILED and "did not finish in 20 s" in result.message
    assert time.monotonic() - started < 120
    deadline = time.monotonic() + 60  # the engine removes the build's container once it notices
    while (
        docker_engine.client().containers.list(all=True, filters={"ancestor": base_image})
        and time.monotonic() < deadline
    ):
        time.sleep(1)
    assert docker_engine.client().containers.list(all=True, filters={"ancestor": base_image}) == []


def test_a_build_step_is_held_to_its_memory_limit(base_image, make_workspace, no_leftovers, monkeypatch):
    monkeypatch.setenv("COURSE_BUILD_MEMORY", "256m")
    hog = "RUN python -c \"block = bytearray(1024**3); print('allocated')\""
    workspace = make_workspace((DOCKERFILE, "WORKDIR /build\n", f"WORKDIR /build\n{hog}\n"), name="memory-hog")
    [result] = grade_step("05", workspace, only=["image-builds"]).results
    assert result.verdict is Verdict.FAILED and "returned a non-zero code: 137" in result.message


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
    # Its own containers: a killed build elsewhere may leave intermediate ones the engine removes.
    assert docker_engine.labelled_containers(owner_pid=process.pid) == []


def test_a_run_killed_midway_leaves_a_container_that_the_next_run_removes(
    base_image, reference_workspace, docker_engine, tmp_path, monkeypatch
):
    """SIGKILL allows no clean-up at all: the container stays, the step is recorded as not
    graded, and the next grading sweeps the container and grades as an undisturbed run does."""
    from autograder import progress
    from autograder.settings import current

    # A cache of its own (the history it records), sharing the machine's wheelhouse.
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "wheelhouse").symlink_to(current().cache_dir / "wheelhouse")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    process = _grading_with_a_running_container(
        reference_workspace,
        docker_engine,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "COURSE_CACHE_DIR": str(tmp_path / "cache")},
    )
    process.kill()
    process.wait(timeout=60)
    assert docker_engine.labelled_containers(owner_pid=process.pid), "a killed run cannot clean up"
    status = {s.step.id: s for s in progress.progress(reference_workspace)}["05"]
    assert status.state == "not graded"
    report = grade_step("05", reference_workspace)  # the next run
    assert report.all_passed, [r.message for r in report.results]
    assert docker_engine.labelled_containers(owner_pid=process.pid) == []


def test_leftovers_of_a_killed_run_are_removed_by_the_next(base_image, docker_engine):
    status, _ = docker_engine.run_once(base_image, ["true"])
    assert status == 0
    engine = docker_engine.client()
    dead_owner = {docker_engine.LABEL: "1", docker_engine.OWNER_LABEL: "999999999"}  # a PID that is not running
    stray = engine.containers.create(base_image, command=["sleep", "600"], labels=dead_owner)
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
