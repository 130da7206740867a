"""The gradebook of a batch: one CSV row per learner, points per step, total, and flags."""

from __future__ import annotations

import csv
from pathlib import Path

from autograder import course
from autograder.submissions import GradedLearner


def write(rows: list[GradedLearner], path: Path) -> Path:
    """``path`` as CSV: learner, each step's points, total, max_points, flags, notes. A learner
    whose grading failed has empty points and the flag "not graded"."""
    step_ids = [step.id for step in course.STEPS]
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["learner", *(f"step {s}" for s in step_ids), "total", "max_points", "flags", "notes"])
        for row in rows:
            if row.results is None:
                writer.writerow([row.learner, *([""] * len(step_ids)), "", "", "not graded", row.problem])
                continue
            extra = row.results.get("extra_data", {})
            steps = extra.get("steps", {})
            writer.writerow(
                [
                    row.learner,
                    *(f"{steps[s]['points']:g}" if s in steps else "" for s in step_ids),
                    f"{row.results['score']:g}",
                    f"{row.results['max_score']:g}",
                    ";".join(extra.get("flags", [])),
                    " | ".join(extra.get("submission_notes", []))[:2000],
                ]
            )
    partial.replace(path)
    return path
