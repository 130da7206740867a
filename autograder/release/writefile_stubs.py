"""ClearSolutions that knows what file a ``%%writefile`` cell writes.

nbgrader's stock ClearSolutions replaces every solution region with the notebook language's stub,
so a ``%%writefile Dockerfile`` cell would get ``raise NotImplementedError()`` inside a Dockerfile.
This preprocessor picks the stub by the written file's type and always keeps the magic line.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from nbgrader import utils
from nbgrader.preprocessors import ClearSolutions

from autograder.errors import ReleaseError

PYTHON_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
COMMENT_STUB = "# YOUR CODE HERE"
# JSON has no comments: the stub is deliberately invalid, so a file left blank fails loudly (as
# raise NotImplementedError() does in Python) instead of parsing as something empty.
JSON_STUB = "// YOUR CODE HERE (JSON has no comments: replace this line)"

# Files whose comment syntax is '#': a comment line is a valid stub that leaves the file parseable.
HASH_COMMENT_SUFFIXES = {
    ".yml",
    ".yaml",
    ".tf",
    ".tfvars",
    ".hcl",
    ".sh",
    ".bash",
    ".toml",
    ".cfg",
    ".ini",
    ".conf",
    ".txt",
    ".env",
    ".properties",
    ".dockerignore",
    ".gitignore",
}
HASH_COMMENT_NAMES = {"Dockerfile", "Containerfile", "Makefile", ".dockerignore", ".gitignore", ".env"}

_WRITEFILE = re.compile(r"^%%writefile(?:\s+(?:-a|--append))?\s+(?P<path>\S+)\s*$")


def writefile_target(source: str) -> str | None:
    """The path a ``%%writefile`` cell writes, or None for any other cell."""
    first_line = source.split("\n", 1)[0]
    match = _WRITEFILE.match(first_line.strip())
    return match.group("path") if match else None


def stub_for(path: str) -> str:
    """The stub that keeps the written file valid for its type."""
    name = PurePosixPath(path).name
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in {".py", ".pyi"}:
        return PYTHON_STUB
    if name in HASH_COMMENT_NAMES or name.startswith("Dockerfile") or suffix in HASH_COMMENT_SUFFIXES:
        return COMMENT_STUB
    if suffix == ".json":
        return JSON_STUB
    raise ReleaseError(
        f"a solution region in a %%writefile cell for {path!r}: no stub is known for that file type",
        hint="solution regions work in .py, Dockerfile, YAML, JSON, HCL, shell, TOML and text files; "
        "for other files give the learner the whole file or add the type to writefile_stubs.py",
    )


class WritefileAwareClearSolutions(ClearSolutions):
    """ClearSolutions, with stubs that fit the file each ``%%writefile`` cell writes."""

    def preprocess_cell(self, cell, resources, cell_index):
        target = writefile_target(cell.source) if cell.cell_type == "code" else None
        if target is None:
            return super().preprocess_cell(cell, resources, cell_index)

        magic, _, body = cell.source.partition("\n")
        has_region = self.begin_solution_delimeter in body
        if not has_region and not utils.is_solution(cell):
            return cell, resources  # a file given to the learner as it is
        stub = stub_for(target)
        if has_region:
            cell.source = body
            saved_stub = self.code_stub
            self.code_stub = {**saved_stub, "writefile": stub}
            try:
                replaced = self._replace_solution_region(cell, "writefile")
            finally:
                self.code_stub = saved_stub
            if replaced and not utils.is_solution(cell) and self.enforce_metadata:
                raise RuntimeError(
                    "Solution region detected in a non-solution cell; please make sure "
                    "all solution regions are within solution cells."
                )
            cell.source = magic + "\n" + cell.source
        else:
            cell.source = magic + "\n" + stub
        return cell, resources
