"""Helpers shared by the per-step check tests."""

from __future__ import annotations

import pytest

from autograder.checks.result import Verdict
from autograder.grading import grade_step


@pytest.fixture(scope="module")
def reference_results(request, reference_workspace):
    """Results of the module's step (its STEP_ID) on the reference workspace, by check id."""
    return {r.id: r for r in grade_step(request.module.STEP_ID, reference_workspace).results}


@pytest.fixture(scope="module")
def blank_results(request, blank_workspace):
    """Results of the module's step on the untouched student workspace, by check id."""
    return {r.id: r for r in grade_step(request.module.STEP_ID, blank_workspace).results}


@pytest.fixture
def assert_variant_caught(make_workspace):
    """Grade one faulty variant of the reference workspace: the named check must fail, saying why."""

    def check(step_id: str, variant: str, spec: tuple) -> None:
        check_id, edits, expected_message = spec
        result = grade_step(step_id, make_workspace(*edits, name=variant), only=[check_id]).results[0]
        assert result.id == check_id
        assert result.verdict is Verdict.FAILED, f"{variant} passed {check_id}: {result.message}"
        assert expected_message in result.message
        assert result.hint, "a failing check always carries a hint"

    return check
