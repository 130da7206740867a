"""How long grading step 05 takes for a submission whose dependency layer is already cached.

The target (issue 4): under 60 s on the course machines. A benchmark, not a test: machines are
shared and noisy, so it prints figures, and a ratio against a floor measured in the same run: the
time to build the same (cached) image and start it until /ready answers, with no check at all.
The ratio is the grader's own overhead, comparable across machines.

    python benchmarks/step05_grading.py [--rounds 3]

Needs a Docker engine and the offline base image (python -m autograder offline setup).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from autograder import course, grading, images
from autograder.checks import reference_model
from autograder.runners import docker as docker_runner

TARGET_SECONDS = 60.0


def submission(root: Path, round_number: int) -> Path:
    """A copy of the reference with its own code change: the dependency layer stays cached, the
    code layers are rebuilt, as when a learner edits app.py and grades again."""
    workspace = root / f"submission-{round_number}"
    shutil.copytree(course.REFERENCE_WORKSPACE, workspace)
    app = workspace / "service" / "app.py"
    app.write_text(app.read_text() + f"\n# edit {round_number} {time.time()}\n")
    return workspace


def floor_seconds(workspace: Path, weights: Path) -> float:
    """Build (cached) and start until /ready: what any grader of a live image must spend."""
    started = time.perf_counter()
    build = images.build(workspace, workspace)
    with docker_runner.run_service(
        build.tag,
        env=grading.GRADING_CONTAINER_ENV,
        files={grading.GRADING_WEIGHTS_PATH: weights},
        ready_path="/ready",
    ):
        pass
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    available, why = docker_runner.engine_available()
    if not available:
        print(f"no Docker engine: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-step05-") as scratch:
        root = Path(scratch)
        print("warming up: grading the reference once so its dependency layer is cached ...", flush=True)
        warm = time.perf_counter()
        grading.grade_step("05", course.REFERENCE_WORKSPACE)
        print(f"  warm-up took {time.perf_counter() - warm:.1f} s")
        grades, floors, builds, startups = [], [], [], []
        weights = reference_model.weights_file(1, root)
        weights.chmod(0o644)
        for number in range(args.rounds):
            floors.append(floor_seconds(submission(root, 100 + number), weights))
            started = time.perf_counter()
            report = grading.grade_step("05", submission(root, number))
            grades.append(time.perf_counter() - started)
            figures = {name: value for result in report.results for name, value in result.figures}
            builds.append(float(figures.get("build_seconds", "nan")))
            startups.append(float(figures.get("startup_seconds", "nan")))
            print(
                f"  round {number + 1}: graded {report.points:g}/{report.max_points:g} in {grades[-1]:.1f} s "
                f"(build {builds[-1]:.1f} s, start-up {startups[-1]:.1f} s); floor {floors[-1]:.1f} s",
                flush=True,
            )
    grade, floor = statistics.median(grades), statistics.median(floors)
    print()
    print(f"step 05, cached dependency layer, median of {args.rounds}:")
    print(
        f"  grading          {grade:6.1f} s   (target {TARGET_SECONDS:.0f} s: {'met' if grade < TARGET_SECONDS else 'MISSED'})"
    )
    print(f"  of which build   {statistics.median(builds):6.1f} s")
    print(f"  of which ready   {statistics.median(startups):6.1f} s")
    print(f"  floor            {floor:6.1f} s   (build + start until /ready, no checks)")
    print(f"  ratio            {grade / floor:6.2f} x the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
