"""Step 04's checks grade a learner's test suite: a strong suite scores everything, an empty one
nothing, a partial one its share, and a suite that fails on the correct service never profits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autograder import course
from autograder.checks import step04_testing
from autograder.checks.result import Verdict
from autograder.grading import grade_step

# Every grading runs a whole campaign of test-suite runs. `make test` hands each module to one
# worker (--dist loadscope), so its module fixtures (the reference suite's campaign) run once.
pytestmark = pytest.mark.slow

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


# The reference suite earning every point (all ten faulty variants caught) is proven by the
# solution notebook's checkpoint (tests/course/test_solutions_execute.py), and the untouched
# suite earning nothing by the release's Run All (tests/course/test_exercises_nbval.py): each
# campaign takes over a minute.


@pytest.fixture
def few_variants(monkeypatch):
    """Grade against only the named faulty variants: each costs a run of the suite (seconds of
    PyTorch's import in a fresh sandbox), and what a test asserts needs only a few."""
    from autograder import variants

    def keep(*names: str) -> None:
        every = variants.load()
        chosen = [v for v in every if v.name in names]
        assert len(chosen) == len(names), f"no variant named {set(names) - {v.name for v in every}}"
        monkeypatch.setattr(variants, "load", lambda path=None: chosen)

    return keep


def test_an_empty_suite_scores_zero(suite_workspace):
    results = by_id(grade_step("04", suite_workspace({})))
    assert results["04.suite-structure"].passed  # the fixtures alone are fine...
    assert not results["04.passes-on-reference"].passed
    assert "collected no tests" in results["04.passes-on-reference"].message
    assert results["04.catches-faulty-variants"].points == 0  # ...but they catch nothing


def test_a_partial_suite_scores_its_share_and_is_told_what_it_missed(
    suite_workspace, reference_workspace, few_variants
):
    few_variants("unsorted-top-k", "top-k-ignored", "ready-before-the-model", "no-request-id-header")
    predict_tests = (reference_workspace / "tests" / "test_predict.py").read_text()
    results = by_id(grade_step("04", suite_workspace({"test_predict.py": predict_tests})))
    assert results["04.passes-on-reference"].passed
    variants = results["04.catches-faulty-variants"]
    assert variants.verdict is Verdict.FAILED and variants.points == variants.max_points / 2
    assert "caught 2 of 4" in variants.message
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


def test_without_the_hidden_variants_they_are_skipped_never_passed(reference_workspace, monkeypatch, tmp_path):
    """A learner's repository: the suite still runs on the reference, the faulty services are skipped."""
    monkeypatch.setattr(course, "FAULTY_VARIANTS", tmp_path / "absent.toml")
    results = by_id(grade_step("04", reference_workspace, only=["passes-on-reference", "catches-faulty-variants"]))
    assert results["04.passes-on-reference"].passed
    variants = results["04.catches-faulty-variants"]
    assert variants.verdict is Verdict.SKIPPED and variants.points == 0 and "instructor" in variants.message


def test_without_a_reference_service_the_suite_is_skipped_never_passed(reference_workspace, monkeypatch, tmp_path):
    monkeypatch.setattr(course, "REFERENCE_WORKSPACE", tmp_path / "absent")
    results = by_id(grade_step("04", reference_workspace, only=["passes-on-reference", "catches-faulty-variants"]))
    for result in results.values():
        assert result.verdict is Verdict.SKIPPED and result.points == 0
        assert "reference/" in result.message


# Suites that game the grading instead of testing; each earns nothing it did not test for.
STATEFUL_SUITE = """
import pathlib

HIDDEN = pathlib.Path("{hidden}")
MARKERS = [pathlib.Path("/tmp/.graded-before"), pathlib.Path.home() / ".graded-before",
           pathlib.Path(".graded-before"), pathlib.Path(__file__).parent / ".graded-before"]


def seen_before():
    seen = any(marker.exists() for marker in MARKERS)
    for marker in MARKERS:
        try:
            marker.write_text("graded")
        except OSError:
            pass
    for attempt in (lambda: (HIDDEN.parent / "planted.toml").write_text("x"),
                    lambda: pathlib.Path("/tmp/variants.toml").write_text(HIDDEN.read_text())):
        try:
            attempt()
        except OSError:
            pass
    return seen


FIRST_RUN = not seen_before()
"""


# The fixtures suite-structure asks for, none of which loads the model.
_FIXTURES = """import pytest


@pytest.fixture
def app():
    return None


@pytest.fixture
def client(app):
    return None


@pytest.fixture
def make_image():
    return None
"""


def _tests(count: int, body: str) -> str:
    return "".join(f"\n\ndef test_{index}():\n    {body}\n" for index in range(count))


def test_a_suite_that_remembers_earlier_runs_catches_nothing(suite_workspace):
    """Pass the first time, fail once a marker exists; and try to read and write hidden/."""
    hidden_before = {p.name: p.read_bytes() for p in course.FAULTY_VARIANTS.parent.iterdir()}
    source = STATEFUL_SUITE.format(hidden=course.FAULTY_VARIANTS) + _tests(8, "assert FIRST_RUN")
    # Without the reference conftest: no model to load, each run takes a second.
    workspace = suite_workspace({"test_state.py": source}, conftest=False)
    (workspace / "tests" / "conftest.py").write_text(_FIXTURES)
    results = by_id(grade_step("04", workspace))
    assert results["04.passes-on-reference"].passed  # every run is its first: it always passes...
    assert results["04.catches-faulty-variants"].points == 0  # ...and so never catches anything
    assert {p.name: p.read_bytes() for p in course.FAULTY_VARIANTS.parent.iterdir()} == hidden_before
    assert not Path("/tmp/.graded-before").exists() and not Path("/tmp/variants.toml").exists()


FORGED_REPORT_CONFTEST = '''
import pathlib
import pytest

REPORT = """<?xml version="1.0"?><testsuites><testsuite tests="8" failures="0" errors="0" skipped="0"/></testsuites>"""


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    session.exitstatus = 0  # every run "passes", whatever the tests said


def pytest_unconfigure(config):
    path = config.option.xmlpath
    if path:
        pathlib.Path(path).write_text(REPORT)
'''


def test_a_suite_that_forges_its_report_gains_nothing(suite_workspace):
    workspace = suite_workspace({"test_fails.py": _tests(8, "assert False, 'no real test'")}, conftest=False)
    (workspace / "tests" / "conftest.py").write_text(_FIXTURES + FORGED_REPORT_CONFTEST)
    results = by_id(grade_step("04", workspace))
    # Forcing "passed" is worth what eight trivial passing tests are worth, and catches nothing.
    assert results["04.catches-faulty-variants"].points == 0
    assert results["04.passes-on-reference"].points <= 2


def _function_digests(reference_workspace) -> dict:
    """module -> {function -> sha256 of its bytecode}, for the reference's top-level functions."""
    import hashlib
    import types

    digests = {}
    for path in sorted((reference_workspace / "service").glob("*.py")):
        code = compile(path.read_text(), f"service/{path.name}", "exec")
        digests[path.stem] = {
            c.co_name: hashlib.sha256(c.co_code).hexdigest() for c in code.co_consts if isinstance(c, types.CodeType)
        }
    return digests


def test_a_suite_that_recognises_the_reference_by_its_bytecode_fails(suite_workspace, reference_workspace):
    """Its tests pass when every function's bytecode is the reference's: on the reference, and on
    no rewritten copy."""
    source = (
        f"import hashlib, importlib\nKNOWN = {_function_digests(reference_workspace)!r}\n\n"
        "def same_as_reference():\n"
        "    for name, functions in KNOWN.items():\n"
        "        module = importlib.import_module('service.' + name)\n"
        "        for function, digest in functions.items():\n"
        "            code = getattr(getattr(module, function, None), '__code__', None)\n"
        "            if code is not None and hashlib.sha256(code.co_code).hexdigest() != digest:\n"
        "                return False\n"
        "    return True\n" + _tests(8, "assert same_as_reference()")
    )
    workspace = suite_workspace({"test_fingerprint.py": source}, conftest=False)
    (workspace / "tests" / "conftest.py").write_text(_FIXTURES)
    results = by_id(grade_step("04", workspace))
    assert not results["04.passes-on-reference"].passed
    assert "written differently" in results["04.passes-on-reference"].message
    assert results["04.catches-faulty-variants"].points == 0


# The red team's suite: normalise each service file (drop the statements a disguise adds, then
# ast.unparse) and compare it with the reference `catch-up 04` hands out, read through the file or
# through inspect. Its tests pass on a service that normalises to the reference and fail on any
# other: controls and variants told apart by source, not behaviour.
NORMALISING_SUITE = """
import ast, importlib, inspect, pathlib, re

REFERENCE = {reference!r}
ADDED = re.compile(r"^_[a-z]+_[0-9]+$|^_c[0-9a-f]{{10}}$")


def normalised(text):
    tree = ast.parse(text)
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if isinstance(statements, list):
                setattr(node, field, [
                    s for s in statements
                    if not (isinstance(s, ast.Assign) and len(s.targets) == 1
                            and isinstance(s.targets[0], ast.Name) and ADDED.match(s.targets[0].id))
                ] or statements)
    return ast.unparse(tree)


def source_of(name):
    path = pathlib.Path("service") / (name + ".py")
    if path.exists():
        return path.read_text()
    return inspect.getsource(importlib.import_module("service." + name))


def same_as_reference():
    return all(normalised(source_of(name)) == normalised(text) for name, text in REFERENCE.items())
"""


def test_a_suite_that_normalises_the_source_cannot_tell_controls_from_variants(suite_workspace, reference_workspace):
    reference = {p.stem: p.read_text() for p in sorted((reference_workspace / "service").glob("*.py"))}
    source = NORMALISING_SUITE.format(reference=reference) + _tests(8, "assert same_as_reference()")
    workspace = suite_workspace({"test_normalise.py": source}, conftest=False)
    (workspace / "tests" / "conftest.py").write_text(_FIXTURES)
    results = by_id(grade_step("04", workspace))
    # The service under test is bytecode only: there is no source to normalise, so the suite
    # fails on the reference itself and catches nothing.
    assert not results["04.passes-on-reference"].passed
    assert results["04.catches-faulty-variants"].points == 0


def test_a_suite_that_hangs_instead_of_failing_catches_nothing(suite_workspace, monkeypatch, few_variants):
    few_variants("wrong-status-for-non-images", "unsorted-top-k")
    monkeypatch.setenv("COURSE_PROBE_TIMEOUT", "25")
    hangs = (
        "import time\n\n"
        "def test_text_is_refused_with_415(client):\n"
        "    answer = client.post('/predict', data=b'hello', content_type='text/plain')\n"
        "    while answer.status_code != 415:\n"
        "        time.sleep(1)  # a fault, noticed: hang instead of failing\n" + _tests(7, "assert True")
    )
    results = by_id(grade_step("04", suite_workspace({"test_hang.py": hangs})))
    assert results["04.passes-on-reference"].passed
    variants = results["04.catches-faulty-variants"]
    assert variants.points == 0 and "did not finish" in variants.message
    assert "400 instead of 415" in variants.message  # the one it noticed, not counted as caught
