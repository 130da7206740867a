"""The checkpoint table shown in a notebook: HTML for people, a bare number for nbgrader.

nbgrader reads a grade cell's ``text/plain`` result as partial credit, so the report's repr is the
score and its HTML rendering is the table.
"""

from __future__ import annotations

import html

from autograder.checks.result import Verdict
from autograder.grading import StepReport

SYMBOLS = {Verdict.PASSED: "✅ passed", Verdict.FAILED: "❌ failed", Verdict.SKIPPED: "⏭ skipped"}


class CheckpointReport:
    def __init__(self, report: StepReport):
        self.report = report

    @property
    def score(self) -> float:
        return self.report.points

    def __repr__(self) -> str:
        return f"{self.score:g}"

    def _repr_html_(self) -> str:
        rows = []
        for result in self.report.results:
            detail = html.escape(result.message)
            if result.figures:  # measured figures, or a report's rows (step 07's consistency table)
                detail += (
                    "<br><small>"
                    + "<br>".join(
                        f"{html.escape(name.replace('_', ' '))}: {html.escape(value)}" for name, value in result.figures
                    )
                    + "</small>"
                )
            if result.hint:
                detail += f"<br><b>Hint:</b> {html.escape(result.hint)}"
            rows.append(
                "<tr>"
                f"<td style='text-align:left'>{html.escape(result.title)}<br><code>{html.escape(result.id)}</code></td>"
                f"<td style='text-align:left'>{SYMBOLS[result.verdict]}</td>"
                f"<td>{result.points:g}/{result.max_points:g}</td>"
                f"<td style='text-align:left'>{detail}</td>"
                "</tr>"
            )
        step = self.report.step
        warnings = "".join(
            f"<p><b>⚠ {html.escape(text)}</b></p>"
            for text in ([self.report.sandbox] if self.report.unsandboxed else [])
            + [f"workspace file {note}" for note in self.report.notes]
        )
        return (
            f"<h4>Checkpoint · step {step.id} {html.escape(step.title)}: "
            f"{self.report.points:g}/{self.report.max_points:g} points</h4>{warnings}"
            "<table><thead><tr><th>check</th><th>verdict</th><th>points</th><th>details</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
