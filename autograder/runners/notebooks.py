"""Executing notebooks with papermill: the solution notebooks in course order, one at a time."""

from __future__ import annotations

import logging
import shutil
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
    import time

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
