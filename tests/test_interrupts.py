"""Ctrl-C is never lost, even when it lands in a finaliser, where Python swallows it."""

from __future__ import annotations

import subprocess
import sys

from autograder import course

# A SIGINT that arrives while a finaliser runs: Python prints "Exception ignored in ..." and goes
# on. That is how a grading once ran to the end and exited 0 after its Ctrl-C.
SWALLOWED = """
import os, signal, time
from autograder import interrupts
interrupts.install()

class Finaliser:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)

Finaliser()
print("went on", flush=True)
interrupts.raise_if_interrupted()  # what every check, sandbox wait and container wait calls
print("finished as if nothing happened")
"""


def test_an_interrupt_swallowed_by_a_finaliser_is_raised_again():
    done = subprocess.run(
        [sys.executable, "-c", SWALLOWED], capture_output=True, text=True, cwd=course.REPO_ROOT, timeout=60
    )
    assert "went on" in done.stdout and "finished as if nothing happened" not in done.stdout
    assert "Exception ignored in" in done.stderr  # Python did swallow it the first time
    assert done.returncode != 0 and done.stderr.rstrip().endswith("KeyboardInterrupt: interrupted")
