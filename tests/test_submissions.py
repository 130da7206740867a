"""Grading whole submissions (``grade``, ``grade-all``): each kind of submission gets the score it
deserves, with a reason, and the rest of it is still graded.

Steps 00 and 02 keep these tests to seconds: what they prove (the workspace comes from the
notebooks, read as files; notes and flags; the gradebook) does not depend on the step.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import course, submissions
from autograder.checks.result import CheckResult, Verdict
from autograder.grading import StepReport
from autograder.reports import feedback, results_json

STEPS = ["00", "02"]
NOTEBOOKS = [step.notebook for step in course.STEPS if step.notebook]


def _submission(tmp_path: Path, source: Path, name: str = "learner") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for notebook in NOTEBOOKS:
        shutil.copyfile(source / notebook, folder / notebook)
    return folder


def _solved(folder: Path) -> Path:
    return submissions.reference_submission(folder)


@pytest.fixture
def correct(tmp_path) -> Path:
    folder = tmp_path / "correct"
    folder.mkdir()
    return _solved(folder)


@pytest.fixture
def untouched(tmp_path) -> Path:
    return _submission(tmp_path, course.EXERCISES_DIR / course.ASSIGNMENT, "untouched")


def _add_cell(notebook: Path, source: str, *, at: int = 1) -> None:
    document = nbformat.read(str(notebook), as_version=4)
    document.cells.insert(at, nbformat.v4.new_code_cell(source))
    nbformat.write(document, str(notebook))


def _points(report: submissions.SubmissionReport) -> dict[str, float]:
    return {r.step.id: r.points for r in report.reports}


def test_a_correct_submission_earns_every_point(correct):
    report = submissions.grade(correct, steps=STEPS)
    assert _points(report) == {"00": 8, "02": 13} and report.flags == []
    assert report.notes == ["graded only step(s) 00, 02 (--steps): the points cover those"]


def test_the_reference_workspace_beside_its_notebooks_differs_in_nothing(correct):
    shutil.copytree(course.REFERENCE_WORKSPACE, correct / "workspace")
    assert "workspace differs" not in submissions.grade(correct, steps=["00"]).flags


def test_an_untouched_submission_earns_nothing(untouched):
    report = submissions.grade(untouched, steps=STEPS)
    assert report.points == 0 and report.max_points == 21


def test_what_the_kernel_would_print_changes_nothing_and_is_flagged(untouched, correct):
    """Hidden output and a redefined checkpoint(): no kernel runs, the files are what counts, and
    the instructor learns of the attempt."""
    _add_cell(correct / NOTEBOOKS[2], 'get_ipython().ast_node_interactivity = "none"')
    _add_cell(untouched / NOTEBOOKS[0], 'def checkpoint(*args, **kwargs):\n    print("6/6 points")\n    return 6')
    hidden = submissions.grade(correct, steps=STEPS)
    assert _points(hidden) == {"00": 8, "02": 13} and "tampered" in hidden.flags
    assert any("ast_node_interactivity" in note for note in hidden.notes), hidden.notes
    faked = submissions.grade(untouched, steps=STEPS)
    assert faked.points == 0 and any("redefines checkpoint()" in note for note in faked.notes), faked.notes


def test_edited_and_deleted_checkpoint_cells_are_flagged(correct):
    document = nbformat.read(str(correct / NOTEBOOKS[0]), as_version=4)
    graded = [c for c in document.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
    graded[0].source = "print('6/6')"
    document.cells.remove(graded[1])
    nbformat.write(document, str(correct / NOTEBOOKS[0]))
    report = submissions.grade(correct, steps=["00"])
    assert report.points == 8 and "tampered" in report.flags
    note = next(note for note in report.notes if note.startswith("tampered"))
    assert f"cell {graded[0].metadata.nbgrader.grade_id} edited" in note
    assert f"cell {graded[1].metadata.nbgrader.grade_id} deleted" in note


def test_the_untouched_release_is_not_tampered_with(untouched):
    assert submissions.tampering(submissions.find(untouched)) == []


def test_a_submitted_workspace_that_differs_is_reported_and_the_notebooks_graded(correct):
    workspace = correct / "workspace"
    shutil.copytree(course.REFERENCE_WORKSPACE, workspace)
    (workspace / "service" / "config.py").write_text("raise NotImplementedError()\n")
    report = submissions.grade(correct, steps=STEPS)
    assert _points(report) == {"00": 8, "02": 13}
    assert "workspace differs" in report.flags
    assert any("service/config.py differs" in note for note in report.notes), report.notes


def test_a_broken_notebook_costs_its_files_and_nothing_else(correct):
    (correct / NOTEBOOKS[2]).write_text("{ this is not a notebook")
    report = submissions.grade(correct, steps=STEPS)
    assert _points(report)["00"] == 8 and _points(report)["02"] == 0
    assert "notebook problem" in report.flags
    assert any(note.startswith(f"unreadable notebook {NOTEBOOKS[2]}") for note in report.notes)


def test_a_missing_notebook_is_named(correct):
    (correct / NOTEBOOKS[0]).unlink()
    report = submissions.grade(correct, steps=STEPS)
    assert _points(report) == {"00": 0, "02": 13}
    assert any(note.startswith(f"missing notebook {NOTEBOOKS[0]}") for note in report.notes)


def test_a_writefile_outside_the_submission_is_refused(correct, tmp_path):
    _add_cell(correct / NOTEBOOKS[0], "%%writefile ../../escaped.txt\nwritten where it should not be")
    report = submissions.grade(correct, steps=STEPS)
    assert not list(tmp_path.parent.rglob("escaped.txt"))
    assert any("refused a file" in note and "escaped.txt" in note for note in report.notes)
    assert _points(report) == {"00": 8, "02": 13}


def test_nbgraders_submitted_layout_is_found(correct, tmp_path):
    student = tmp_path / "submitted" / "ada"
    student.mkdir(parents=True)
    shutil.move(correct, student / course.ASSIGNMENT)
    found = submissions.find(student)
    assert found.root == student / course.ASSIGNMENT and set(found.notebooks) == {s.id for s in course.STEPS}


def test_results_are_gradescopes_format_and_a_skip_needs_manual_grading(tmp_path):
    skipped = CheckResult("05.image-builds", "the image builds", Verdict.SKIPPED, 0.0, 3.0, "skipped: no Docker engine")
    passed = CheckResult("05.base", "a pinned base image", Verdict.PASSED, 1.0, 1.0, "python:3.11-slim")
    report = StepReport(course.step("05"), [skipped, passed])
    data = results_json.as_dict([report], notes=["a note"], seconds=12.4)
    assert data["execution_time"] == 12 and data["score"] == 1 and data["max_score"] == 4
    assert {t["status"] for t in data["tests"]} == {"passed", "failed"}
    manual = next(t for t in data["tests"] if t["name"].startswith("05.image-builds"))
    assert manual["output"].startswith("needs manual grading") and manual["extra_data"]["verdict"] == "skipped"
    assert "need manual grading" in data["output"] and "a note" in data["output"]
    allowed = {"score", "max_score", "status", "name", "output", "visibility", "tags", "extra_data"}
    assert all(set(t) <= allowed for t in data["tests"])


def test_feedback_escapes_what_the_learner_controls(correct):
    (correct / NOTEBOOKS[2]).write_text("{ broken")
    report = submissions.grade(correct, steps=["00"])
    report.notes.append("<script>alert(1)</script> | \x1b[2J")
    page = feedback.as_html(report)
    assert "<script>" not in page and "&lt;script&gt;" in page and "\x1b" not in page
    assert "\x1b" not in feedback.markdown(report)


def test_grade_all_writes_a_gradebook_and_goes_past_a_broken_submission(tmp_path):
    batch = tmp_path / "submitted"
    batch.mkdir()
    (batch / "ada").mkdir()
    _solved(batch / "ada")
    _submission(batch, course.EXERCISES_DIR / course.ASSIGNMENT, "bob")
    (batch / "eve").mkdir()  # handed in nothing
    out = tmp_path / "graded"
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "grade-all", str(batch), "--out", str(out), "--steps", "00"],
        capture_output=True,
        text=True,
        cwd=course.REPO_ROOT,
    )
    assert done.returncode == 1, done.stdout + done.stderr  # one learner could not be graded
    rows = {row["learner"]: row for row in csv.DictReader((out / "gradebook.csv").open())}
    assert rows["ada"]["step 00"] == "8" and rows["ada"]["total"] == "8" and rows["ada"]["flags"] == ""
    assert rows["bob"]["total"] == "0"
    assert rows["eve"]["flags"] == "not graded" and "no notebook of the course" in rows["eve"]["notes"]
    ada = json.loads((out / "ada" / "results.json").read_text())
    assert ada["score"] == 8 and ada["extra_data"]["steps"]["00"]["seconds"] >= 0
    assert (out / "ada" / "feedback.html").is_file() and (out / "bob" / "feedback.md").is_file()


def test_a_notebook_with_100_mb_of_output_is_still_graded(correct):
    """Output is never read as code: a cell that printed 100 MB costs time, not points."""
    notebook = correct / NOTEBOOKS[0]
    document = nbformat.read(str(notebook), as_version=4)
    noisy = next(c for c in document.cells if c.cell_type == "code")
    noisy.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 999 + "\n")] * 100_000
    nbformat.write(document, str(notebook))
    assert notebook.stat().st_size > 100 * 1000**2
    report = submissions.grade(correct, steps=["00"])
    assert _points(report) == {"00": 8} and "notebook problem" not in report.flags


def test_cells_that_would_kill_or_hang_the_kernel_change_nothing(correct):
    _add_cell(correct / NOTEBOOKS[0], "import os\nos._exit(0)")
    _add_cell(correct / NOTEBOOKS[2], "while True:\n    pass")
    assert _points(submissions.grade(correct, steps=STEPS)) == {"00": 8, "02": 13}
