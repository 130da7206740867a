"""What the sandbox costs: the same probes and the same steps, with bubblewrap and without, in one run.

A benchmark, not a test: it prints figures and ratios against the unsandboxed run measured in
the same process, so they compare across machines. Needs bubblewrap (apt-get install bubblewrap).

    python benchmarks/sandbox_overhead.py [--rounds 5] [--steps 00 01 02 03 04]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

from autograder import course, grading, snapshot
from autograder.runners import sandbox
from autograder.runners.probes import ProbeRunner
from autograder.settings import current

# (probe, arguments): one that imports nothing heavy, and one that imports the service and PyTorch.
PROBES = (
    ("step02_configuration:frozen_settings", {}),
    ("step01_model:import_modules", {"wanted": {"service.model": ["load_classifier"]}}),
)


def probe_seconds(mode: str, rounds: int) -> dict[str, float]:
    settings = dataclasses.replace(current(), sandbox=mode)
    mechanism = sandbox.mechanism(settings)
    medians = {}
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as scratch:
        copy = snapshot.take(course.REFERENCE_WORKSPACE, Path(scratch) / "workspace")
        sandbox.make_readable(copy.root)
        runner = ProbeRunner(copy.root, mechanism, settings, Path(scratch))
        for name, arguments in PROBES:
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                result = runner(name, arguments)
                times.append(time.perf_counter() - started)
                if not result.ok:
                    raise SystemExit(f"{name} failed under {mode}: {result.describe_failure()}")
            medians[name] = statistics.median(times)
    return medians


def step_seconds(mode: str, step: str) -> float:
    settings = dataclasses.replace(current(), sandbox=mode)
    started = time.perf_counter()
    report = grading.grade_step(step, course.REFERENCE_WORKSPACE, settings=settings)
    seconds = time.perf_counter() - started
    if not report.all_passed:
        raise SystemExit(f"step {step} did not pass under {mode}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", nargs="*", default=["00", "01", "02", "03", "04"])
    args = parser.parse_args()
    found = sandbox.mechanism(dataclasses.replace(current(), sandbox="auto"))
    if not found.sandboxed:
        print(f"no sandbox here: {found.detail}", file=sys.stderr)
        return 2
    print(f"sandbox: {found.detail}; median of {args.rounds} runs per probe")
    plain, boxed = probe_seconds("off", args.rounds), probe_seconds("require", args.rounds)
    print(f"  {'probe':45} {'plain':>8} {'sandboxed':>10} {'overhead':>9} {'ratio':>6}")
    for name in plain:
        print(
            f"  {name:45} {plain[name]:7.2f}s {boxed[name]:9.2f}s {boxed[name] - plain[name]:+8.2f}s "
            f"{boxed[name] / plain[name]:5.2f}x"
        )
    print("\nwhole steps on the reference workspace (one run each):")
    print(f"  {'step':6} {'plain':>8} {'sandboxed':>10} {'ratio':>6}")
    for step in args.steps:
        without, with_ = step_seconds("off", step), step_seconds("require", step)
        print(f"  {step:6} {without:7.1f}s {with_:9.1f}s {with_ / without:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
