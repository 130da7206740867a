"""progress shows each step's state; catch-up restores earlier steps and never loses a learner's file."""

from __future__ import annotations

import pytest

from autograder import checks, course, progress
from autograder.checks.result import CheckResult, Verdict
from autograder.errors import AutograderError
from autograder.grading import StepReport


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))


def _report(step_id: str, *, failing: tuple[str, ...] = (), only: tuple[str, ...] = ()) -> StepReport:
    results = []
    for check in checks.for_step(step_id).checks:
        if only and check.id not in only:
            continue
        passed = check.id not in failing
        verdict = Verdict.PASSED if passed else Verdict.FAILED
        results.append(
            CheckResult(check.id, check.title, verdict, check.max_points if passed else 0.0, check.max_points)
        )
    return StepReport(course.step(step_id), results)


def test_step_files_come_from_the_solution_notebook():
    assert progress.step_files(course.step("00")) == [
        "service/__init__.py",
        "requirements.txt",
        "pyproject.toml",
        ".gitignore",
    ]
    assert progress.step_files(course.step("01")) == [
        "service/imaging.py",
        "service/weights.py",
        "service/model.py",
    ]
    assert progress.step_files(course.step("03")) == [
        "service/problems.py",
        "service/metrics.py",
        "service/logs.py",
        "service/openapi.py",
        "service/app.py",
    ]
    assert progress.step_files(course.step("04")) == [
        "tests/conftest.py",
        "tests/test_predict.py",
        "tests/test_errors.py",
        "tests/test_operations.py",
    ]
    assert progress.step_files(course.step("05")) == [
        ".dockerignore",
        "gunicorn.conf.py",
        "Dockerfile",
        "weights/README.md",
    ]


def test_progress_moves_from_not_started_to_done(tmp_path):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    status = {s.step.id: s for s in progress.progress(workspace)}
    assert status["01"].state == "not started"
    (workspace / "service").mkdir()
    (workspace / "service" / "model.py").write_text("x = 1\n")
    first = {s.step.id: s for s in progress.progress(workspace)}["01"]
    assert first.state == "not checked" and first.detail == "1/3 files written"
    # A checkpoint that ran two checks, one failing: in progress, the rest not run yet.
    progress.record(
        workspace,
        _report(
            "01", failing=("01.to-rgb-all-modes",), only=("01.to-rgb-all-modes", "01.preprocess-matches-torchvision")
        ),
    )
    partial = {s.step.id: s for s in progress.progress(workspace)}["01"]
    assert partial.state == "in progress"
    assert partial.detail == "2/13 points; failing: 01.to-rgb-all-modes; 6 check(s) not run yet"
    progress.record(workspace, _report("01"))
    done = {s.step.id: s for s in progress.progress(workspace)}["01"]
    assert done.state == "done" and done.detail == "13/13 points"


def test_a_file_rewritten_as_it_was_is_not_a_change(tmp_path):
    """Running a notebook's %%writefile cells again rewrites the same content: nothing changed."""
    import os
    import time

    workspace = tmp_path / "workspace"
    (workspace / "service").mkdir(parents=True)
    model = workspace / "service" / "model.py"
    model.write_text("same\n")
    progress.record(workspace, _report("01"))
    model.write_text("same\n")
    later = time.time() + 5
    os.utime(model, (later, later))
    status = {s.step.id: s for s in progress.progress(workspace)}["01"]
    assert "files changed" not in status.detail


def test_progress_notices_files_changed_since_the_last_check(tmp_path):
    workspace = tmp_path / "workspace"
    (workspace / "service").mkdir(parents=True)
    progress.record(workspace, _report("01"))
    model = workspace / "service" / "model.py"
    model.write_text("changed\n")
    import os
    import time

    later = time.time() + 5
    os.utime(model, (later, later))
    status = {s.step.id: s for s in progress.progress(workspace)}["01"]
    assert "files changed since the last check" in status.detail


