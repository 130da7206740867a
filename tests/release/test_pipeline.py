"""solutions/ -> exercises/: generated with nbgrader, committed, and checked for drift."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import course
from autograder.release import pipeline


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return pipeline.generate(tmp_path_factory.mktemp("release"))


def test_committed_exercises_equal_what_the_sources_generate(generated):
    assert (
        pipeline.differences(generated, course.EXERCISES_DIR / course.ASSIGNMENT, ignore=pipeline.STUDENT_OWNED) == []
    )


def test_student_version_leaks_no_solution_and_no_hidden_test(generated):
    for notebook_path in generated.glob("*.ipynb"):
        text = notebook_path.read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "_load_state_dict(path), WeightsInfo"):
            assert marker not in text, f"{marker!r} leaked into {notebook_path.name}"
        notebook = nbformat.read(str(notebook_path), as_version=4)
        hidden = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("hidden")]
        assert hidden, f"{notebook_path.name} has no hidden test cell"
        assert all("assert" not in cell.source for cell in hidden)


def test_reference_workspace_is_not_released(generated):
    assert not (generated / course.WORKSPACE_NAME).exists()


def test_check_lists_drift_and_changes_nothing(tmp_path):
    exercises = tmp_path / "exercises"
    shutil.copytree(course.EXERCISES_DIR, exercises, ignore=shutil.ignore_patterns(course.WORKSPACE_NAME))
    notebook = exercises / course.ASSIGNMENT / course.STEPS[0].notebook
    notebook.write_text(notebook.read_text() + "\n")
    (exercises / course.ASSIGNMENT / "stray.txt").write_text("not generated")
    before = notebook.read_text()
    found = pipeline.release(check=True, exercises_dir=exercises)
    assert f"differs    {course.STEPS[0].notebook}" in found
    assert "missing    stray.txt" not in found and any("stray.txt" in line for line in found)
    assert notebook.read_text() == before  # --check changes nothing


def test_release_repairs_drift_and_keeps_the_learners_workspace(tmp_path):
    exercises = tmp_path / "exercises"
    shutil.copytree(course.EXERCISES_DIR, exercises, ignore=shutil.ignore_patterns(course.WORKSPACE_NAME))
    notebook = exercises / course.ASSIGNMENT / course.STEPS[0].notebook
    notebook.write_text("{}")
    learner_file = exercises / course.ASSIGNMENT / course.WORKSPACE_NAME / "service" / "model.py"
    learner_file.parent.mkdir(parents=True)
    learner_file.write_text("# my work")
    assert pipeline.release(exercises_dir=exercises) != []
    assert pipeline.release(check=True, exercises_dir=exercises) == []
    assert learner_file.read_text() == "# my work"


def test_cli_release_check_passes_on_the_committed_tree():
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "release", "--check"], capture_output=True, text=True, cwd=course.REPO_ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to date" in result.stdout


@pytest.mark.slow
def test_plain_nbgrader_with_the_shipped_config_releases_what_release_does(tmp_path):
    """An instructor's `nbgrader generate_assignment` from the repository root: the writefile-aware
    stubs, and neither the reference workspace nor hidden/ in the release."""
    release = tmp_path / "release"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "nbgrader"),
            "generate_assignment",
            course.ASSIGNMENT,
            "--force",
            f"--CourseDirectory.release_directory={release}",
            f"--CourseDirectory.db_url=sqlite:///{tmp_path / 'gradebook.db'}",
        ],
        cwd=course.REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    released = release / course.ASSIGNMENT
    assert not (released / course.WORKSPACE_NAME).exists() and not (released / "hidden").exists()
    assert pipeline.differences(course.EXERCISES_DIR / course.ASSIGNMENT, released, ignore=pipeline.STUDENT_OWNED) == []
