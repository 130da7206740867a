"""Step 04, testing the service: grades the learner's pytest suite, not their service.

The suite must pass on the reference service, and it is then run against faulty variants of that
service (hidden in solutions/): its score is the share of faults it catches. That is mutation
testing with hand-made mutants, each a mistake real services ship with.
"""

from __future__ import annotations

import ast

from autograder.checks.context import Context
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome

STEP = StepChecks("04")
CONFTEST = "tests/conftest.py"
REQUIRED_FIXTURES = ("app", "client")
MIN_TESTS = 8


def fixtures_in(source: str) -> dict[str, bool]:
    """The functions decorated with @pytest.fixture (with or without arguments), each mapped to
    whether it is still an exercise stub (raises NotImplementedError)."""
    fixtures = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if ast.unparse(target) in ("pytest.fixture", "fixture"):
                    fixtures[node.name] = any(
                        isinstance(inner, ast.Raise) and "NotImplementedError" in ast.unparse(inner)
                        for inner in ast.walk(node)
                    )
    return fixtures


@STEP.check(
    "suite-structure",
    "tests/conftest.py provides app, client and test-image fixtures",
    points=2,
    hint="Write tests/conftest.py with fixtures named app and client, and one that makes test images "
    "(with 'image' in its name).",
)
def suite_structure(ctx: Context) -> Outcome:
    conftest = ctx.file(CONFTEST)
    if not conftest.is_file():
        return Outcome.fail(f"{CONFTEST} does not exist: run the cell that writes it")
    try:
        fixtures = fixtures_in(ctx.read_text(CONFTEST))
    except SyntaxError as error:
        return Outcome.fail(f"{CONFTEST} is not valid Python (line {error.lineno}: {error.msg})")
    missing = [name for name in REQUIRED_FIXTURES if name not in fixtures]
    if missing:
        return Outcome.fail(f"{CONFTEST} has no fixture named " + ", ".join(missing))
    if not any("image" in name or "png" in name or "jpeg" in name for name in fixtures):
        return Outcome.fail(f"{CONFTEST} has no fixture that makes test images (a name with 'image' in it)")
    stubs = sorted(name for name, stubbed in fixtures.items() if stubbed)
    if stubs:
        return Outcome.fail("fixtures still to write: " + ", ".join(stubs))
    return Outcome.ok(f"fixtures {', '.join(sorted(fixtures))}")


def _reference_failure(campaign) -> str:
    """Why the suite does not pass on the correct service (or its rewritten copies), or ''."""
    if not campaign.static:
        return "the suite has no tests: pytest collected no tests (test_* functions in tests/test_*.py)"
    collect = campaign.collect_run
    if collect is not None and not collect.passed:
        return f"pytest could not collect the suite: {collect.describe()}\n" + "\n".join(
            collect.output_tail.splitlines()[-8:]
        )
    if campaign.consistent_count:
        return campaign.consistent_count
    for run in campaign.references:
        if not run.passed:
            tail = "\n".join(run.output_tail.strip().splitlines()[-8:])
            return f"on the reference service: {run.describe()}\n{tail}"
    for run in campaign.controls:
        if not run.passed:
            return (
                "on a copy of the reference service that behaves the same but is written differently "
                f"(comments dropped, unused variables added): {run.describe()}. Tests must check what the "
                "service does, never how its source looks"
            )
    return ""


@STEP.check(
    "passes-on-reference",
    f"the suite has at least {MIN_TESTS} tests and they all pass on the reference service",
    points=2,
    hint="A test that fails on a correct service tests the wrong thing: compare its expectation with "
    "notebook 03's contract. Run `python -m pytest tests -x -q` in the workspace to see the failure.",
    needs=("suite",),
)
def passes_on_reference(ctx: Context) -> Outcome:
    campaign = ctx.run_suite.campaign(with_variants=False)
    seconds = max((run.seconds for run in campaign.references), default=0.0)
    figures = {"suite time": f"{seconds:.1f} s"}
    failure = _reference_failure(campaign)
    if failure:
        return Outcome.fail(failure, **figures)
    if campaign.tests < MIN_TESTS:
        return Outcome.fail(f"only {campaign.tests} tests; write at least {MIN_TESTS}", **figures)
    return Outcome.ok(f"{campaign.tests} tests pass on the reference service and on a rewritten copy of it", **figures)


@STEP.check(
    "catches-faulty-variants",
    "the suite fails on faulty versions of the service (score: the share it catches)",
    points=8,
    hint="For each behaviour of notebook 03's contract, ask: which test would fail if the service got "
    "it wrong? Status codes, content types, sorting, probabilities, metrics, headers, limits, readiness.",
    needs=("suite",),
)
def catches_faulty_variants(ctx: Context) -> Outcome:
    if not ctx.run_suite.variants:
        return Outcome.skip(
            "skipped: the faulty services are your instructor's (hidden), so this repository cannot run "
            "them; your suite is scored on them when your work is graded"
        )
    # The faulty services run only once the suite passes on the correct one (no time wasted).
    failure = _reference_failure(ctx.run_suite.campaign(with_variants=False))
    campaign = ctx.run_suite.campaign(with_variants=True) if not failure else None
    failure = failure or _reference_failure(campaign)
    if failure:
        return Outcome.fail(
            "the suite must pass on the reference service first, every time it runs (a suite that "
            f"always fails would 'catch' everything): {failure}"
        )
    variants = ctx.run_suite.variants
    missed, unfinished = [], 0
    for name, description in variants:
        run = campaign.variants.get(name)
        if run is None or not run.caught_something:
            missed.append(description)
            unfinished += run is None or run.timed_out or run.exit_code not in (0, 1)
    caught = len(variants) - len(missed)
    message = f"caught {caught} of {len(variants)} faulty services"
    if missed:
        message += "; not caught: " + "; ".join(missed)
    if unfinished:
        message += (
            f" ({unfinished} of those runs did not finish, crashed or ran out of time: "
            "a suite that hangs or dies catches nothing)"
        )
    return Outcome.partial(caught / len(variants) if variants else 0.0, message, caught=f"{caught}/{len(variants)}")
