"""How long ``grade-all`` takes per submission, and how much memory a grading needs.

The target (issue 10): 60 s per submission on 2 cores with warm caches, image build excluded. A
benchmark, not a test: it prints figures. It makes N reference-like submissions (the release's
notebooks with the reference's code in their solution cells), grades them with ``grade-all`` as
an instructor would, and prints the wall time, the time per submission (the batch's and each
grading's own), where the time goes (per step, from each results.json), the peak memory of the
largest grading process, and the containers left behind.

    python benchmarks/grade_all.py [--submissions 10] [--steps 00,01,02,03,04,05] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from autograder import course, submissions

TARGET_SECONDS = 60.0


def leftover_containers() -> int:
    try:
        done = subprocess.run(
            ["docker", "ps", "-aq", "--filter", "label=resnet-course.owner"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return len(done.stdout.split())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=10)
    parser.add_argument("--steps", default=",".join(step.id for step in course.STEPS))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="grade-all-bench-") as scratch:
        batch = Path(scratch) / "submitted"
        for index in range(args.submissions):
            submissions.reference_submission(batch / f"learner-{index:02d}")
        out = Path(scratch) / "graded"
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "autograder", "grade-all", str(batch), "--out", str(out)]
            + ["--steps", args.steps, "--jobs", str(args.jobs)],
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        results = [json.loads(p.read_text()) for p in sorted(out.glob("*/results.json"))]
    if done.returncode not in (0, 1):
        print(done.stdout[-2000:], done.stderr[-2000:], sep="\n")
        return 1
    own = [r.get("execution_time", 0) for r in results]
    scores = {f"{r['score']:g}/{r['max_score']:g}" for r in results}
    per_step: dict[str, list[float]] = defaultdict(list)
    for result in results:
        for step, figures in result.get("extra_data", {}).get("steps", {}).items():
            per_step[step].append(figures.get("seconds", 0.0))
    print(f"submissions: {len(results)} graded of {args.submissions}; scores {', '.join(sorted(scores))}")
    print(f"steps: {args.steps}; jobs: {args.jobs}")
    print(f"wall time: {wall:.0f} s; per submission (batch): {wall / max(args.submissions, 1):.1f} s")
    if own:
        print(f"one grading's own time: median {statistics.median(own):.0f} s, max {max(own)} s")
    print(
        f"target: {TARGET_SECONDS:.0f} s per submission (image build excluded); ratio {wall / max(args.submissions, 1) / TARGET_SECONDS:.2f}"
    )
    print(
        "median seconds per step: " + ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in sorted(per_step.items()))
    )
    print(f"peak memory of the largest grading process: {peak_mb:.0f} MB")
    print(f"containers left behind: {leftover_containers()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
