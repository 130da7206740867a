"""The reference workspace: what executing the solution notebooks writes.

``run_solutions`` executes every solution notebook in course order, in a scratch copy of the
assignment (executed notebooks land in build/, never in git), then compares the workspace the
notebooks wrote with the committed one, or replaces the committed one with it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder import course
from autograder.errors import NotebookError
from autograder.release.writefiles import without_solution_markers
from autograder.runners.notebooks import ExecutedNotebook, execute_notebook, fresh_copy
from autograder.trees import ALWAYS_IGNORED, differences

RUN_DIR = course.BUILD_DIR / "run-solutions"


@dataclass
class SolutionsRun:
    executed: list[ExecutedNotebook] = field(default_factory=list)
    workspace: Path | None = None
    differences: list[str] = field(default_factory=list)


def strip_solution_markers(notebook_path: Path) -> None:
    """Drop nbgrader's solution marker lines, so the files the notebook writes read like a project's."""
    notebook = nbformat.read(str(notebook_path), as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = without_solution_markers(cell.source)
    nbformat.write(notebook, str(notebook_path))


def short_checkpoints(executed: Path) -> list[str]:
    """Checkpoint cells of an executed notebook whose score is below their points: "grade_id: 3/4"."""
    notebook = nbformat.read(str(executed), as_version=4)
    short = []
    for cell in notebook.cells:
        grading = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not grading.get("grade") or "checkpoint(" not in cell.source:
            continue
        results = [o for o in cell.get("outputs", []) if o.get("output_type") == "execute_result"]
        score = results[0].get("data", {}).get("text/plain", "") if results else ""
        try:
            earned = float(score)
        except ValueError:
            earned = 0.0
        if earned < float(grading.get("points", 0)):
            short.append(f"{grading['grade_id']}: {score or 'no score'}/{grading.get('points')}")
    return short


def run_solutions(*, check: bool = False, run_dir: Path = RUN_DIR, progress=print) -> SolutionsRun:
    """Execute the solution notebooks; with ``check`` only report drift of the committed workspace."""
    assignment = course.SOLUTIONS_DIR / course.ASSIGNMENT
    copy = fresh_copy(assignment, run_dir / course.ASSIGNMENT, without=(course.WORKSPACE_NAME,))
    for step in course.STEPS:
        if step.notebook:
            strip_solution_markers(copy / step.notebook)
    run = SolutionsRun()
    for step in course.STEPS:
        if step.notebook is None:
            continue
        progress(f"executing {step.notebook} ...")
        executed = execute_notebook(copy / step.notebook, run_dir / "executed" / step.notebook, cwd=copy)
        progress(f"  done in {executed.seconds:.0f} s -> {executed.output}")
        short = short_checkpoints(executed.output)
        if short:
            raise NotebookError(
                f"{step.notebook}: the reference solution does not earn every point: " + "; ".join(short),
                hint=f"open the executed copy {executed.output} to see the checkpoint tables",
            )
        run.executed.append(executed)
    run.workspace = copy / course.WORKSPACE_NAME
    run.differences = differences(run.workspace, course.REFERENCE_WORKSPACE)
    if run.differences and not check:
        if course.REFERENCE_WORKSPACE.exists():
            shutil.rmtree(course.REFERENCE_WORKSPACE)
        shutil.copytree(run.workspace, course.REFERENCE_WORKSPACE, ignore=shutil.ignore_patterns(*ALWAYS_IGNORED))
    return run
