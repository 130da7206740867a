"""The repository learners get: the course without what grades them, and it works on its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autograder import course
from autograder.errors import ReleaseError
from autograder.release import learner_repo


def _autograder(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """The learners' repository's own autograder (run from its root, it is the one imported)."""
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=repo, capture_output=True, text=True)


@pytest.fixture(scope="module")
def with_reference(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("learners") / "course"
    learner_repo.write(repo, with_reference=True)
    return repo


def test_it_holds_nothing_that_grades_or_solves(with_reference):
    names = {p.relative_to(with_reference).as_posix() for p in with_reference.rglob("*")}
    assert not [n for n in names if n.startswith(("solutions", "tests", ".ci", "benchmarks", "build"))]
    assert "course_docs/instructors.md" not in names and "nbgrader_config.py" not in names
    assert not [n for n in names if "hidden" in n.split("/") or n.endswith(("faulty-variants.toml", ".pyc"))]
    notebooks = [n for n in names if n.endswith(".ipynb")]
    assert notebooks and not [n for n in notebooks if "BEGIN SOLUTION" in _text(with_reference / n)]
    assert not [n for n in notebooks if "BEGIN HIDDEN TESTS" in _text(with_reference / n)]
    for step in course.STEPS:
        assert f"exercises/{course.ASSIGNMENT}/{step.notebook}" in names
    assert "reference/workspace/service/app.py" in names and "README.md" in names


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() and path.stat().st_size < 5_000_000 else ""


def test_its_own_autograder_catches_up_and_checks(with_reference, tmp_path):
    workspace = tmp_path / "workspace"
    where = _autograder(with_reference, "catch-up", "01", "--workspace", str(workspace))
    assert where.returncode == 0, where.stdout + where.stderr
    checked = _autograder(with_reference, "check", "00", "--workspace", str(workspace))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "6/6  total" in checked.stdout


def test_without_the_reference_catch_up_says_whom_to_ask(tmp_path):
    repo = tmp_path / "course"
    learner_repo.write(repo)
    assert not (repo / "reference").exists()
    where = _autograder(repo, "catch-up", "02", "--workspace", str(tmp_path / "workspace"))
    assert where.returncode == 2 and "instructor" in where.stderr


def test_it_is_never_written_over_something(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(ReleaseError, match="not empty"):
        learner_repo.write(tmp_path / "taken")
    with pytest.raises(ReleaseError, match="inside this repository"):
        learner_repo.write(course.REPO_ROOT / "build" / "learners")


def test_run_from_its_root_it_is_its_own_autograder_that_runs(with_reference):
    found = subprocess.run(
        [sys.executable, "-c", "import autograder.course as c; print(c.REFERENCE_WORKSPACE)"],
        cwd=with_reference,
        capture_output=True,
        text=True,
    )
    assert found.stdout.strip() == str(with_reference / "reference" / "workspace"), found.stderr


def test_its_makefile_has_only_what_works_there(with_reference):
    assert subprocess.run(["make", "-n", "lab"], cwd=with_reference, capture_output=True).returncode == 0
    for instructors_only in ("test", "demo", "run-solutions", "release"):
        assert subprocess.run(["make", "-n", instructors_only], cwd=with_reference, capture_output=True).returncode
    refused = _autograder(with_reference, "run-solutions")
    assert refused.returncode == 2 and "learners' repository" in refused.stderr and "Traceback" not in refused.stderr
