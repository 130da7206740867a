"""The autograder's COURSE_* settings: defaults, sizes, and every bad value reported at once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autograder import course
from autograder.settings import Settings, SettingsError, parse_size


def test_defaults_without_any_variable(tmp_path):
    settings = Settings.from_env({"HOME": str(tmp_path)})
    assert settings.sandbox == "auto" and settings.container_memory == 3 * 1024**3
    assert settings.cache_dir == tmp_path / ".cache" / "resnet-course"


def test_values_are_parsed():
    settings = Settings.from_env(
        {"COURSE_CONTAINER_MEMORY": "512m", "COURSE_SANDBOX": "REQUIRE", "COURSE_CACHE_DIR": "/x"}
    )
    assert settings.container_memory == 512 * 1024**2 and settings.sandbox == "require"
    assert str(settings.cache_dir) == "/x"
    assert parse_size("2GiB") == parse_size("2g") == 2 * 1024**3


def test_every_bad_value_is_named_together():
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"COURSE_CONTAINER_CPUS": "two", "COURSE_SANDBOX": "maybe", "COURSE_WHEELHOUSE_PORT": "80"})
    message = str(raised.value)
    for part in ("COURSE_CONTAINER_CPUS='two'", "COURSE_SANDBOX='maybe'", "COURSE_WHEELHOUSE_PORT='80'", "what to do"):
        assert part in message


def test_the_cli_exits_2_on_a_bad_setting_without_a_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "check", "00"],
        env={"PATH": "/usr/bin:/bin", "COURSE_STARTUP_TIMEOUT": "soon"},
        capture_output=True,
        text=True,
        cwd=course.REPO_ROOT,
    )
    assert done.returncode == 2
    assert "COURSE_STARTUP_TIMEOUT='soon'" in done.stderr and "Traceback" not in done.stderr
