"""The CLI's exit codes and messages, as a learner or CI sees them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autograder import course


def _cli(*args: str):
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args], capture_output=True, text=True, cwd=course.REPO_ROOT
    )


@pytest.mark.slow
def test_check_exits_0_on_the_reference_and_prints_one_line_per_check(reference_workspace):
    # Step 02: its probes run in the sandbox like step 01's, in seconds rather than a minute.
    result = _cli("check", "02", "--workspace", str(reference_workspace))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith(("PASS", "FAIL", "SKIP"))]
    assert len(lines) == 6 and all(line.strip().startswith("PASS") for line in lines)
    assert "10/10  total" in result.stdout


@pytest.mark.slow
def test_check_exits_1_on_the_student_workspace_with_hints(blank_workspace, tmp_path):
    report = tmp_path / "results.json"
    result = _cli("check", "2", "--workspace", str(blank_workspace), "--json", str(report))
    assert result.returncode == 1
    assert result.stdout.count("hint:") == 6
    import json

    data = json.loads(report.read_text())
    assert data["score"] == 0 and data["max_score"] == 10 and len(data["tests"]) == 6


def test_missing_workspace_is_a_clear_error_without_traceback(tmp_path):
    result = _cli("check", "01", "--workspace", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "what to do" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_step_names_the_known_ones():
    result = _cli("check", "42")
    assert result.returncode == 2 and "pick one of: 00, 01, 02, 03, 04, 05" in result.stderr


def test_results_for_a_gradebook_are_never_made_unsandboxed(reference_workspace, tmp_path):
    """--json refuses where no sandbox runs (here: bubblewrap is not on PATH), unless told otherwise."""
    import os

    no_bwrap = {**os.environ, "PATH": str(tmp_path)}
    no_bwrap.pop("COURSE_SANDBOX", None)
    report = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "autograder",
            "check",
            "02",
            "--workspace",
            str(reference_workspace),
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        cwd=course.REPO_ROOT,
        env=no_bwrap,
    )
    assert done.returncode == 2 and "COURSE_SANDBOX=require" in done.stderr and not report.exists()
    anyway = subprocess.run(
        [sys.executable, "-m", "autograder", "check", "02", "--workspace", str(reference_workspace),
         "--json", str(report), "--sandbox", "auto"],
        capture_output=True, text=True, cwd=course.REPO_ROOT, env=no_bwrap,
    )  # fmt: skip
    assert anyway.returncode == 0 and "UNSANDBOXED" in anyway.stdout
    assert "UNSANDBOXED" in json.loads(report.read_text())["output"]
