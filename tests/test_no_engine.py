"""Without a Docker engine the container checks say 'skipped', never 'passed'."""

from __future__ import annotations

import subprocess
import sys

from autograder import course
from autograder.checks.result import Verdict

LIVE_CHECKS = ("image-builds", "container-ready", "predict-contract")


def test_container_checks_are_skipped_not_passed_without_an_engine(tmp_path):
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-such-docker.sock", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "check", "05", "--workspace", str(course.REFERENCE_WORKSPACE)],
        capture_output=True,
        text=True,
        env=env,
        cwd=course.REPO_ROOT,
    )
    assert result.returncode == 1, "skipped checks are not a pass"
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith(("PASS", "FAIL", "SKIP"))]
    live = [line for line in lines if any(f"05.{name}" in line for name in LIVE_CHECKS)]
    assert len(live) == 3 and all(line.startswith("SKIP    0/") for line in live), result.stdout
    # The Dockerfile's static checks need no engine: they still grade.
    static = [line for line in lines if line not in live]
    assert len(static) == 6 and all(line.startswith("PASS") for line in static), result.stdout
    assert "skipped: no Docker engine" in result.stdout
    assert Verdict.SKIPPED.value == "skipped"
