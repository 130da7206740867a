"""Results as JSON in Gradescope's autograder format (``results.json``): score, execution_time,
output, and one test per check with name, score, max_score, status, output and visibility (a
step's hidden tests are one test each, visible "after_published").

Gradescope knows only "passed" and "failed": a check that could not run here (no Docker engine)
is "failed" with "needs manual grading" in its output and ``extra_data.verdict`` "skipped", and the
top-level output says so. Every string went through ``printable`` already (the checks' messages)
or is ours.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from autograder import hidden
from autograder.checks.result import CheckResult, Verdict
from autograder.grading import StepReport

MANUAL = "needs manual grading: "


def test_entry(result: CheckResult, step_title: str) -> dict:
    output = result.message
    output += "".join(f"\n  {name.replace('_', ' ')}: {value}" for name, value in result.figures)  # a report's rows too
    output += f"\nHint: {result.hint}" if result.hint else ""
    if result.verdict is Verdict.SKIPPED:
        output = MANUAL + output
    return {
        "name": f"{result.id}: {result.title}",
        "score": result.points,
        "max_score": result.max_points,
        "status": "passed" if result.verdict is Verdict.PASSED else "failed",
        "output": output,
        # Hidden tests: learners see them once the instructor publishes the grades.
        "visibility": "after_published" if hidden.is_hidden(result.id) else "visible",
        "tags": [step_title],
        "extra_data": {"check": result.id, "verdict": result.verdict.value, "figures": dict(result.figures)},
    }


def as_dict(reports: list[StepReport], *, notes: Iterable[str] = (), seconds: float | None = None) -> dict:
    tests = [
        test_entry(result, f"{report.step.id} {report.step.title}") for report in reports for result in report.results
    ]
    sandboxes = sorted({r.sandbox for r in reports if r.sandbox})
    workspace_notes = [note for r in reports for note in r.notes]
    skipped = [t["name"] for t in tests if t["extra_data"]["verdict"] == "skipped"]
    lines = [
        *(s for s in sandboxes if s.startswith("UNSANDBOXED")),
        *notes,
        *workspace_notes,
        *([f"{len(skipped)} check(s) need manual grading (they could not run here)"] if skipped else []),
    ]
    data = {
        "score": sum(r.points for r in reports),
        "max_score": sum(r.max_points for r in reports),
        "output": "\n".join(lines),
        "visibility": "visible",
        "tests": tests,
        "extra_data": {
            "sandbox": sandboxes,
            "workspace_notes": workspace_notes,
            "submission_notes": list(notes),
            "needs_manual_grading": skipped,
        },
    }
    if seconds is not None:
        data["execution_time"] = round(seconds)
    return data


def write(reports: list[StepReport], path: Path, *, notes: Iterable[str] = (), seconds: float | None = None) -> None:
    """Write atomically: a reader never sees half a file, and nothing writes after us."""
    write_data(as_dict(reports, notes=notes, seconds=seconds), path)


def write_data(data: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(path)


def write_submission(report, out: Path) -> Path:
    """``out/results.json`` of a graded submission (a submissions.SubmissionReport), with its
    flags and per-step points in ``extra_data`` for a gradebook."""
    data = as_dict(report.reports, notes=report.notes, seconds=report.seconds)
    data["extra_data"]["flags"] = report.flags
    data["extra_data"]["steps"] = {
        r.step.id: {
            "points": r.points,
            "max_points": r.max_points,
            "seconds": round(report.step_seconds.get(r.step.id, 0), 1),
        }
        for r in report.reports
    }
    path = Path(out) / "results.json"
    write_data(data, path)
    return path
