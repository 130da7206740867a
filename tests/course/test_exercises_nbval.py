"""The released notebooks run as a learner runs them: Run All, in course order, checked by nbval.

`release --check` proves exercises/ is what nbgrader generates and test_solutions_execute.py that
the solution notebooks run; this module proves the release itself runs. nbval (``--nbval-lax``:
outputs are not compared, a cell that raises fails) executes fresh copies of the notebooks, one
kernel per notebook, in course order in one folder, so that each writes the workspace/ the next
reads. The kernel is this environment's Python with the folder as its working directory: the
autograder is importable only as installed, as under `make lab`.

- Untouched, no cell raises but those tagged ``raises-exception`` (nbval's cell tag): "try it"
  cells that call a function still a stub. Checkpoints report failed checks instead of raising;
  step 05's stop at the unfinished-Dockerfile gate, so nothing is built.
- Solved (``submissions.reference_submission``), with the tags stripped, no cell raises. This run
  is kept small, because test_solutions_execute.py executes the same code with papermill, which
  fails on any error whatever a cell's tags: every checkpoint at full points, 04's suite, 05's build
  (about 4.5 minutes for 00-04 under nbval here, plus 45 s for 05 with its image cached). So it
  covers the notebooks through the last one that has tagged cells, and skips the checkpoint
  cells: what it adds is that the release's own cells around solved code, the tagged ones first,
  run without error.
- An unexpected error (a setup cell importing a missing module) fails the run, tagged or not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import checks, course, images, progress
from autograder.submissions import reference_submission

NOTEBOOKS = [step.notebook for step in course.STEPS if step.notebook]
BLANK_FAILS_EVERYWHERE = ("01", "03", "04", "07")
RAISES = "raises-exception"  # nbval's tag (nbclient honours it too) for a cell allowed to raise
SKIP = "nbval-skip"
CELL_TIMEOUT = 300  # seconds; the slowest cell of the untouched run takes about 25 s here
RUN_TIMEOUT = 1800
# nbval's comment markers override cell tags, and stripping tags would not remove them.
COMMENT_MARKERS = re.compile(r"^\s*#\s*(NBVAL_\w+|PYTEST_VALIDATE_IGNORE_OUTPUT)\s*$", re.MULTILINE)
COLOURS = re.compile(r"\x1b\[[0-9;]*m")  # IPython colours the tracebacks nbval shows


def _released(name: str) -> nbformat.NotebookNode:
    return nbformat.read(str(course.EXERCISES_DIR / course.ASSIGNMENT / name), as_version=4)


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _tagged(cell: nbformat.NotebookNode) -> bool:
    return RAISES in cell.metadata.get("tags", [])


def _is_checkpoint(cell: nbformat.NotebookNode) -> bool:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "").startswith("checkpoint")


def _for_the_solved_run(notebook: nbformat.NotebookNode) -> int:
    """Strip ``raises-exception`` (a solved notebook has no excuse to raise) and skip the
    checkpoints (test_solutions_execute.py runs them); return how many cells are left to run."""
    left = 0
    for cell in _code_cells(notebook):
        tags = [tag for tag in cell.metadata.get("tags", []) if tag != RAISES]
        if _is_checkpoint(cell):
            tags.append(SKIP)
        else:
            left += 1
        cell.metadata["tags"] = tags
    return left


def _run_nbval(folder: Path, notebooks: list[str]) -> subprocess.CompletedProcess:
    # As `make lab` runs Jupyter: the environment's bin/ first on PATH (hadolint, nbgrader's alembic).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTEST_ADDOPTS", None)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "--nbval-current-env",
        f"--nbval-cell-timeout={CELL_TIMEOUT}",
        "-p",
        "no:cacheprovider",
        f"--rootdir={folder}",
        "--color=no",
        "-q",
        *notebooks,
    ]
    run = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    run.stdout = COLOURS.sub("", run.stdout)
    return run


def _shown(run: subprocess.CompletedProcess) -> str:
    return f"nbval exited {run.returncode}:\n{run.stdout[-8000:]}\n{run.stderr[-2000:]}"


def _all_ran(run: subprocess.CompletedProcess, cells: int) -> bool:
    """Every cell expected ran and passed: none skipped or missed, whatever nbval was told."""
    return run.returncode == 0 and re.search(rf"(?m)^{cells} passed\b", run.stdout) is not None


def test_only_plain_cells_of_the_release_may_raise():
    """A tag on a checkpoint would hide a checkpoint that raises instead of reporting; one on a
    solution cell would hide a broken ``%%writefile``; comment markers would survive stripping."""
    for name in NOTEBOOKS:
        for cell in _code_cells(_released(name)):
            if _tagged(cell):
                assert "nbgrader" not in cell.metadata, f"{name}: cell {cell.id} is graded or a solution"
            assert not COMMENT_MARKERS.search(cell.source), f"{name}: cell {cell.id} has an nbval comment marker"


@pytest.mark.slow
def test_the_untouched_release_runs_all(tmp_path):
    for name in NOTEBOOKS:
        shutil.copyfile(course.EXERCISES_DIR / course.ASSIGNMENT / name, tmp_path / name)
    run = _run_nbval(tmp_path, NOTEBOOKS)
    assert _all_ran(run, sum(len(_code_cells(_released(name))) for name in NOTEBOOKS)), _shown(run)
    # Step 05's checkpoints stopped at the gate: no image of this workspace, so no container either.
    assert images.last_image(tmp_path / course.WORKSPACE_NAME) == ""
    # The checkpoints graded the blank workspace: every check of the steps whose learner code
    # runs in probes failed with no points. (Their check tests grade faulty variants only.)
    recorded = progress.recorded_checks(tmp_path / course.WORKSPACE_NAME)
    for step_id in BLANK_FAILS_EVERYWHERE:
        for check in checks.for_step(step_id).checks:
            seen = recorded.get(step_id, {}).get(check.id)
            assert seen is not None, f"{check.id} is in no checkpoint"
            assert not seen["passed"] and seen["points"] == 0, f"{check.id} earned points on the blank release"


@pytest.mark.slow
def test_the_solved_release_raises_nowhere(tmp_path):
    tagged = [i for i, name in enumerate(NOTEBOOKS) if any(map(_tagged, _released(name).cells))]
    notebooks = NOTEBOOKS[: max(tagged, default=0) + 1]
    reference_submission(tmp_path)
    cells = 0
    for name in NOTEBOOKS:
        path = tmp_path / name
        if name not in notebooks:
            path.unlink()
            continue
        notebook = nbformat.read(str(path), as_version=4)
        cells += _for_the_solved_run(notebook)
        nbformat.write(notebook, str(path))
    run = _run_nbval(tmp_path, notebooks)
    assert _all_ran(run, cells), _shown(run)


@pytest.mark.slow
@pytest.mark.parametrize("tagged", [False, True], ids=["untagged", "tagged-then-stripped"])
def test_an_unexpected_error_fails_the_run(tmp_path, tagged):
    name = NOTEBOOKS[0]
    notebook = _released(name)
    setup = _code_cells(notebook)[0]
    # At the end of the cell, so that what it defines exists and no later cell fails with it.
    setup.source += "\nimport course_module_that_does_not_exist  # an edit broke the setup cell"
    if tagged:
        setup.metadata["tags"] = [RAISES]
    _for_the_solved_run(notebook)  # also skips the checkpoints: they are not what this case is about
    nbformat.write(notebook, str(tmp_path / name))
    run = _run_nbval(tmp_path, [name])
    assert run.returncode == 1, _shown(run)
    assert re.search(r"\b1 failed\b", run.stdout), _shown(run)
    assert f"FAILED {name}::Cell 0" in run.stdout, _shown(run)
    assert "ModuleNotFoundError: No module named 'course_module_that_does_not_exist'" in run.stdout, _shown(run)
