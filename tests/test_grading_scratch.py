"""A grading's scratch folder goes with it; one a killed grading left is removed by the next."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from autograder import grading


def test_the_next_grading_removes_a_killed_gradings_scratch_and_spares_live_ones(reference_workspace):
    temp = Path(tempfile.gettempdir())
    killed = temp / f"{grading.SCRATCH_PREFIX}999999999-test"  # no such PID runs
    alive = temp / f"{grading.SCRATCH_PREFIX}{os.getpid()}-test"  # this process: still running
    for folder in (killed, alive):
        (folder / "workspace").mkdir(parents=True)
        (folder / "weights.pt").write_bytes(b"w" * 1024)
    try:
        before = set(temp.glob(f"{grading.SCRATCH_PREFIX}{os.getpid()}-*"))
        report = grading.grade_step("00", reference_workspace)
        assert report.results
        assert not killed.exists(), "a killed grading's scratch stays behind"
        assert alive.exists(), "a running grading's scratch was removed"
        # The run's own folder went with it.
        assert set(temp.glob(f"{grading.SCRATCH_PREFIX}{os.getpid()}-*")) == before
    finally:
        import shutil

        for folder in (killed, alive):
            shutil.rmtree(folder, ignore_errors=True)
