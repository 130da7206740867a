"""Without a Docker engine the container checks say 'skipped', never 'passed'."""

from __future__ import annotations

import subprocess
import sys

from autograder import checks, course
from autograder.checks import step05_image
from autograder.checks.result import Verdict

# Every check of step 05 but the Dockerfile's own needs a built image and a running container.
LIVE_CHECKS = [
    check.id.split(".", 1)[1]
    for check in checks.for_step("05").checks
    if check.id.split(".", 1)[1] not in step05_image.STATIC_CHECKS
]


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
    assert len(live) == len(LIVE_CHECKS) and all(line.startswith("SKIP    0/") for line in live), result.stdout
    # The Dockerfile's static checks need no engine: they still grade.
    static = [line for line in lines if line not in live]
    assert len(static) == len(step05_image.STATIC_CHECKS) and all(line.startswith("PASS") for line in static), (
        result.stdout
    )
    assert "skipped: no Docker engine" in result.stdout
    assert Verdict.SKIPPED.value == "skipped"
