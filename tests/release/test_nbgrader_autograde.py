"""nbgrader as instructors use it, with the shipped nbgrader_config.py: ``generate_assignment``,
then ``autograde`` on hostile and broken submissions. No learner kernel runs (TrustedScores takes
Execute's place), so each submission gets the points ``grade`` computed outside it, whatever its
cells print, redefine or kill. ``grade-all --nbgrader-db`` writes the same scores.

Steps 00 and 02 (``--TrustedScores.steps``) keep the real nbgrader runs to a minute or two: what
they prove does not depend on the step.
"""

from __future__ import annotations

import copy
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import course, hidden, submissions
from autograder.checks import for_step
from autograder.reports import nbgrader_scores

STEPS = "00,02"
FULL = 8 + 13  # steps 00 and 02, hidden tests included
NB00, NB02 = "00-setup-and-orientation.ipynb", "02-configuration.ipynb"


def _directories(root: Path) -> list[str]:
    """nbgrader options that move everything of a course run under ``root``."""
    options = [f"--CourseDirectory.db_url=sqlite:///{root / 'gradebook.db'}"]
    for name in ("release", "submitted", "autograded", "feedback"):
        options.append(f"--CourseDirectory.{name}_directory={root / name}")
    return options


def _nbgrader(*arguments: str, root: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *arguments, *_directories(root)],
        cwd=course.REPO_ROOT,  # where nbgrader_config.py is
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def course_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nbgrader")
    _nbgrader("generate_assignment", course.ASSIGNMENT, "--force", root=root)
    return root


def _cells(notebook: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(notebook), as_version=4)


def _grade_cell(document, index: int = 0):
    return [c for c in document.cells if (c.metadata.get("nbgrader") or {}).get("grade")][index]


def _edit(notebook: Path, change) -> None:
    document = _cells(notebook)
    change(document)
    nbformat.write(document, str(notebook))


def _insert(source: str, at: int = 1):
    return lambda document: document.cells.insert(at, nbformat.v4.new_code_cell(source))


def _untouched(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for notebook in (course.EXERCISES_DIR / course.ASSIGNMENT).glob("*.ipynb"):
        shutil.copyfile(notebook, folder / notebook.name)
    return folder


def _split(document) -> None:
    cell = _grade_cell(document)
    # JupyterLab's split gives both halves the cell's metadata (the grade id included).
    half = nbformat.v4.new_code_cell("", metadata=copy.deepcopy(cell.metadata))
    document.cells.insert(document.cells.index(cell) + 1, half)


def _to_markdown(document) -> None:
    cell = _grade_cell(document)
    retyped = nbformat.v4.new_markdown_cell(cell.source, metadata=copy.deepcopy(cell.metadata))
    document.cells[document.cells.index(cell)] = retyped


def _delete(document) -> None:
    document.cells.remove(_grade_cell(document))


def _as_released(document) -> None:
    document.cells = _cells(course.EXERCISES_DIR / course.ASSIGNMENT / NB02).cells


def _edit_source(document) -> None:
    _grade_cell(document).source = "print('6/6 points')"


# learner -> (how their submission is made from a correct or untouched one, the score it deserves)
SUBMISSIONS = {
    "correct": ("correct", [], FULL),
    "untouched": ("untouched", [], 0),
    "partly-done": ("correct", [(NB02, _as_released)], 8),
    "hides-output": ("untouched", [(NB02, _insert('get_ipython().ast_node_interactivity = "none"'))], 0),
    "redefines-checkpoint": ("untouched", [(NB00, _insert("def checkpoint(*args, **kwargs):\n    return 6", 2))], 0),
    "edits-a-grade-cell": ("untouched", [(NB00, _edit_source)], 0),
    "deletes-a-grade-cell": ("correct", [(NB02, _delete)], FULL),
    "splits-a-grade-cell": ("correct", [(NB00, _split)], FULL),
    "retypes-a-grade-cell": ("correct", [(NB00, _to_markdown)], FULL),
    "kills-the-kernel": ("correct", [(NB00, _insert("import os\nos._exit(0)"))], FULL),
    "loops-forever": ("correct", [(NB02, _insert("while True:\n    pass"))], FULL),
}


def _make(folder: Path, base: str, changes) -> None:
    if base == "correct":
        submissions.reference_submission(folder)
    else:
        _untouched(folder)
    for name, change in changes:
        _edit(folder / name, change)


@pytest.mark.slow
def test_autograde_gives_every_submission_the_points_grade_computed(course_run):
    for learner, (base, changes, _) in SUBMISSIONS.items():
        _make(course_run / "submitted" / learner / course.ASSIGNMENT, base, changes)
    # A submitted workspace that says otherwise changes nothing either: the notebooks count.
    workspace = course_run / "submitted" / "correct" / course.ASSIGNMENT / "workspace"
    shutil.copytree(course.REFERENCE_WORKSPACE, workspace)
    (workspace / "service" / "config.py").write_text("raise NotImplementedError()\n")
    _nbgrader("autograde", course.ASSIGNMENT, f"--TrustedScores.steps={STEPS}", root=course_run)

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_run / 'gradebook.db'}") as gradebook:
        scores = {learner: gradebook.find_submission(course.ASSIGNMENT, learner).score for learner in SUBMISSIONS}
        # Tampering changes no score, but formgrader shows it: the notebook's first solution cell's comment.
        tampered = gradebook.find_submission_notebook(
            NB00.removesuffix(".ipynb"), course.ASSIGNMENT, "redefines-checkpoint"
        )
        comments = [c.auto_comment or "" for c in tampered.comments]
    assert scores == {learner: float(points) for learner, (_, _, points) in SUBMISSIONS.items()}
    assert any(f"Autograder: tampered with {NB00}: a cell redefines checkpoint()" in c for c in comments), comments
    graded = course_run / "autograded" / "hides-output" / course.ASSIGNMENT
    assert (graded / "course-grading" / "results.json").is_file()
    # The autograded notebook shows what the grader saw, and never the hidden tests' code.
    cells = [c for c in _cells(graded / NB02).cells if (c.metadata.get("nbgrader") or {}).get("grade")]
    assert all(c.outputs and c.outputs[-1]["data"]["text/plain"] == "0" for c in cells)
    assert not any(hidden.BEGIN in c.source for c in cells)
    assert "".join(cells[0].outputs[0]["text"]).startswith("failed 0/2  02.parsers: ")


