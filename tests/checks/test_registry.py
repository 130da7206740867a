"""How checks are run: declared needs, the order of 'last' checks, resources that cannot be had,
and messages that can never move a terminal's cursor."""

from __future__ import annotations

import pytest

from autograder.checks.context import Context, Unavailable
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome, Verdict, printable


def _step() -> tuple[StepChecks, list[str]]:
    step, ran = StepChecks("99"), []

    @step.check("stops-the-service", "runs last", points=1, hint="h", needs=("service",), last=True)
    def stops(ctx):
        ran.append("stops")
        return Outcome.ok("stopped")

    @step.check("first", "first", points=1, hint="h")
    def first(ctx):
        ran.append("first")
        return Outcome.ok("fine")

    @step.check("uses-the-service", "second", points=2, hint="h", needs=("service",))
    def uses(ctx):
        ran.append("uses")
        return Outcome.ok("answered")

    return step, ran


def test_last_checks_run_after_the_others_whatever_the_order_they_were_written_in(tmp_path):
    step, ran = _step()
    step.run(Context(workspace=tmp_path, provide=lambda name: object()))
    assert ran == ["first", "uses", "stops"]


def test_a_resource_that_cannot_be_had_becomes_the_outcome_and_is_made_once(tmp_path):
    step, ran = _step()
    asked = []

    def provide(name):
        asked.append(name)
        raise Unavailable(Outcome.fail("the container never got ready: a long story"))

    results = {r.id: r for r in step.run(Context(workspace=tmp_path, provide=provide))}
    assert ran == ["first"] and asked == ["service"]
    assert results["99.uses-the-service"].message == "the container never got ready: a long story"
    assert results["99.stops-the-service"].message == "no running container to ask (see container-ready)"
    assert results["99.uses-the-service"].hint == "h"


def test_a_skipped_resource_skips_every_check_that_needs_it(tmp_path):
    step, _ = _step()
    provide = lambda name: (_ for _ in ()).throw(Unavailable(Outcome.skip("skipped: no Docker engine")))  # noqa: E731
    results = step.run(Context(workspace=tmp_path, provide=provide))
    skipped = [r for r in results if r.verdict is Verdict.SKIPPED]
    assert len(skipped) == 2 and all(r.points == 0 and "no Docker engine" in r.message for r in skipped)


def test_unknown_needs_are_refused_when_registered():
    with pytest.raises(ValueError, match="unknown resources"):
        StepChecks("99").check("x", "x", points=1, hint="", needs=("gpu",))


def test_messages_are_printable_and_bounded(tmp_path):
    step = StepChecks("99")

    @step.check("echo", "quotes learner output", points=1, hint="h")
    def echo(ctx):
        return Outcome.fail("\x1b[2K\r  PASS  all good\u202e" + "x" * 10_000, shown="\x1b]0;title\x07")

    [result] = step.run(Context(workspace=tmp_path))
    assert "\x1b" not in result.message and "\u202e" not in result.message and "\r" not in result.message
    assert "\\x1b[2K\\x0d" in result.message and len(result.message) <= 4000
    assert "\x07" not in dict(result.figures)["shown"]
    assert printable("line one\n\ttab") == "line one\n\ttab"


def test_a_file_too_large_to_be_what_it_claims_fails_the_check_reading_it(tmp_path):
    step = StepChecks("99")

    @step.check("reads", "reads a file", points=1, hint="h")
    def reads(ctx):
        ctx.read_text("requirements.txt")
        return Outcome.ok("read")

    (tmp_path / "requirements.txt").write_bytes(b"x" * (2 * 1024 * 1024))
    [result] = step.run(Context(workspace=tmp_path))
    assert result.verdict is Verdict.FAILED and "over the 1 MB" in result.message
