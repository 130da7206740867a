"""Hidden tests, run by ``grade`` outside the learner's kernel: each step's pass on the reference
workspace and fail on the release's stubs, with a message that never shows the tests' code.

Steps 00 and 02 take seconds; the others load the model, serve the app, run the learner's suite
or gunicorn's configuration, so they are ``slow``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autograder import course, hidden, submissions
from autograder.checks.result import Verdict
from autograder.settings import current

NOTEBOOK_STEPS = [step.id for step in course.STEPS if step.notebook]
SLOW_STEPS = [step for step in NOTEBOOK_STEPS if step not in ("00", "02")]


@pytest.fixture(scope="module")
def stubs(tmp_path_factory) -> Path:
    """The workspace the untouched release's notebooks write."""
    untouched = tmp_path_factory.mktemp("untouched")
    for notebook in (course.EXERCISES_DIR / course.ASSIGNMENT).glob("*.ipynb"):
        shutil.copyfile(notebook, untouched / notebook.name)
    workspace, notes = submissions.rebuild_workspace(submissions.find(untouched), tmp_path_factory.mktemp("stubs"))
    assert notes == []
    return workspace


def _revealed(message: str, cell: hidden.HiddenCell) -> list[str]:
    """Lines of the hidden tests' code that a message shows (assert messages aside)."""
    lines = [line.strip() for line in cell.code.splitlines() if len(line.strip()) > 25]
    return [line for line in lines if line in message]


def test_every_notebook_has_one_hidden_test_cell_worth_points():
    cells = hidden.cells()
    assert sorted(cells) == NOTEBOOK_STEPS
    for cell in cells.values():
        assert cell.points > 0 and cell.grade_id.startswith("hidden_")
        assert hidden.BEGIN not in cell.code and "assert" in cell.code
        assert cell.step in hidden.PRELUDES


def test_a_learners_repository_has_no_hidden_tests(tmp_path):
    assert hidden.cells(tmp_path) == {}


def _check(step: str, stubs: Path) -> None:
    cell = hidden.cells()[step]
    passed = hidden.run(cell, course.REFERENCE_WORKSPACE, current())
    assert passed.verdict is Verdict.PASSED and passed.points == cell.points, passed.message
    failed = hidden.run(cell, stubs, current())
    assert failed.verdict is Verdict.FAILED and failed.points == 0 and failed.max_points == cell.points
    assert failed.message.startswith("a hidden test failed: ") and not _revealed(failed.message, cell)


@pytest.mark.parametrize("step", ["00", "02"])
def test_hidden_tests_pass_on_the_reference_and_fail_on_the_stubs(step, stubs):
    _check(step, stubs)


@pytest.mark.slow
@pytest.mark.parametrize("step", SLOW_STEPS)
def test_the_model_api_suite_and_image_hidden_tests_pass_on_the_reference_and_fail_on_the_stubs(step, stubs):
    _check(step, stubs)


def test_learner_code_that_ends_the_process_fails_the_hidden_tests(tmp_path):
    """os._exit(0) at import: the process "succeeds", but it never said it finished."""
    workspace = tmp_path / "workspace"
    shutil.copytree(course.REFERENCE_WORKSPACE, workspace)
    config = workspace / "service" / "config.py"
    config.write_text(config.read_text() + "\nimport os\n\nos._exit(0)\n")
    result = hidden.run(hidden.cells()["02"], workspace, current())
    assert result.verdict is Verdict.FAILED and "died" in result.message, result.message
