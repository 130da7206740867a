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


def _unavailable(ctx: Context) -> Outcome | None:
    if ctx.run_suite is None:
        return Outcome.skip(ctx.skip_reason or "no test runner was given to this check")
    return None


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
        fixtures = fixtures_in(conftest.read_text())
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


@STEP.check(
    "passes-on-reference",
    f"the suite has at least {MIN_TESTS} tests and they all pass on the reference service",
    points=2,
    hint="A test that fails on a correct service tests the wrong thing: compare its expectation with "
    "notebook 03's contract. Run `python -m pytest tests -x -q` in the workspace to see the failure.",
)
def passes_on_reference(ctx: Context) -> Outcome:
    unavailable = _unavailable(ctx)
    if unavailable:
        return unavailable
    run = ctx.run_suite(None)
    figures = {"suite time": f"{run.seconds:.1f} s"}
    if not run.passed:
        tail = run.output_tail.strip().splitlines()[-8:]
        return Outcome.fail(f"on the reference service: {run.describe()}\n" + "\n".join(tail), **figures)
    if run.collected < MIN_TESTS:
        return Outcome.fail(f"only {run.collected} tests; write at least {MIN_TESTS}", **figures)
    return Outcome.ok(f"{run.collected} tests pass on the reference service", **figures)


@STEP.check(
    "catches-faulty-variants",
    "the suite fails on faulty versions of the service (score: the share it catches)",
    points=8,
    hint="For each behaviour of notebook 03's contract, ask: which test would fail if the service got "
    "it wrong? Status codes, content types, sorting, probabilities, metrics, headers, limits, readiness.",
)
def catches_faulty_variants(ctx: Context) -> Outcome:
    unavailable = _unavailable(ctx)
    if unavailable:
        return unavailable
    reference = ctx.run_suite(None)
    if not reference.passed:
        return Outcome.fail(
            "the suite must pass on the reference service first (a suite that always fails would "
            f"'catch' everything): {reference.describe()}"
        )
    variants = ctx.run_suite.variants
    missed = [description for name, description in variants if not ctx.run_suite(name).caught_something]
    caught = len(variants) - len(missed)
    message = f"caught {caught} of {len(variants)} faulty services"
    if missed:
        message += "; not caught: " + "; ".join(missed)
    return Outcome.partial(caught / len(variants) if variants else 0.0, message, caught=f"{caught}/{len(variants)}")
