"""Run a learner's pytest suite against a service (theirs, the reference, or a faulty variant).

The suite runs in its own process group with a timeout, in a scratch copy of the service with the
learner's tests/ next to it: whatever the tests do (loop, crash, write files) the grader gets a
result, and neither the learner's workspace nor the reference is touched.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from pathlib import Path

from autograder.checks.context import SuiteRun
from autograder.runners.processes import capped, run_in_own_group, tail
from autograder.variants import Variant, apply

DEFAULT_TIMEOUT = 300.0
# Never copied into the scratch workspace: caches, environments, the learner's backups.
SKIPPED_NAMES = ("__pycache__", "*.pyc", ".pytest_cache", ".venv", ".catch-up-backups", ".git")
SKIPPED = shutil.ignore_patterns(*SKIPPED_NAMES)


def assemble(service_from: Path, tests_from: Path, destination: Path, variant: Variant | None = None) -> Path:
    """``destination`` := the service of ``service_from`` (optionally made faulty) + ``tests_from/tests``."""
    shutil.copytree(service_from, destination, ignore=shutil.ignore_patterns("tests", *SKIPPED_NAMES))
    if variant is not None:
        apply(variant, destination)
    if (tests_from / "tests").is_dir():
        shutil.copytree(tests_from / "tests", destination / "tests", ignore=SKIPPED)
    return destination


def run_suite(
    directory: Path, *, timeout: float = DEFAULT_TIMEOUT, stop_at_first_failure: bool = False, threads: int = 1
) -> SuiteRun:
    """``python -m pytest tests`` in ``directory``; counts come from pytest's JUnit XML report."""
    report = directory / ".suite-report.xml"
    command = [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
    if stop_at_first_failure:
        command.append("-x")
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(directory),
        # Plugins of the course environment (nbval...) have no business in a learner's suite.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "OMP_NUM_THREADS": str(threads),
    }
    started = time.monotonic()
    finished = run_in_own_group(command, cwd=directory, env=env, timeout=timeout)
    seconds = time.monotonic() - started
    if finished.timed_out:
        return SuiteRun(exit_code=-1, timed_out=True, seconds=seconds, output_tail=tail(finished.output, 25))
    counts = _counts(report)
    return SuiteRun(exit_code=finished.returncode, seconds=seconds, output_tail=tail(finished.output, 25), **counts)


def run_against(tests_from: Path, service_from: Path, variant: Variant | None = None, **options) -> SuiteRun:
    """Assemble a scratch workspace and run the suite in it; the scratch is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="suite-") as scratch:
        directory = assemble(service_from, tests_from, Path(scratch) / "workspace", variant)
        return run_suite(directory, **options)


class SuiteRunner:
    """A Context.run_suite: ``runner(None)`` runs the learner's suite on the reference service,
    ``runner("name")`` on that faulty variant (stopping at the first failure). Results are
    remembered, so several checks can ask for the same run."""

    def __init__(
        self, tests_from: Path, reference: Path, variants: Iterable[Variant], *, timeout: float = DEFAULT_TIMEOUT
    ):
        self._tests_from, self._reference, self._timeout = tests_from, reference, capped(timeout)
        self._by_name = {v.name: v for v in variants}
        self.variants = tuple((v.name, v.description) for v in self._by_name.values())
        self._done: dict[str | None, SuiteRun] = {}

    def __call__(self, variant: str | None = None) -> SuiteRun:
        if variant not in self._done:
            self._done[variant] = run_against(
                self._tests_from,
                self._reference,
                self._by_name[variant] if variant else None,
                timeout=self._timeout,
                stop_at_first_failure=variant is not None,
            )
        return self._done[variant]


def _counts(report: Path) -> dict:
    try:
        root = ElementTree.parse(report).getroot()
    except (OSError, ElementTree.ParseError):
        return {}
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return {}
    number = lambda key: int(suite.get(key, 0))  # noqa: E731
    return {
        "collected": number("tests"),
        "failed": number("failures"),
        "errors": number("errors"),
        "skipped": number("skipped"),
    }
