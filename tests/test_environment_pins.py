"""environment.yml, requirements.in, the lock and the service's requirements never drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from autograder import course

ROOT = course.REPO_ROOT


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        assert match, f"not pinned with ==: {line!r}"
        pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def _environment_yml_pins() -> dict[str, str]:
    document = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in document["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip section"
    assert "python=3.11" in document["dependencies"]
    return _pins(pip_sections[0])


def test_environment_yml_and_requirements_in_pin_the_same_set():
    assert _environment_yml_pins() == _pins((ROOT / "requirements.in").read_text().splitlines())


def test_lock_contains_every_direct_pin_at_the_same_version():
    lock = _pins((ROOT / "requirements.txt").read_text().splitlines())
    direct = _pins((ROOT / "requirements.in").read_text().splitlines())
    mismatched = {name: (version, lock.get(name)) for name, version in direct.items() if lock.get(name) != version}
    assert not mismatched, f"requirements.txt disagrees with requirements.in (run make lock): {mismatched}"


def test_the_service_image_pins_what_the_course_environment_runs():
    lock = _pins((ROOT / "requirements.txt").read_text().splitlines())
    service = _pins((course.REFERENCE_WORKSPACE / "requirements.txt").read_text().splitlines())
    assert {"torch", "torchvision", "flask", "pillow", "gunicorn"} <= set(service)
    assert {name: version for name, version in service.items() if lock.get(name) != version} == {}


def test_pins_parser_rejects_an_unpinned_line():
    import pytest

    with pytest.raises(AssertionError):
        _pins(["flask>=3"])


def test_torch_pair_is_the_one_that_imports_here():
    # torch 2.13.0+cpu cannot import PyPI's torchvision (ENVIRONMENT.md): keep the known-good pair.
    lock = _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert (lock["torch"], lock["torchvision"]) == ("2.14.1", "0.29.1")
    assert Path(ROOT / "Makefile").read_text().count("-r requirements.txt") == 1
