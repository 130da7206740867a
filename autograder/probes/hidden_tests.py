"""The hidden tests of one step, run against the learner's workspace inside the sandbox.

The grader hands over the test code (``in/hidden.py``: the course's prelude for the step, then the
hidden-test cell of the solution notebook); the learner never saw it. It runs in a fresh namespace
on a writable copy of the workspace (step 04's hidden test writes a report there). What comes back
is only that it finished; a failure is the exception's type and message, never the test's code.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import traceback
from pathlib import Path

from .harness import input_path, workspace

COPY = Path("/tmp/hidden-tests-workspace")


def import_workspace_module(name: str, workspace: str | Path = "workspace"):
    """Import ``name`` from the workspace afresh, so the latest %%writefile is what runs (the
    notebooks import this one too: autograder.notebook)."""
    root = str(Path(workspace).resolve())
    sys.dont_write_bytecode = True
    if root not in sys.path:
        sys.path.insert(0, root)
    package = name.split(".", 1)[0]
    for loaded in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[loaded]
    importlib.invalidate_caches()
    return importlib.import_module(name)


def run() -> dict:
    """{"finished": True}, or {"finished": False, "error": "Type: message (service/x.py, line N)"}."""
    code = Path(input_path("hidden.py")).read_text()
    shutil.rmtree(COPY, ignore_errors=True)
    shutil.copytree(workspace(), COPY, symlinks=True)
    if workspace() in sys.path:  # the copy is what the tests import
        sys.path.remove(workspace())
    namespace = {
        "__name__": "__hidden_tests__",
        "WORKSPACE": COPY,
        "import_workspace_module": import_workspace_module,
    }
    try:
        exec(compile(code, "<hidden tests>", "exec"), namespace)  # noqa: S102 - the course's own test code
    except BaseException as error:  # the learner's SystemExit included
        return {"finished": False, "error": _describe(error)}
    return {"finished": True}


def _describe(error: BaseException) -> str:
    """The error and the innermost line of the learner's files it passed through (never a line
    of the hidden tests: they stay hidden)."""
    prefix = str(COPY) + os.sep
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith(prefix)]
    where = f" ({frames[-1].filename[len(prefix) :]}, line {frames[-1].lineno})" if frames else ""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text + where
