"""Executing notebooks with papermill: the solution notebooks in course order, one at a time."""

from __future__ import annotations

import logging
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from autograder.errors import NotebookError

KERNEL = "python3"
CELL_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class ExecutedNotebook:
    source: Path
    output: Path
    seconds: float


def execute_notebook(
    source: Path, output: Path, *, cwd: Path, cell_timeout: int = CELL_TIMEOUT_SECONDS
) -> ExecutedNotebook:
    """Execute one notebook; on failure raise NotebookError naming the cell, keeping the executed copy."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("papermill").setLevel(logging.WARNING)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            cwd=str(cwd),
            kernel_name=KERNEL,
            execution_timeout=cell_timeout,
            progress_bar=False,
            log_output=False,
        )
    except PapermillExecutionError as error:
        raise NotebookError(
            f"{source.name} failed in cell {error.cell_index} (execution count {error.exec_count}): "
            f"{error.ename}: {error.evalue}",
            hint=f"open the executed copy {output} to see the cell and its traceback",
        ) from error
    except Exception as error:  # kernel died, timeout, unreadable notebook
        raise NotebookError(
            f"{source.name} could not be executed: {type(error).__name__}: {error}",
            hint=f"if {output} exists it shows how far execution got",
        ) from error
    return ExecutedNotebook(source, output, time.perf_counter() - started)


def fresh_copy(assignment_dir: Path, destination: Path, *, without: tuple[str, ...]) -> Path:
    """Copy an assignment folder for execution, leaving out folders the run must regenerate."""
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(
        assignment_dir,
        destination,
        ignore=shutil.ignore_patterns(*without, "__pycache__", ".ipynb_checkpoints"),
    )
    return destination


EXECUTED_LIMIT = 64 * 1024**2  # an executed notebook bigger than this is not read back


def execute_in_sandbox(
    source: Path,
    output: Path,
    *,
    workspace: Path | None,
    mechanism,
    settings,
    cell_timeout: int = CELL_TIMEOUT_SECONDS,
    timeout: float = 1800.0,
) -> ExecutedNotebook:
    """Execute a notebook somebody else wrote (a learner's submission) in the sandbox, papermill
    and its kernel included, with ``workspace`` (if any) copied next to it as ``workspace/``.
    The executed copy comes back to ``output`` even when a cell failed or the kernel died (then
    NotebookError says which); nothing the notebook did outside its copy survives."""
    from autograder.runners import sandbox

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="notebook-") as scratch:
        root = Path(scratch) / "root"
        sandbox.prepare_root(root, writable=("out",))
        work = root / "out"
        shutil.copyfile(source, work / source.name)
        if workspace is not None:
            shutil.copytree(workspace, work / "workspace", symlinks=False)
        sandbox.hand_over(work, root)
        inside = f"{mechanism.inside(root)}/out"
        finished = sandbox.run(
            [
                sys.executable,
                "-m",
                "papermill",
                f"{inside}/{source.name}",
                f"{inside}/executed.ipynb",
                "--kernel",
                KERNEL,
                "--execution-timeout",
                str(cell_timeout),
                "--cwd",
                inside,
                "--no-progress-bar",
            ],
            root=root,
            mechanism=mechanism,
            limits=sandbox.Limits.from_settings(settings, timeout),
            env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
            cwd=inside,
        )
        executed = work / "executed.ipynb"
        output.parent.mkdir(parents=True, exist_ok=True)
        try:
            output.write_bytes(sandbox.read_output(executed, EXECUTED_LIMIT))
        except (OSError, ValueError):
            pass  # none, or not a regular file, or too large: the messages below say what happened
    if finished.timed_out:
        raise NotebookError(
            f"{source.name} did not finish in {timeout:.0f} s and was stopped",
            hint=f"if {output} exists it shows how far execution got",
        )
    if finished.returncode != 0:
        errors = [line for line in finished.output.splitlines() if re.match(r"^[\w.]+(Error|Exception|Exit)\b", line)]
        reason = (
            errors[-1].split("exceptions.")[-1] if errors else f"papermill exited with status {finished.returncode}"
        )
        raise NotebookError(
            f"{source.name} failed: {reason[:300]}",
            hint=f"if {output} exists it shows how far execution got",
        )
    return ExecutedNotebook(source, output, time.perf_counter() - started)
