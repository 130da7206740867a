"""The plain-text score table printed by the CLI."""

from __future__ import annotations

from autograder.checks.result import Verdict, printable
from autograder.grading import StepReport

MARKS = {Verdict.PASSED: "PASS", Verdict.FAILED: "FAIL", Verdict.SKIPPED: "SKIP"}


def _points(value: float) -> str:
    return f"{value:g}"


def step_table(report: StepReport) -> str:
    lines = [f"Step {report.step.id} · {report.step.title}"]
    if report.unsandboxed:
        lines.append(f"  !! {report.sandbox}")
    for note in report.notes:
        lines.append(f"  !! workspace file {printable(note, limit=300)}")
    width = max((len(r.id) for r in report.results), default=10)
    for result in report.results:
        score = f"{_points(result.points)}/{_points(result.max_points)}"
        lines.append(f"  {MARKS[result.verdict]}  {score:>5}  {result.id:<{width}}  {result.message}")
        for name, value in result.figures:
            lines.append(f"  {'':4}  {'':5}  {'':<{width}}    {name.replace('_', ' ')}: {value}")
        if result.hint:
            for index, hint_line in enumerate(result.hint.splitlines()):
                prefix = "hint: " if index == 0 else "      "
                lines.append(f"  {'':4}  {'':5}  {'':<{width}}  {prefix}{hint_line}")
    lines.append(f"  {'':4}  {_points(report.points) + '/' + _points(report.max_points):>5}  total")
    return "\n".join(lines)


def summary_table(reports: list[StepReport]) -> str:
    lines = ["Score", "  step  points  status"]
    for report in reports:
        counts = {v: sum(1 for r in report.results if r.verdict is v) for v in Verdict}
        status = f"{counts[Verdict.PASSED]} passed, {counts[Verdict.FAILED]} failed"
        if counts[Verdict.SKIPPED]:
            status += f", {counts[Verdict.SKIPPED]} skipped"
        score = f"{_points(report.points)}/{_points(report.max_points)}"
        lines.append(f"  {report.step.id:<4}  {score:>6}  {status}  ({report.step.title})")
    total = sum(r.points for r in reports)
    maximum = sum(r.max_points for r in reports)
    lines.append(f"  {'all':<4}  {_points(total) + '/' + _points(maximum):>6}")
    return "\n".join(lines)


def doctor_table(findings) -> str:
    lines = ["Course doctor"]
    width = max(len(f.name) for f in findings)
    for finding in findings:
        mark = "ok  " if finding.ok else ("FAIL" if finding.required else "warn")
        lines.append(f"  {mark}  {finding.name:<{width}}  {finding.detail}")
        if finding.fix:
            lines.append(f"  {'':4}  {'':<{width}}  fix: {finding.fix}")
    return "\n".join(lines)


def progress_table(statuses, workspace) -> str:
    lines = [f"Progress of {workspace}"]
    for status in statuses:
        lines.append(f"  {status.step.id}  {status.step.title:<20}  {status.state:<12}  {status.detail}")
    return "\n".join(lines)
