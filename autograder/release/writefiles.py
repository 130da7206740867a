"""The files a notebook's ``%%writefile`` cells write, without executing the notebook.

Used to lay out the untouched student workspace (what a learner who runs every cell unchanged
gets) for tests and for comparing the student release with the reference solution.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from autograder.errors import NotebookError
from autograder.release.writefile_stubs import writefile_target


def write_files_of(notebook: Path, notebook_dir: Path) -> list[Path]:
    """Write every %%writefile cell of ``notebook`` relative to ``notebook_dir``, in cell order."""
    try:
        document = nbformat.read(str(notebook), as_version=4)
    except Exception as error:
        raise NotebookError(f"{notebook} is not a readable notebook: {error}", hint="restore it from git") from error
    written = []
    for cell in document.cells:
        target = writefile_target(cell.source) if cell.cell_type == "code" else None
        if target is None:
            continue
        magic, _, body = cell.source.partition("\n")
        path = notebook_dir / target
        path.parent.mkdir(parents=True, exist_ok=True)
        append = " -a " in f" {magic} " or "--append" in magic
        # IPython's %%writefile writes the cell body followed by a newline.
        with open(path, "a" if append else "w") as handle:
            handle.write(body + "\n")
        written.append(path)
    return written
