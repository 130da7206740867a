"""Shared fixtures: the reference and untouched student workspaces, faulty variants, Docker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from autograder import course
from autograder.release.writefiles import write_files_of

# `make test` runs two workers, each taking whole modules (--dist loadscope, so each module's
# fixtures run once). They start with the longest modules (measured; longest first), so that no
# long one starts last and leaves the other worker idle.
LONGEST_MODULES = (
    "tests/course/test_solutions_execute.py",
    "tests/runners/test_docker.py",
    "tests/runners/test_compose.py",
    "tests/checks/test_step04_testing.py",
    "tests/course/test_exercises_nbval.py",
    "tests/release/test_nbgrader_autograde.py",
    "tests/checks/test_step03_api.py",
    "tests/checks/test_step01_model.py",
    "tests/test_hostile_submissions.py",
    "tests/test_cli.py",
)


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        module = item.nodeid.split("::", 1)[0]
        return LONGEST_MODULES.index(module) if module in LONGEST_MODULES else len(LONGEST_MODULES)

    items.sort(key=rank)  # stable: the order inside a module is kept


# The course's own container engine settings, as the autograder uses them.
REQUIRE_DOCKER = os.environ.get("COURSE_REQUIRE_DOCKER") == "1"


@pytest.fixture(scope="session")
def reference_workspace() -> Path:
    return course.REFERENCE_WORKSPACE


@pytest.fixture(scope="session")
def blank_workspace(tmp_path_factory) -> Path:
    """What a learner gets by running every cell of the student notebooks unchanged."""
    root = tmp_path_factory.mktemp("student")
    for step in course.STEPS:
        if step.notebook:
            write_files_of(course.EXERCISES_DIR / course.ASSIGNMENT / step.notebook, root)
    return root / course.WORKSPACE_NAME


@pytest.fixture
def make_workspace(tmp_path, reference_workspace):
    """A copy of the reference workspace with text replacements: a faulty variant for one check."""

    def make(*edits: tuple[str, str, str], name: str = "variant") -> Path:
        workspace = tmp_path / name
        shutil.copytree(reference_workspace, workspace)
        for relative, old, new in edits:
            path = workspace / relative
            text = path.read_text()
            assert old in text, f"fixture edit does not apply: {old!r} not in {relative}"
            path.write_text(text.replace(old, new))
        return workspace

    return make


@pytest.fixture(scope="session")
def docker_engine():
    """Skip container tests where no engine runs; in CI (COURSE_REQUIRE_DOCKER=1) fail instead."""
    from autograder.runners import docker as docker_runner

    available, why = docker_runner.engine_available()
    if not available:
        if REQUIRE_DOCKER:
            pytest.fail(f"COURSE_REQUIRE_DOCKER=1 but {why}")
        pytest.skip(f"no Docker engine here: {why}")
    return docker_runner


@pytest.fixture(scope="session")
def base_image(docker_engine):
    from autograder.runners import offline

    if not docker_engine.image_exists(offline.BASE_IMAGE):
        message = f"{offline.BASE_IMAGE} is missing: run `python -m autograder offline setup` (.ci/run does)"
        if REQUIRE_DOCKER:
            pytest.fail(message)
        pytest.skip(message)
    return offline.BASE_IMAGE


@pytest.fixture(scope="session")
def prometheus_image(base_image, docker_engine):
    """Step 06's Prometheus image (promtool runs in it): present, or a skip (a failure in CI)."""
    if not docker_engine.image_exists(docker_engine.PROMETHEUS_IMAGE):
        message = (
            f"{docker_engine.PROMETHEUS_IMAGE} is missing: run `python -m autograder offline setup` (.ci/run does)"
        )
        if REQUIRE_DOCKER:
            pytest.fail(message)
        pytest.skip(message)
    return docker_engine.PROMETHEUS_IMAGE


def _orphaned_sandbox_processes() -> list[str]:
    """Processes of the sandbox's user that no running sandbox holds: what a run left behind.
    (Processes inside a live sandbox, another test's, descend from a bwrap process.)"""
    from pathlib import Path

    from autograder.runners import sandbox

    def status(pid: str) -> dict[str, str]:
        text = Path(f"/proc/{pid}/status").read_text()
        return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)

    orphans = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = status(entry.name)
            if not sandbox.is_sandbox_uid(int(fields["Uid"].split()[0])):
                continue
            pid, held = entry.name, False
            while pid not in ("0", "1"):
                parent = status(pid)
                # Inside a sandbox that is still running, or a container of the grader's own
                # (the relay and the wheelhouse server run as this user too).
                if parent["Name"].strip() in ("bwrap", "containerd-shim", "containerd-shim-runc-v2"):
                    held = True
                    break
                pid = parent["PPid"].strip()
        except (OSError, KeyError, ValueError):
            continue
        if not held:
            orphans.append(f"{entry.name} {fields.get('Name', '').strip()}")
    return orphans


@pytest.fixture
def orphaned_sandbox_processes():
    return _orphaned_sandbox_processes
