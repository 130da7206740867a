"""The files a notebook's ``%%writefile`` cells write, without executing the notebook.

Used to lay out the untouched student workspace (what a learner who runs every cell unchanged
gets) for tests and for comparing the student release with the reference solution.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from autograder.errors import NotebookError
from autograder.release.writefile_stubs import writefile_target


def write_files_of(notebook: Path, notebook_dir: Path, *, refused: list[str] | None = None) -> list[Path]:
    """Write every %%writefile cell of ``notebook`` relative to ``notebook_dir``, in cell order.

    A target that would land outside ``notebook_dir`` (absolute, or climbing out with ``..``) is
    never written: it is added to ``refused`` when a list is given, else a NotebookError."""
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
        # IPython's %%writefile writes the cell body followed by a newline.
        with open(path, "a" if append else "w") as handle:
            handle.write(body + "\n")
        written.append(path)
    return written


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` stays in ``folder`` once resolved (``..`` and links followed)."""
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True
