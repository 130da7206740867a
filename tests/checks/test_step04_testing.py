"""Step 04's checks grade a learner's test suite: a strong suite scores everything, an empty one
nothing, a partial one its share, and a suite that fails on the correct service never profits."""

from __future__ import annotations

import shutil

import pytest

from autograder import course
from autograder.checks import step04_testing
from autograder.checks.result import Verdict
from autograder.grading import grade_step

STEP_ID = "04"
CHECK_IDS = [check.id for check in step04_testing.STEP.checks]


def by_id(report):
    return {r.id: r for r in report.results}


@pytest.fixture
def suite_workspace(tmp_path, reference_workspace):
    """A workspace with the reference service and only the given test files (name -> source)."""

    def make(files: dict[str, str], *, conftest: bool = True):
        workspace = tmp_path / "workspace"
        shutil.copytree(reference_workspace, workspace, ignore=shutil.ignore_patterns("tests"))
        (workspace / "tests").mkdir()
        if conftest:
            shutil.copy(reference_workspace / "tests" / "conftest.py", workspace / "tests" / "conftest.py")
        for name, source in files.items():
            (workspace / "tests" / name).write_text(source)
        return workspace

    return make


@pytest.mark.parametrize("check_id", CHECK_IDS)
def test_the_reference_suite_earns_every_point(reference_results, check_id):
    assert reference_results[check_id].verdict is Verdict.PASSED, reference_results[check_id].message


def test_the_reference_suite_catches_every_faulty_variant(reference_results):
    result = reference_results["04.catches-faulty-variants"]
    assert result.points == result.max_points == 8
    assert dict(result.figures)["caught"] == "10/10"


@pytest.mark.parametrize("check_id", CHECK_IDS)
def test_the_untouched_student_suite_earns_nothing(blank_results, check_id):
    assert blank_results[check_id].verdict is Verdict.FAILED and blank_results[check_id].points == 0
    assert blank_results[check_id].hint


def test_an_empty_suite_scores_zero(suite_workspace):
    results = by_id(grade_step("04", suite_workspace({})))
    assert results["04.suite-structure"].passed  # the fixtures alone are fine...
    assert not results["04.passes-on-reference"].passed
    assert "collected no tests" in results["04.passes-on-reference"].message
    assert results["04.catches-faulty-variants"].points == 0  # ...but they catch nothing


def test_a_partial_suite_scores_its_share_and_is_told_what_it_missed(suite_workspace, reference_workspace):
    predict_tests = (reference_workspace / "tests" / "test_predict.py").read_text()
    results = by_id(grade_step("04", suite_workspace({"test_predict.py": predict_tests})))
    assert results["04.passes-on-reference"].passed
    variants = results["04.catches-faulty-variants"]
    assert variants.verdict is Verdict.FAILED and 0 < variants.points < variants.max_points
    assert "caught 4 of 10" in variants.message
    assert "/ready answers 200 while the model is still loading" in variants.message  # the behaviour...
    assert "ready-before-the-model" not in variants.message  # ...never the variant's internal name


def test_a_suite_that_fails_on_the_correct_service_catches_nothing(suite_workspace):
    always_fails = "def test_everything_is_broken(client):\n    assert client.get('/health').status_code == 500\n"
    results = by_id(grade_step("04", suite_workspace({"test_wrong.py": always_fails})))
    assert not results["04.passes-on-reference"].passed
    assert "1 failed" in results["04.passes-on-reference"].message
    assert results["04.catches-faulty-variants"].points == 0
    assert "must pass on the reference service first" in results["04.catches-faulty-variants"].message


def test_a_suite_that_hangs_is_stopped(suite_workspace, monkeypatch):
    monkeypatch.setenv("COURSE_PROBE_TIMEOUT", "20")
    hangs = "import time\n\ndef test_forever():\n    time.sleep(3600)\n"
    report = grade_step("04", suite_workspace({"test_hang.py": hangs}, conftest=False), only=["passes-on-reference"])
    assert "did not finish" in report.results[0].message


def test_missing_fixtures_are_named(suite_workspace):
    workspace = suite_workspace({}, conftest=False)
    (workspace / "tests" / "conftest.py").write_text("import pytest\n\n@pytest.fixture\ndef app():\n    return None\n")
    result = grade_step("04", workspace, only=["suite-structure"]).results[0]
    assert not result.passed and "client" in result.message


def test_without_the_hidden_variants_the_step_is_skipped_never_passed(reference_workspace, monkeypatch, tmp_path):
    monkeypatch.setattr(course, "FAULTY_VARIANTS", tmp_path / "absent.toml")
    results = by_id(grade_step("04", reference_workspace, only=["passes-on-reference", "catches-faulty-variants"]))
    for result in results.values():
        assert result.verdict is Verdict.SKIPPED and result.points == 0
        assert "solutions/" in result.message
