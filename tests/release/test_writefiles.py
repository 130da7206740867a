"""write_files_of writes what IPython's %%writefile would, without a kernel, and only inside."""

from __future__ import annotations

import nbformat
import pytest

from autograder.errors import NotebookError
from autograder.release.writefiles import write_files_of

BODIES = ["plain", "ends with a newline\n", "ends with blank lines\n\n", "a  \n\n\nb\n\n", "  ", ""]


def _notebook(path, *sources):
    document = nbformat.v4.new_notebook()
    document.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(document, str(path))
    return path


@pytest.mark.parametrize("body", BODIES)
def test_the_file_is_what_ipython_writes(tmp_path, body):
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.instance().run_cell(f"%%writefile {tmp_path / 'by-ipython.txt'}\n{body}")
    write_files_of(_notebook(tmp_path / "n.ipynb", f"%%writefile ours.txt\n{body}"), tmp_path)
    if not body:  # IPython refuses an empty cell body and writes nothing; so do we
        assert not (tmp_path / "by-ipython.txt").exists() and not (tmp_path / "ours.txt").exists()
        return
    assert (tmp_path / "ours.txt").read_bytes() == (tmp_path / "by-ipython.txt").read_bytes()


def test_a_target_outside_the_folder_is_refused_never_written(tmp_path):
    inside = tmp_path / "submission"
    inside.mkdir()
    notebook = _notebook(inside / "n.ipynb", "%%writefile ../escaped.txt\nx", "%%writefile /tmp/abs.txt\nx")
    refused: list[str] = []
    assert write_files_of(notebook, inside, refused=refused) == []
    assert refused == ["../escaped.txt", "/tmp/abs.txt"] and not (tmp_path / "escaped.txt").exists()
    with pytest.raises(NotebookError, match="outside its folder"):
        write_files_of(notebook, inside)
