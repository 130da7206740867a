"""Step 06's stack for real: the learner's compose file rewritten by the grader, started with the
Compose CLI on the Docker engine, scraped by the course's Prometheus image. No mocks.

Each faulty stack runs only the check it breaks (and stack-healthy, to show the rest of the
stack is fine): a full live run takes a minute, and CI has two cores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder.checks.result import Verdict
from autograder.grading import grade_step
from autograder.runners import docker as docker_runner

pytestmark = [pytest.mark.container, pytest.mark.slow]
COMPOSE, PROMETHEUS, ALERTS = "docker-compose.yml", "monitoring/prometheus.yml", "monitoring/alerts.yml"
SERVICE_ENV = "service.env"
LIVE = ("stack-healthy", "target-up", "metrics-exported", "requests-counted", "instance-down-alert")
API_HEALTHCHECK = """      interval: 10s
      timeout: 3s
      start_period: 60s
      retries: 3
    deploy:
      resources:
        limits:
          cpus: "2\""""


def _ours(docker_engine, kind: str) -> list[str]:
    """This process's labelled containers, networks or volumes still on the engine."""
    engine = docker_engine.client()
    label = {"label": f"{docker_engine.OWNER_LABEL}={os.getpid()}"}
    listing = {
        "containers": lambda: [row["Id"] for row in engine.api.containers(all=True, filters=label)],
        "networks": lambda: engine.networks.list(filters=label),
        "volumes": lambda: engine.volumes.list(filters=label),
    }
    return [item if isinstance(item, str) else (getattr(item, "name", "") or item.id) for item in listing[kind]()]


@pytest.fixture
def nothing_left(docker_engine):
    yield
    for kind in ("containers", "networks", "volumes"):
        assert _ours(docker_engine, kind) == [], f"the grader left {kind} behind"


def test_the_reference_stack_passes_every_check_and_leaves_nothing(stack_reports):
    results, left = stack_reports[REFERENCE]
    assert left == [], "the grading left containers behind"
    failed = {name: r.message for name, r in results.items() if r.verdict is not Verdict.PASSED}
    assert failed == {}
    figures = {key: value for r in results.values() for key, value in r.figures}
    assert float(figures["stack_startup_seconds"]) > 0
    assert figures["scrape_interval"] == "5 s"  # what monitoring/prometheus.yml sets
    assert figures["measured_interval"].endswith(" s")  # two of Prometheus' scrapes seen
    assert float(figures["alert_latency_seconds"]) < 30
    assert figures["workers"] == "2"
    assert "grafana" in results["stack-healthy"].message  # started, or said why not


# name: (edits, the check that must fail, words its message holds)
FAILING_STACKS = {
    "wrong-scrape-port": ([(PROMETHEUS, '["api:5000"]', '["api:5001"]')], "target-up", "api:5001"),
    "wrong-metrics-path": ([(PROMETHEUS, "metrics_path: /metrics", "metrics_path: /prometheus")], "target-up", "404"),
    "rule-on-a-metric-not-exported": (
        [(ALERTS, "max by (instance) (model_info{", "max by (instance) (model_loaded{")],
        "metrics-exported",
        "model_loaded",
    ),
    "instance-down-rule-on-another-job": (
        [(ALERTS, 'expr: up{job="resnet-service"} == 0', 'expr: up{job="resnet-servic"} == 0')],
        "instance-down-alert",
        "went pending",
    ),
    "per-worker-metrics": (
        [(SERVICE_ENV, "PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-metrics\n", "")],
        "requests-counted",
        "one worker",
    ),
    "never-healthy": (
        [
            (COMPOSE, "urlopen('http://127.0.0.1:5000/ready'", "urlopen('http://127.0.0.1:5000/nowhere'"),
            (
                COMPOSE,
                API_HEALTHCHECK,
                API_HEALTHCHECK.replace("interval: 10s", "interval: 2s")
                .replace("start_period: 60s", "start_period: 2s")
                .replace("retries: 3", "retries: 1"),
            ),
        ],
        "stack-healthy",
        "unhealthy",
    ),
}


def _grade_in_a_process(workspace: str, only: list[str]) -> tuple[dict, list[str]]:
    """In a process of its own: the results by check, and what the grading left on the engine."""
    from autograder.runners import docker as docker_runner

    report = grade_step("06", workspace, only=only)
    return {r.id.split(".", 1)[1]: r for r in report.results}, docker_runner.labelled_containers(owner_pid=os.getpid())


REFERENCE = "reference"


