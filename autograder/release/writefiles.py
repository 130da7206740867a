"""The files a notebook's ``%%writefile`` cells write, without executing the notebook.

Used to lay out the untouched student workspace (what a learner who runs every cell unchanged
gets) for tests and for comparing the student release with the reference solution.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

from autograder.errors import NotebookError
from autograder.release.writefile_stubs import writefile_target

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def without_solution_markers(text: str) -> str:
    """``text`` without nbgrader's solution marker lines: how a solved notebook reads to a learner."""
    return "\n".join(line for line in text.split("\n") if line.strip() not in SOLUTION_MARKERS)


def write_files_of(
    notebook: Path, notebook_dir: Path, *, refused: list[str] | None = None, strip_markers: bool = False
) -> list[Path]:
    """Write every %%writefile cell of ``notebook`` relative to ``notebook_dir``, in cell order.

    A target that would land outside ``notebook_dir`` (absolute, or climbing out with ``..``) is
    never written: it is added to ``refused`` when a list is given, else a NotebookError. With
    ``strip_markers``, nbgrader's solution marker lines are left out, as run-solutions does."""
    try:
        document = nbformat.read(str(notebook), as_version=4)
    except Exception as error:
        raise NotebookError(f"{notebook} is not a readable notebook: {error}", hint="restore it from git") from error
    written = []
    for cell in document.cells:
        target = writefile_target(cell.source) if cell.cell_type == "code" else None
        if target is None:
            continue
        source = cell.source
        if strip_markers:
            source = without_solution_markers(source)
        magic = source.partition("\n")[0]
        body = _magic_body(source)
        if body is None:
            continue  # IPython refuses an empty body and writes nothing
        path = notebook_dir / target
        if not _inside(path, notebook_dir):
            if refused is None:
                raise NotebookError(
                    f"{notebook.name} writes {target!r}, outside its folder",
                    hint="%%writefile targets are paths relative to the notebook, such as workspace/service/app.py",
                )
            refused.append(target)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        append = " -a " in f" {magic} " or "--append" in magic
        with open(path, "a" if append else "w") as handle:
            handle.write(body)
        written.append(path)
    return written


def _magic_body(source: str) -> str | None:
    """The text IPython hands %%writefile for this cell (it normalises the cell first: a final
    newline added, trailing whitespace trimmed), found by IPython's own input transformer
    without a kernel; None when IPython would refuse the cell."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        call = ast.parse(TransformerManager().transform_cell(source)).body[0].value
        body = call.args[2].value
    except (SyntaxError, AttributeError, IndexError, TypeError):
        return None
    return body if isinstance(body, str) and body else None


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` stays in ``folder`` once resolved (``..`` and links followed)."""
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True
