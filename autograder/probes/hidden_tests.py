"""The hidden tests of one step, run against the learner's workspace inside the sandbox.

The grader hands over the test code (``in/hidden.py``: the course's prelude for the step, then the
hidden-test cell of the solution notebook); the learner never saw it. It runs in a fresh namespace
on a writable copy of the workspace (step 04's hidden test writes a report there). What comes back
is only that it finished; a failure is the exception's type and message, never the test's code.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

from .harness import describe_error, input_path, workspace

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
        # Only the learner's lines are named, never one of the hidden tests: they stay hidden.
        return {"finished": False, "error": describe_error(error, str(COPY))}
    return {"finished": True}
