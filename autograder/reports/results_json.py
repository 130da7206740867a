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
    sandboxes = sorted({r.sandbox for r in reports if r.sandbox})
    notes = [note for r in reports for note in r.notes]
    return {
        "score": sum(r.points for r in reports),
        "max_score": sum(r.max_points for r in reports),
        "tests": tests,
        "output": "\n".join([*(s for s in sandboxes if s.startswith("UNSANDBOXED")), *notes]),
        "extra_data": {"sandbox": sandboxes, "workspace_notes": notes},
    }


def write(reports: list[StepReport], path: Path) -> None:
    """Write atomically: a reader never sees half a file, and nothing writes after us."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(as_dict(reports), indent=2) + "\n")
    partial.replace(path)
