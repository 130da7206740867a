"""Feedback for the learner on a graded submission, as Markdown and as HTML.

Every check's verdict, points, message and hint, step by step, and what the instructor was told
about the submission (a missing notebook, a workspace that differs from the notebooks). Never a
hidden test's code or the reference: the checks' messages already say only what was observed.
"""

from __future__ import annotations

import html

from autograder.checks.result import Verdict, printable
from autograder.submissions import SubmissionReport

MARKS = {Verdict.PASSED: "passed", Verdict.FAILED: "failed", Verdict.SKIPPED: "needs manual grading"}


def _points(value: float) -> str:
    return f"{value:g}"


def _cell(text: str) -> str:
    """Markdown table cell text: one line, pipes escaped."""
    return printable(text, limit=600).replace("\n", " ").replace("|", "\\|")


def markdown(report: SubmissionReport) -> str:
    lines = [
        f"# Feedback: {_points(report.points)}/{_points(report.max_points)} points",
        "",
    ]
    if report.notes:
        lines += ["## About this submission", "", *(f"- {printable(note, limit=2000)}" for note in report.notes), ""]
    for step in report.reports:
        lines += [
            f"## Step {step.step.id} · {step.step.title}: {_points(step.points)}/{_points(step.max_points)}",
            "",
        ]
        if step.unsandboxed:
            lines += [f"> {step.sandbox}", ""]
        lines += ["| check | result | points | what the grader saw | hint |", "|---|---|---|---|---|"]
        for result in step.results:
            lines.append(
                f"| {result.id} | {MARKS[result.verdict]} | {_points(result.points)}/{_points(result.max_points)} "
                f"| {_cell(result.message)} | {_cell(result.hint if not result.passed else '')} |"
            )
        lines.append("")
    return "\n".join(lines)


def as_html(report: SubmissionReport) -> str:
    def e(text: str) -> str:
        return html.escape(printable(text, limit=2000))

    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Feedback</title>',
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}td,th{border:1px solid #ccc;"
        "padding:.3em;vertical-align:top;text-align:left}table{border-collapse:collapse}.passed{color:#060}"
        ".failed{color:#a00}.skipped{color:#a60}</style></head><body>",
        f"<h1>Feedback: {_points(report.points)}/{_points(report.max_points)} points</h1>",
    ]
    if report.notes:
        parts.append("<h2>About this submission</h2><ul>")
        parts += [f"<li>{e(note)}</li>" for note in report.notes]
        parts.append("</ul>")
    for step in report.reports:
        parts.append(
            f"<h2>Step {e(step.step.id)} · {e(step.step.title)}: {_points(step.points)}/{_points(step.max_points)}</h2>"
        )
        if step.unsandboxed:
            parts.append(f"<p><strong>{e(step.sandbox)}</strong></p>")
        parts.append(
            "<table><tr><th>check</th><th>result</th><th>points</th><th>what the grader saw</th><th>hint</th></tr>"
        )
        for result in step.results:
            hint = "" if result.passed else result.hint
            parts.append(
                f'<tr><td>{e(result.id)}</td><td class="{result.verdict.value}">{MARKS[result.verdict]}</td>'
                f"<td>{_points(result.points)}/{_points(result.max_points)}</td>"
                f"<td>{e(result.message)}</td><td>{e(hint)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
