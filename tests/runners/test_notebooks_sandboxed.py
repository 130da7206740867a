"""A learner's notebook executes in the sandbox: a kernel that dies, a cell that never ends and a
notebook that reaches for the grader's files each end as an error with a reason, and the executed
copy comes back for the learner to see where it stopped."""

from __future__ import annotations

import nbformat
import pytest

from autograder import course
from autograder.errors import NotebookError
from autograder.runners import sandbox
from autograder.runners.notebooks import execute_in_sandbox
from autograder.settings import current

pytestmark = pytest.mark.slow


def _notebook(tmp_path, *cells: str):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    path = tmp_path / "submitted.ipynb"
    nbformat.write(notebook, str(path))
    return path


def _run(tmp_path, path, **options):
    settings = current()
    return execute_in_sandbox(
        path,
        tmp_path / "executed" / path.name,
        workspace=None,
        mechanism=sandbox.mechanism(settings),
        settings=settings,
        **options,
    )


def test_a_notebook_runs_and_sees_only_its_own_files(tmp_path):
    path = _notebook(
        tmp_path,
        "import os\nprint(os.getuid(), sorted(os.listdir('.')))",
        f"print(os.path.exists({str(course.SOLUTIONS_DIR)!r}))",
    )
    executed = _run(tmp_path, path)
    cells = nbformat.read(str(executed.output), as_version=4).cells
    first, second = (cell.outputs[0]["text"] for cell in cells)
    if sandbox.mechanism(current()).sandboxed:
        assert sandbox.is_sandbox_uid(int(first.split()[0])) and second.strip() == "False"


def test_a_kernel_that_dies_is_an_error_and_the_rest_is_not_run(tmp_path):
    path = _notebook(tmp_path, "print('before')", "import os\nos._exit(1)", "print('after')")
    with pytest.raises(NotebookError, match="Kernel died"):
        _run(tmp_path, path)
    cells = nbformat.read(str(tmp_path / "executed" / path.name), as_version=4).cells
    assert cells[0].outputs[0]["text"] == "before\n" and cells[2].outputs == []


def test_a_cell_that_never_ends_is_stopped(tmp_path):
    path = _notebook(tmp_path, "while True:\n    pass")
    with pytest.raises(NotebookError, match="Timeout|did not finish"):
        _run(tmp_path, path, cell_timeout=5, timeout=120)
