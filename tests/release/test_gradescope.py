"""The Gradescope bundle: what Gradescope unzips, and run_autograder grading a submission the way
Gradescope runs it (its folders under AUTOGRADER_ROOT, this environment's Python)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder import course
from autograder.release import gradescope
from tests.test_submissions import _solved


@pytest.fixture(scope="module")
def unzipped(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gradescope")
    bundle = gradescope.write(root / "autograder.zip")
    with zipfile.ZipFile(bundle) as archive:
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        archive.extractall(root / "source")
    for script in ("setup.sh", "run_autograder"):
        assert modes[script] & 0o111, f"{script} must be executable once unzipped"
        (root / "source" / script).chmod(0o755)
    return root


def test_it_holds_what_grading_needs_and_nothing_else(unzipped):
    names = {p.relative_to(unzipped / "source").as_posix() for p in (unzipped / "source").rglob("*") if p.is_file()}
    assert {"setup.sh", "run_autograder", "requirements.txt", "pyproject.toml", "autograder/cli.py"} <= names
    assert "solutions/resnet-service/hidden/faulty-variants.toml" in names
    assert "solutions/resnet-service/workspace/service/app.py" in names
    assert any(n.startswith("exercises/resnet-service/") and n.endswith(".ipynb") for n in names)
    assert not [n for n in names if n.startswith(("tests/", ".ci/", "build/", ".venv/")) or "__pycache__" in n]
    # The solution notebooks come along for their hidden tests: the bundle is Gradescope's, not learners'.
    assert f"solutions/resnet-service/{course.step('03').notebook}" in names


def test_run_autograder_grades_a_submission_into_results_json(unzipped):
    submission = unzipped / "submission"
    submission.mkdir()
    _solved(submission)
    (unzipped / "results").mkdir()
    env = {**os.environ, "AUTOGRADER_ROOT": str(unzipped), "AUTOGRADER_PYTHON": sys.executable}
    env["GRADE_OPTIONS"] = "--steps 00"
    done = subprocess.run(
        ["bash", str(unzipped / "source" / "run_autograder")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((unzipped / "results" / "results.json").read_text())
    assert results["score"] == 8 and results["max_score"] == 8 and "execution_time" in results
    assert all(test["status"] == "passed" for test in results["tests"])
    hidden = [test for test in results["tests"] if test["visibility"] == "after_published"]
    assert [test["name"] for test in hidden] == ["00.hidden-tests: hidden tests"]