@pytest.mark.slow
def test_without_a_docker_engine_the_live_cells_need_manual_grading(course_run, tmp_path):
    """Step 05's live checks cannot run: their cells earn nothing and formgrader lists them,
    while the Dockerfile's static checks and the hidden tests still grade."""
    submissions.reference_submission(course_run / "submitted" / "no-engine" / course.ASSIGNMENT)
    nowhere = {"DOCKER_HOST": f"unix://{tmp_path}/no-such-docker.sock"}
    _nbgrader(
        "autograde", course.ASSIGNMENT, "--student=no-engine", "--TrustedScores.steps=05", root=course_run, env=nowhere
    )
    from nbgrader.api import Gradebook

    notebook = course.step("05").notebook.removesuffix(".ipynb")
    with Gradebook(f"sqlite:///{course_run / 'gradebook.db'}") as gradebook:
        grades = {
            g.name: (g.score, g.max_score, g.needs_manual_grade)
            for g in gradebook.find_submission_notebook(notebook, course.ASSIGNMENT, "no-engine").grades
        }
    assert grades["checkpoint_dockerfile"] == (7, 7, False)
    assert grades["hidden_gunicorn"] == (2, 2, False)
    assert grades["checkpoint_serving"][0] == 0 and grades["checkpoint_serving"][2] is True
    assert grades["checkpoint_production"][0] == 0 and grades["checkpoint_production"][2] is True


@pytest.mark.slow
def test_grade_all_writes_its_scores_into_nbgraders_gradebook(course_run, tmp_path):
    batch = tmp_path / "submitted"
    submissions.reference_submission(batch / "ada")
    _untouched(batch / "bob")
    url = f"sqlite:///{course_run / 'gradebook.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "grade-all", str(batch), "--out", str(tmp_path / "out")]
        + ["--steps", STEPS, "--nbgrader-db", url],
        capture_output=True,
        text=True,
        cwd=course.REPO_ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    from nbgrader.api import Gradebook

    with Gradebook(url) as gradebook:
        assert gradebook.find_submission(course.ASSIGNMENT, "ada").score == FULL
        assert gradebook.find_submission(course.ASSIGNMENT, "bob").score == 0
    exported = tmp_path / "grades.csv"
    subprocess.run(
        [sys.executable, "-m", "nbgrader", "export", f"--to={exported}", f"--CourseDirectory.db_url={url}"],
        cwd=course.REPO_ROOT,
        check=True,
        capture_output=True,
    )
    rows = {row["student_id"]: row for row in csv.DictReader(exported.open())}
    assert float(rows["ada"]["score"]) == FULL and float(rows["bob"]["score"]) == 0


def test_a_gradebook_without_the_assignment_says_what_to_run(tmp_path):
    from autograder.errors import AutograderError

    with pytest.raises(AutograderError) as raised:
        nbgrader_scores.write_gradebook([], f"sqlite:///{tmp_path / 'empty.db'}")
    assert "generate_assignment" in raised.value.hint


@pytest.mark.parametrize("step", [s for s in course.STEPS if s.notebook], ids=lambda s: s.id)
def test_each_grade_cell_is_worth_what_its_checks_are(step):
    """A checkpoint cell's nbgrader points are its checks' points, a hidden-test cell's are the
    hidden tests': so the trusted score always fits the cell."""
    checks = {c.id: c.max_points for c in for_step(step.id).checks}
    cells = nbgrader_scores.grade_cells(step.notebook)
    assert cells
    for grade_id, (points, cell_step, only) in cells.items():
        assert cell_step == step.id
        if only == []:
            assert points == hidden.cells()[step.id].points, grade_id
        else:
            assert points == sum(checks[f"{step.id}.{name}"] for name in only), grade_id
    covered = [name for _, _, only in cells.values() for name in only or []]
    assert sorted(f"{step.id}.{name}" for name in covered) == sorted(checks), "every check is in one cell"


def test_cells_of_a_submission_not_graded_earn_nothing_and_say_why():
    scores = nbgrader_scores.cell_scores(None, NB00, why_not="over 3600 s")
    assert scores and all(s.score == 0 and "over 3600 s" in s.text for s in scores.values())


def test_the_configuration_makes_the_folder_of_nbgraders_gradebook(tmp_path, monkeypatch):
    """nbgrader creates its database file but not the folder: on an empty machine its first
    command failed with "unable to open database file"."""
    from traitlets.config import Config

    from autograder.release import nbgrader_setup

    monkeypatch.setattr(nbgrader_setup, "NBGRADER_DIR", tmp_path / "build" / "nbgrader")
    nbgrader_setup.configure(Config())
    assert (tmp_path / "build" / "nbgrader").is_dir()