def test_catch_up_creates_missing_files_and_backs_up_the_learners(tmp_path):
    workspace = tmp_path / "workspace"
    (workspace / "service").mkdir(parents=True)
    mine = workspace / "service" / "model.py"
    mine.write_text("# my own attempt\n")
    changes = {c.path: c for c in progress.catch_up("05", workspace)}
    assert changes["service/model.py"].action == "replaced"
    backup = workspace / changes["service/model.py"].backup
    assert backup.read_text() == "# my own attempt\n"
    assert changes["tests/conftest.py"].action == "created"
    assert "Dockerfile" not in changes, "step 05's own files are the learner's to write"
    assert mine.read_bytes() == (course.REFERENCE_WORKSPACE / "service" / "model.py").read_bytes()
    again = progress.catch_up("05", workspace)
    assert {c.action for c in again} == {"unchanged"}, "a second catch-up changes nothing"


def test_catch_up_never_hands_out_a_later_steps_version_of_a_file(tmp_path):
    """Notebook 06 rewrites metrics.py and gunicorn.conf.py: catching up to 06 gives the versions
    notebooks 03 and 05 write, not 06's solution."""
    workspace = tmp_path / "workspace"
    progress.catch_up("06", workspace)
    assert "def on_starting" not in (workspace / "gunicorn.conf.py").read_text()
    assert "multiprocess" not in (workspace / "service" / "metrics.py").read_text()
    assert "def on_starting" in (course.REFERENCE_WORKSPACE / "gunicorn.conf.py").read_text()


def test_catch_up_to_the_first_step_is_refused(tmp_path):
    with pytest.raises(AutograderError, match="first step"):
        progress.catch_up("00", tmp_path)


def test_catch_up_with_an_incomplete_reference_says_how_to_fix_it(tmp_path):
    empty_reference = tmp_path / "reference"
    empty_reference.mkdir()
    with pytest.raises(AutograderError, match="run-solutions"):
        progress.catch_up("05", tmp_path / "workspace", reference=empty_reference)
    assert not (tmp_path / "workspace" / "service").exists()


def test_step_files_fall_back_to_the_student_release(monkeypatch, tmp_path):
    monkeypatch.setattr(course, "SOLUTIONS_DIR", tmp_path / "no-solutions-here")
    assert progress.step_files(course.step("02")) == ["service/config.py"]


def test_a_grading_that_never_finished_shows_as_not_graded(tmp_path):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    progress.record(workspace, _report("01"))
    with pytest.raises(KeyboardInterrupt):
        with progress.grading(workspace, "01"):
            raise KeyboardInterrupt  # or SIGKILL: nothing after this line runs either
    status = {s.step.id: s for s in progress.progress(workspace)}["01"]
    assert status.state == "not graded" and "did not finish" in status.detail
    progress.record(workspace, _report("01"))
    assert {s.step.id: s for s in progress.progress(workspace)}["01"].state == "done"


def test_history_entries_not_signed_by_the_autograder_are_ignored(tmp_path):
    import json

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    progress.record(workspace, _report("01", failing=("01.topk-contract",)))
    history = progress._history_file(workspace)
    data = json.loads(history.read_text())
    data["01"]["checks"]["01.topk-contract"] = {"passed": True, "points": 2}  # edited by hand
    history.write_text(json.dumps(data))
    status = {s.step.id: s for s in progress.progress(workspace)}
    assert status["01"].state == "not started" and "1 history entries ignored" in status["00"].detail


def _key_of_a_fresh_process(queue) -> None:
    queue.put(progress._key().hex())


def test_gradings_starting_side_by_side_agree_on_one_signing_key(tmp_path):
    """Each process that finds no key makes one; only the first reaches the cache, and every
    process then signs with it (an overwritten key would void the other processes' entries)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_key_of_a_fresh_process, args=(queue,)) for _ in range(6)]
    for worker in workers:
        worker.start()
    keys = {queue.get(timeout=60) for _ in workers}
    for worker in workers:
        worker.join(timeout=60)
    assert len(keys) == 1
    assert keys == {progress._key().hex()}
    assert [p.name for p in (tmp_path / "cache" / "results").iterdir()] == ["history.key"]
