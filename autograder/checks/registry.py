"""Registering checks per step and running them into CheckResults."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from autograder import interrupts
from autograder.checks.context import Context, Unavailable, WorkspaceFileProblem
from autograder.checks.result import RESOURCES, Check, CheckResult, Outcome, Verdict, printable
from autograder.errors import ContainerError


class StepChecks:
    """The checks of one step. Modules create one and decorate their check functions; they run
    in registration order, except that checks marked ``last`` run after all the others."""

    def __init__(self, step_id: str):
        self.step_id = step_id
        self.checks: list[Check] = []

    def check(
        self, name: str, title: str, *, points: float, hint: str, needs: tuple[str, ...] = (), last: bool = False
    ) -> Callable:
        unknown = set(needs) - set(RESOURCES)
        if unknown:
            raise ValueError(f"check {name} needs unknown resources {sorted(unknown)}; known: {RESOURCES}")

        def register(function: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
            check_id = f"{self.step_id}.{name}"
            if any(c.id == check_id for c in self.checks):
                raise ValueError(f"duplicate check id {check_id}")
            self.checks.append(Check(check_id, title, points, hint, function, tuple(needs), last))
            return function

        return register

    @property
    def max_points(self) -> float:
        return sum(c.max_points for c in self.checks)

    def ordered(self) -> list[Check]:
        return sorted(self.checks, key=lambda check: check.last)  # stable: registration order otherwise

    def selected(self, only: Iterable[str] | None = None) -> list[Check]:
        wanted = set(only) if only else None
        return [
            check
            for check in self.ordered()
            if wanted is None or check.id in wanted or check.id.split(".", 1)[1] in wanted
        ]

    def run(self, context: Context, only: Iterable[str] | None = None) -> list[CheckResult]:
        results = []
        for check in self.selected(only):
            interrupts.raise_if_interrupted()
            results.append(run_one(check, context))
        return results


def run_one(check: Check, context: Context) -> CheckResult:
    try:
        for need in check.needs:
            context.resource(need)
        outcome = check.function(context)
    except Unavailable as missing:
        outcome = missing.outcome
    except WorkspaceFileProblem as problem:
        outcome = Outcome.fail(str(problem))
    except ContainerError as error:  # a running service or stack stopped answering the grader
        outcome = Outcome.fail(str(error))
    except Exception as error:  # a bug in the checker must not hide the other checks' verdicts
        if type(error).__module__.split(".")[0] in ("requests", "urllib3"):
            outcome = Outcome.fail(f"the service did not answer the grader's request ({type(error).__name__}: {error})")
        else:
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
        # Messages quote what learner code printed or answered: never raw control characters.
        message=printable(outcome.message),
        hint="" if verdict is Verdict.PASSED else check.hint,
        figures=tuple((name, printable(value, limit=500)) for name, value in outcome.figures),
    )
