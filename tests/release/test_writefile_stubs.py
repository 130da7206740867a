"""Each kind of %%writefile cell gets a stub that keeps its file valid."""

from __future__ import annotations

import ast

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from autograder.errors import ReleaseError
from autograder.release.writefile_stubs import COMMENT_STUB, WritefileAwareClearSolutions, stub_for, writefile_target

KERNEL = {"language": "python", "name": "python3", "display_name": "Python 3"}


def _solution_cell(source: str):
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {
        "solution": True,
        "grade": False,
        "locked": False,
        "grade_id": "x",
        "schema_version": 3,
    }
    return cell


def _clear(source: str) -> str:
    notebook = new_notebook(cells=[_solution_cell(source)], metadata={"kernelspec": KERNEL})
    cleared, _ = WritefileAwareClearSolutions().preprocess(notebook, {})
    return cleared.cells[0].source


def test_python_file_gets_a_python_stub_inside_the_function():
    source = (
        "%%writefile workspace/service/x.py\ndef f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
    )
    cleared = _clear(source)
    assert cleared.startswith("%%writefile workspace/service/x.py\n")
    body = cleared.split("\n", 1)[1]
    ast.parse(body)  # still valid Python
    assert "    raise NotImplementedError()" in body and "return 1" not in body


@pytest.mark.parametrize(
    "path",
    [
        "workspace/Dockerfile",
        "workspace/docker-compose.yml",
        "workspace/k8s/deployment.yaml",
        "workspace/terraform/main.tf",
        "workspace/scripts/smoke.sh",
        "workspace/.dockerignore",
    ],
)
def test_non_python_files_get_a_comment_never_a_raise(path):
    source = f"%%writefile {path}\nfirst: line\n### BEGIN SOLUTION\nsecret: answer\n### END SOLUTION\nlast: line\n"
    cleared = _clear(source)
    assert cleared.splitlines()[0] == f"%%writefile {path}"
    assert "raise" not in cleared and "NotImplementedError" not in cleared
    assert COMMENT_STUB in cleared and "secret" not in cleared
    assert "first: line" in cleared and "last: line" in cleared


def test_yaml_stub_still_parses():
    cleared = _clear(
        "%%writefile k8s/service.yaml\napiVersion: v1\n### BEGIN SOLUTION\nkind: Service\n### END SOLUTION\n"
    )
    assert yaml.safe_load(cleared.split("\n", 1)[1]) == {"apiVersion": "v1"}


def test_whole_solution_cell_keeps_its_magic_line():
    cleared = _clear("%%writefile workspace/Dockerfile\nFROM python:3.11-slim\nUSER 10001\n")
    assert cleared == "%%writefile workspace/Dockerfile\n# YOUR CODE HERE"


def test_given_file_without_region_stays_as_written():
    cell = new_code_cell("%%writefile workspace/Dockerfile\nFROM python:3.11-slim\n")
    notebook = new_notebook(cells=[cell], metadata={"kernelspec": KERNEL})
    cleared, _ = WritefileAwareClearSolutions().preprocess(notebook, {})
    assert cleared.cells[0].source == "%%writefile workspace/Dockerfile\nFROM python:3.11-slim\n"


def test_ordinary_python_cells_keep_nbgrader_behaviour():
    cleared = _clear("x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n")
    assert "raise NotImplementedError()" in cleared and "y = 2" not in cleared


def test_unknown_file_type_is_a_clear_error():
    with pytest.raises(ReleaseError, match="no stub is known"):
        stub_for("workspace/data.xml")


def test_a_json_stub_leaves_the_file_invalid_on_purpose():
    import json

    with pytest.raises(json.JSONDecodeError):
        json.loads('{"panels": [\n' + stub_for("workspace/dashboard.json") + "\n]}")


def test_writefile_target_reads_append_and_plain_forms():
    assert writefile_target("%%writefile a/b.py\nx") == "a/b.py"
    assert writefile_target("%%writefile -a a/b.py\nx") == "a/b.py"
    assert writefile_target("print(1)") is None


def test_released_notebook_never_puts_python_in_non_python_files():
    from autograder import course

    for step in course.STEPS:
        if not step.notebook:
            continue
        notebook = nbformat.read(str(course.EXERCISES_DIR / course.ASSIGNMENT / step.notebook), as_version=4)
        for cell in notebook.cells:
            target = writefile_target(cell.source) if cell.cell_type == "code" else None
            if target and not target.endswith(".py"):
                assert "raise NotImplementedError" not in cell.source, target