@pytest.fixture(scope="module")
def stack_reports(prometheus_image, tmp_path_factory, reference_workspace):
    """The reference's stack and every faulty one graded side by side, each in a process of its
    own (as two gradings on one machine would): most of a live check is waiting for Prometheus'
    next scrape or evaluation, so together they take about the time of the longest."""
    import concurrent.futures
    import multiprocessing
    import shutil

    jobs = {REFERENCE: (str(reference_workspace), list(LIVE))}
    for name, (edits, check, _) in FAILING_STACKS.items():
        workspace = tmp_path_factory.mktemp("stacks") / name
        shutil.copytree(reference_workspace, workspace)
        for relative, old, new in edits:
            text = (workspace / relative).read_text()
            assert old in text, f"fixture edit does not apply: {old!r} not in {relative}"
            (workspace / relative).write_text(text.replace(old, new))
        jobs[name] = (str(workspace), ["stack-healthy"] if check == "stack-healthy" else ["stack-healthy", check])
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=4, mp_context=spawn) as pool:
        futures = {name: pool.submit(_grade_in_a_process, *job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("fixture", sorted(FAILING_STACKS))
def test_a_faulty_stack_fails_exactly_its_check(fixture, stack_reports):
    _, check, words = FAILING_STACKS[fixture]
    results, left = stack_reports[fixture]
    assert left == [], "the grading left containers behind"
    assert results[check].verdict is Verdict.FAILED, results[check].message
    assert words in results[check].message, results[check].message
    assert results[check].hint
    if check != "stack-healthy":
        assert results["stack-healthy"].verdict is Verdict.PASSED, results["stack-healthy"].message


def test_the_blank_release_fails_every_live_check_without_starting_anything(
    prometheus_image, blank_workspace, nothing_left
):
    results = grade_step("06", blank_workspace, only=LIVE).results
    assert [r.verdict for r in results] == [Verdict.FAILED] * len(LIVE)
    assert "docker compose config rejects" in results[0].message or "not written" in results[0].message, results[
        0
    ].message
    assert all("see stack-healthy" in r.message for r in results[1:])


# name: (edits, words of the refusal)
REFUSED = {
    "privileged": (
        [
            (
                COMPOSE,
                "    image: prom/prometheus:v2.42.0\n",
                "    image: prom/prometheus:v2.42.0\n    privileged: true\n",
            )
        ],
        "sets privileged",
    ),
    "host-network": (
        [
            (
                COMPOSE,
                "    image: prom/prometheus:v2.42.0\n",
                "    image: prom/prometheus:v2.42.0\n    network_mode: host\n",
            )
        ],
        "network_mode: host",
    ),
    "docker-socket": (
        [
            (
                COMPOSE,
                "      - prometheus-data:/prometheus\n",
                "      - prometheus-data:/prometheus\n      - /var/run/docker.sock:/var/run/docker.sock\n",
            )
        ],
        "outside the workspace",
    ),
    "parent-folder": ([(COMPOSE, "./monitoring/prometheus.yml:", "../../prometheus.yml:")], "outside the workspace"),
}


@pytest.mark.parametrize("fixture", sorted(REFUSED))
def test_a_stack_that_would_widen_its_rights_is_refused_before_it_starts(
    fixture, prometheus_image, make_workspace, nothing_left
):
    edits, words = REFUSED[fixture]
    result = grade_step("06", make_workspace(*edits, name=fixture), only=["stack-healthy"]).results[0]
    assert result.verdict is Verdict.FAILED
    assert "will not run this stack" in result.message and words in result.message, result.message


def _grading_in_a_child(tmp_path, workspace) -> subprocess.Popen:
    script = (
        "import sys\nfrom autograder import interrupts\nfrom autograder.grading import grade_step\n"
        "if __name__ == '__main__':\n    interrupts.install()\n"
        "    grade_step('06', sys.argv[1], only=['stack-healthy', 'requests-counted'])\n"
    )
    (tmp_path / "grade.py").write_text(script)
    return subprocess.Popen([sys.executable, str(tmp_path / "grade.py"), str(workspace)], cwd=Path.cwd())


def _wait_until_healthy_in(engine, label: dict, child: subprocess.Popen) -> None:
    """Wait for the state the test needs: the service healthy inside the child's stack."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and child.poll() is None:
        states = [c.health for c in docker_runner.labelled_states(*label["label"].split("=", 1))]
        if "healthy" in states:
            return
        time.sleep(0.5)
    raise AssertionError("the grading ended before its stack was healthy")


def test_ctrl_c_midway_takes_the_whole_stack_down(prometheus_image, reference_workspace, docker_engine, tmp_path):
    child = _grading_in_a_child(tmp_path, reference_workspace)
    engine = docker_engine.client()
    label = {"label": f"{docker_engine.OWNER_LABEL}={child.pid}"}
    try:
        _wait_until_healthy_in(engine, label, child)
        child.send_signal(signal.SIGINT)
        child.wait(timeout=120)
        # No sweep here: the interrupted grading removed its own stack on the way out.
        assert engine.api.containers(all=True, filters=label) == []
        assert engine.networks.list(filters=label) == []
        assert engine.volumes.list(filters=label) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        docker_engine.remove_leftover_containers()


def test_a_grading_killed_midway_leaves_a_stack_the_next_run_removes(
    prometheus_image, reference_workspace, docker_engine, tmp_path
):
    """SIGKILL allows no clean-up: the next grading's sweep finds the stack by its owner label."""
    child = _grading_in_a_child(tmp_path, reference_workspace)
    engine = docker_engine.client()
    label = {"label": f"{docker_engine.OWNER_LABEL}={child.pid}"}
    try:
        _wait_until_healthy_in(engine, label, child)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert engine.api.containers(all=True, filters=label), "the killed run should have left its stack"
        docker_engine.remove_leftover_containers()
        assert engine.api.containers(all=True, filters=label) == []
        assert engine.networks.list(filters=label) == []
        assert engine.volumes.list(filters=label) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        docker_engine.remove_leftover_containers()
