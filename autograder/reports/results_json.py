"""Results as JSON, in the shape Gradescope's autograder reads (tests, score, visibility)."""

from __future__ import annotations

import json
from pathlib import Path

from autograder.grading import StepReport


def as_dict(reports: list[StepReport]) -> dict:
    tests = []
    for report in reports:
        for result in report.results:
            output = result.message + (f"\nHint: {result.hint}" if result.hint else "")
            tests.append(
                {
                    "name": f"{result.id}: {result.title}",
                    "score": result.points,
                    "max_score": result.max_points,
                    "status": result.verdict.value,
                    "output": output,
                    "visibility": "visible",
                    "extra_data": dict(result.figures),
                }
            )
    return {
        "score": sum(r.points for r in reports),
        "max_score": sum(r.max_points for r in reports),
        "tests": tests,
    }


def write(reports: list[StepReport], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(as_dict(reports), indent=2) + "\n")
