"""Registering checks per step and running them into CheckResults."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from autograder.checks.context import Context
from autograder.checks.result import Check, CheckResult, Outcome, Verdict


class StepChecks:
    """The ordered checks of one step. Modules create one and decorate their check functions."""

    def __init__(self, step_id: str):
        self.step_id = step_id
        self.checks: list[Check] = []

    def check(self, name: str, title: str, *, points: float, hint: str) -> Callable:
        def register(function: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
            check_id = f"{self.step_id}.{name}"
            if any(c.id == check_id for c in self.checks):
                raise ValueError(f"duplicate check id {check_id}")
            self.checks.append(Check(check_id, title, points, hint, function))
            return function

        return register

    @property
    def max_points(self) -> float:
        return sum(c.max_points for c in self.checks)

    def run(self, context: Context, only: Iterable[str] | None = None) -> list[CheckResult]:
        wanted = set(only) if only else None
        results = []
        for check in self.checks:
            if wanted is not None and check.id not in wanted and check.id.split(".", 1)[1] not in wanted:
                continue
            results.append(run_one(check, context))
        return results


def run_one(check: Check, context: Context) -> CheckResult:
    try:
        outcome = check.function(context)
    except Exception as error:  # a bug in the checker must not hide the other checks' verdicts
        outcome = Outcome.fail(f"the checker itself failed ({type(error).__name__}: {error}); please report it")
    if outcome.skipped:
        verdict, points = Verdict.SKIPPED, 0.0
    elif outcome.passed:
        verdict, points = Verdict.PASSED, check.max_points
    else:
        verdict, points = Verdict.FAILED, round(check.max_points * (outcome.score or 0.0), 2)
    return CheckResult(
        id=check.id,
        title=check.title,
        verdict=verdict,
        points=points,
        max_points=check.max_points,
        message=outcome.message,
        hint="" if verdict is Verdict.PASSED else check.hint,
        figures=outcome.figures,
    )
