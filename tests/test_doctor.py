"""`autograder doctor` finds what is wrong and names the fix; it never changes anything."""

from __future__ import annotations

import subprocess
import sys

from autograder import course, doctor
from autograder.errors import AutograderError


def test_this_environment_has_python_and_the_pinned_packages():
    assert doctor.check_python().ok
    packages = doctor.check_packages()
    assert packages.ok, packages.detail


def test_a_wrong_package_version_is_named_with_its_fix(monkeypatch):
    monkeypatch.setattr(doctor, "_direct_pins", lambda: {"flask": "0.1", "no-such-package-xyz": "1.0"})
    finding = doctor.check_packages()
    assert not finding.ok
    assert "flask 3.1.3 (course pins 0.1)" in finding.detail and "no-such-package-xyz missing" in finding.detail
    assert "make venv" in finding.fix


def test_no_engine_is_a_warning_with_the_command_to_start_one(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    finding = doctor.check_docker()
    assert not finding.ok and not finding.required
    assert "dockerd" in finding.fix
    base = doctor.check_base_image(engine_ok=False)
    assert not base.ok and base.fix


def test_step_06_tools_are_reported(monkeypatch):
    from autograder.runners import compose

    assert doctor.check_compose().ok  # the course environment ships the Compose v2 binary
    missing = doctor.check_prometheus_image(engine_ok=False)
    assert not missing.ok and not missing.required and missing.fix

    def no_binary():
        raise AutograderError("the Docker Compose v2 CLI is missing", hint="make venv")

    monkeypatch.setattr(compose, "compose_binary", no_binary)
    finding = doctor.check_compose()
    assert not finding.ok and "make venv" in finding.fix


def test_low_disk_is_reported(monkeypatch):
    monkeypatch.setattr(doctor, "MIN_FREE_GB", 10**9)
    finding = doctor.check_disk()
    assert not finding.ok and "clean" in finding.fix


def test_cli_prints_one_line_per_finding():
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "doctor"], capture_output=True, text=True, cwd=course.REPO_ROOT
    )
    assert result.returncode in (0, 1)
    names = [
        "Python",
        "Packages",
        "Docker engine",
        "Base image",
        "Wheelhouse",
        "Compose",
        "Prometheus image",
        "Free disk",
    ]
    assert all(name in result.stdout for name in names)
