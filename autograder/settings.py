"""The autograder's own settings: environment variables an instructor may set, validated together.

Read when a command runs (``settings.current()``), never at import: a bad value is an
AutograderError that names the variable, its value and what is allowed (the CLI exits 2), and a
test can change a variable with ``monkeypatch.setenv`` alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from autograder.errors import AutograderError

SANDBOX_MODES = ("auto", "require", "off")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class SettingsError(AutograderError):
    """One or more COURSE_* variables have values the autograder cannot use."""


def parse_size(text: str) -> int:
    """'3g', '512m', '2GiB', '1048576' -> bytes; ValueError otherwise."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


@dataclass(frozen=True)
class Settings:
    """Every COURSE_* variable, with its default. Sizes in bytes, times in seconds."""

    # Where the course keeps its named caches (wheelhouse, progress, grading history).
    cache_dir: Path
    # How learner code is confined: auto (the sandbox where it works, else unsandboxed with a
    # warning in every report), require (refuse to run learner code without it), off.
    sandbox: str = "auto"
    # One probe or test-suite run: wall clock, memory of each process, tasks, written file size.
    probe_timeout_cap: float = 0.0  # 0: no cap; tests of endless loops lower every probe's timeout
    sandbox_memory: int = 3 * 1024**3
    sandbox_tasks: int = 512
    sandbox_file_size: int = 256 * 1024**2
    # Step 04: all the runs of a learner's suite together.
    suite_deadline: float = 900.0
    # Step 05: the graded container and its build.
    container_memory: int = 3 * 1024**3
    container_cpus: float = 2.0
    container_pids: int = 256
    startup_timeout: float = 180.0
    build_timeout: float = 1800.0
    build_memory: int = 6 * 1024**3
    build_context_limit: int = 1024**3
    image_budget_gb: float = 2.0
    image_layer_budget: int = 20
    pull_timeout: float = 45.0
    wheelhouse_port: int = 3141
    debian_mirror: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        problems: list[str] = []
        values: dict[str, object] = {}

        def read(field: str, variable: str, parse: Callable[[str], object], allowed: str) -> None:
            raw = environ.get(variable, "").strip()
            if not raw:
                return
            try:
                value = parse(raw)
            except (ValueError, TypeError):
                problems.append(f"{variable}={raw!r}: must be {allowed}")
                return
            values[field] = value

        def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
            def parse(raw: str) -> float:
                value = kind(raw)
                if value <= 0:
                    raise ValueError(raw)
                return value

            return parse

        def choice(raw: str) -> str:
            if raw.lower() not in SANDBOX_MODES:
                raise ValueError(raw)
            return raw.lower()

        def port(raw: str) -> int:
            value = int(raw)
            if not 1024 <= value <= 65535:
                raise ValueError(raw)
            return value

        size = "a size such as 512m or 3g"
        read("sandbox", "COURSE_SANDBOX", choice, "one of " + ", ".join(SANDBOX_MODES))
        read("probe_timeout_cap", "COURSE_PROBE_TIMEOUT", positive(float), "a number of seconds above 0")
        read("sandbox_memory", "COURSE_SANDBOX_MEMORY", positive(parse_size), size)
        read("sandbox_tasks", "COURSE_SANDBOX_TASKS", positive(int), "a whole number above 0")
        read("sandbox_file_size", "COURSE_SANDBOX_FILE_SIZE", positive(parse_size), size)
        read("suite_deadline", "COURSE_SUITE_DEADLINE", positive(float), "a number of seconds above 0")
        read("container_memory", "COURSE_CONTAINER_MEMORY", positive(parse_size), size)
        read("container_cpus", "COURSE_CONTAINER_CPUS", positive(float), "a number of CPUs above 0, e.g. 2 or 0.5")
        read("container_pids", "COURSE_CONTAINER_PIDS", positive(int), "a whole number above 0")
        read("startup_timeout", "COURSE_STARTUP_TIMEOUT", positive(float), "a number of seconds above 0")
        read("build_timeout", "COURSE_BUILD_TIMEOUT", positive(float), "a number of seconds above 0")
        read("build_memory", "COURSE_BUILD_MEMORY", positive(parse_size), size)
        read("build_context_limit", "COURSE_BUILD_CONTEXT_LIMIT", positive(parse_size), size)
        read("image_budget_gb", "COURSE_IMAGE_BUDGET_GB", positive(float), "a number of GB above 0")
        read("image_layer_budget", "COURSE_IMAGE_LAYER_BUDGET", positive(int), "a whole number above 0")
        read("pull_timeout", "COURSE_PULL_TIMEOUT", positive(float), "a number of seconds above 0")
        read("wheelhouse_port", "COURSE_WHEELHOUSE_PORT", port, "a port number from 1024 to 65535")
        read("debian_mirror", "COURSE_DEBIAN_MIRROR", str, "a URL")
        if problems:
            raise SettingsError(
                "invalid autograder settings: " + "; ".join(problems),
                hint="fix or unset these environment variables (the README lists every COURSE_* variable)",
            )
        home = Path(environ.get("HOME") or Path.home())
        home_cache = Path(environ.get("XDG_CACHE_HOME") or home / ".cache") / "resnet-course"
        cache = Path(environ.get("COURSE_CACHE_DIR") or home_cache).expanduser()
        return cls(cache_dir=cache, **values)

    def describe(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


def current() -> Settings:
    """The settings from the environment as it is now (cheap: read on every call, never cached)."""
    return Settings.from_env()


def capped(timeout: float) -> float:
    """``timeout``, lowered to COURSE_PROBE_TIMEOUT when that is set (tests of endless loops set it)."""
    cap = current().probe_timeout_cap
    return min(timeout, cap) if cap else timeout
