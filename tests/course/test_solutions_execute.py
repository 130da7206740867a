"""The solution notebooks execute end to end and write exactly the committed reference workspace."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from autograder import checks, course, progress
from autograder.errors import NotebookError
from autograder.reference import run_solutions
from autograder.runners.notebooks import execute_notebook
from autograder.trees import differences

# Notebook 05's checkpoints build and run the image, beside test_docker.py's gradings on the
# other worker: the image cache's pins keep them off each other's images.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def solutions_run(tmp_path_factory):
    return run_solutions(check=True, run_dir=tmp_path_factory.mktemp("run"), progress=lambda _: None)


def test_run_solutions_reproduces_the_committed_workspace(solutions_run):
    run = solutions_run
    assert run.differences == [], "committed workspace drifted; run: python -m autograder run-solutions"
    assert [e.source.name for e in run.executed] == [s.notebook for s in course.STEPS if s.notebook]
    for notebook in run.executed:
        executed = nbformat.read(str(notebook.output), as_version=4)
        checkpoints = [
            c
            for c in executed.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("checkpoint")
        ]
        assert len(checkpoints) >= 3, f"{notebook.source.name} needs at least three checkpoints"
        for cell in checkpoints:
            scores = [o["data"]["text/plain"] for o in cell.outputs if o.output_type == "execute_result"]
            assert scores == [f"{cell.metadata.nbgrader.points:g}"], f"{cell.id} does not give the solution full points"


def test_every_check_of_every_step_passed_in_the_notebooks_checkpoints(solutions_run):
    """The checkpoints of the solution notebooks graded the reference workspace as they wrote it:
    every check of every step ran in some checkpoint and earned all its points. (The per-step
    check tests grade only faulty and blank workspaces; this is their "passes on the reference".)"""
    recorded = progress.recorded_checks(solutions_run.workspace)
    for step in course.STEPS:
        if not step.notebook:
            continue
        seen = recorded.get(step.id, {})
        for check in checks.for_step(step.id).checks:
            assert check.id in seen, f"{check.id} is in no checkpoint of {step.notebook}"
            assert seen[check.id]["passed"], f"{check.id} failed on the reference"
            assert seen[check.id]["points"] == check.max_points, check.id


def test_reference_files_carry_no_nbgrader_markers():
    for path in course.REFERENCE_WORKSPACE.rglob("*"):
        if path.is_file():
            assert "### BEGIN SOLUTION" not in path.read_text(), path


def test_a_failing_cell_is_named_and_the_executed_copy_kept(tmp_path):
    source = course.STEPS[0].solution_notebook
    notebook = nbformat.read(str(source), as_version=4)
    notebook.cells[2].source = "raise RuntimeError('broken on purpose')"
    broken = tmp_path / "broken.ipynb"
    nbformat.write(notebook, str(broken))
    output = tmp_path / "out" / "broken.ipynb"
    with pytest.raises(NotebookError) as caught:
        execute_notebook(broken, output, cwd=tmp_path, cell_timeout=120)
    assert "broken.ipynb failed in cell 2" in str(caught.value)
    assert "RuntimeError: broken on purpose" in str(caught.value)
    assert output.exists()


def test_a_drifted_workspace_is_reported(solutions_run, tmp_path):
    edited = tmp_path / "reference"
    shutil.copytree(course.REFERENCE_WORKSPACE, edited)
    (edited / "service" / "model.py").write_text("# edited by hand\n")
    (edited / "stray.txt").write_text("not written by any notebook\n")
    assert differences(solutions_run.workspace, edited) == ["unexpected stray.txt", "differs    service/model.py"]
