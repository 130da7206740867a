"""Committed notebooks: no outputs, nbgrader metadata intact, kernel python3."""

from __future__ import annotations

import subprocess

import nbformat
import pytest

from autograder import course


def _committed_notebooks():
    listed = subprocess.run(
        ["git", "ls-files", "*.ipynb"], cwd=course.REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = sorted(set(listed) | {str(p.relative_to(course.REPO_ROOT)) for p in course.REPO_ROOT.glob("*/*/*.ipynb")})
    return [n for n in found if n.startswith(("solutions/", "exercises/"))]


NOTEBOOKS = _committed_notebooks()


def test_every_step_with_a_notebook_has_source_and_release():
    for step in course.STEPS:
        if step.notebook:
            assert f"solutions/{course.ASSIGNMENT}/{step.notebook}" in NOTEBOOKS
            assert f"exercises/{course.ASSIGNMENT}/{step.notebook}" in NOTEBOOKS


def notebook_problems(notebook, name: str) -> list[str]:
    problems = []
    if notebook.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append(f"{name}: kernel is not named python3")
    grade_ids = []
    for cell in notebook.cells:
        if cell.cell_type == "code":
            if cell.outputs:
                problems.append(f"{name}: cell {cell.get('id')} has outputs")
            if cell.execution_count is not None:
                problems.append(f"{name}: cell {cell.get('id')} has an execution count")
        nbgrader = cell.metadata.get("nbgrader")
        if nbgrader:
            if nbgrader.get("schema_version") != 3:
                problems.append(f"{name}: cell {cell.get('id')} lacks nbgrader schema_version 3")
            grade_ids.append(nbgrader.get("grade_id"))
            if nbgrader.get("grade") and not nbgrader.get("points", 0) > 0:
                problems.append(f"{name}: grade cell {cell.get('id')} has no points")
    if len(grade_ids) != len(set(grade_ids)):
        problems.append(f"{name}: duplicate grade_id")
    if not any(c.metadata.get("nbgrader", {}).get("solution") for c in notebook.cells):
        problems.append(f"{name}: no solution cell (nbgrader metadata lost?)")
    if not any(c.metadata.get("nbgrader", {}).get("grade") for c in notebook.cells):
        problems.append(f"{name}: no grade cell (nbgrader metadata lost?)")
    return problems


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_clean_and_keeps_its_metadata(name):
    notebook = nbformat.read(str(course.REPO_ROOT / name), as_version=4)
    nbformat.validate(notebook)
    assert notebook_problems(notebook, name) == []


def test_problems_are_found_in_an_executed_notebook_without_metadata():
    source = course.STEPS[0].solution_notebook
    notebook = nbformat.read(str(source), as_version=4)
    notebook.cells[2].outputs = [nbformat.v4.new_output("stream", text="hello")]
    notebook.cells[2].execution_count = 1
    notebook.metadata.kernelspec.name = "venv"
    for cell in notebook.cells:
        cell.metadata.pop("nbgrader", None)
    problems = notebook_problems(notebook, "dirty")
    assert any("has outputs" in p for p in problems)
    assert any("execution count" in p for p in problems)
    assert any("python3" in p for p in problems)
    assert any("no solution cell" in p for p in problems)
