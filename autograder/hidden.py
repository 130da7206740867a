"""Hidden tests: the hidden-test cell of each solution notebook, run by ``grade`` outside any kernel.

nbgrader would run these cells in the learner's kernel, after the learner's own cells, where a
redefined name or a dead kernel decides the score. Here each step's cell runs on the workspace the
notebooks wrote, in a fresh sandboxed process (``probes/hidden_tests.py``), after a prelude of the
course's (not the learner's notebook's) that defines the names the cell uses. Step 00's cell only
reads the learner's files, as check 00 does: it runs in the grader's process.

The result is all or nothing, worth the cell's nbgrader points, and reported without the test's
code: its exception's type and message (the hidden tests' messages are written for learners).
The cells live in ``solutions/``: where there is none (a learner's repository), there are no
hidden tests to run and ``grade`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autograder import course
from autograder.checks.result import CheckResult, Verdict, printable
from autograder.settings import Settings

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
ID_SUFFIX = "hidden-tests"
TITLE = "hidden tests"
HINT = "the hidden tests check the notebook's contract from other angles: read its instructions again"
# What the notebook's own cells define before its hidden-test cell runs, written again here so a
# learner's edited or deleted cell changes nothing. WORKSPACE and import_workspace_module are
# given (probes/hidden_tests.py).
PRELUDES = {
    "00": "",
    "01": "",
    "02": "",
    "03": (
        "import io\n"
        'app_module = import_workspace_module("service.app", WORKSPACE)\n'
        'config = import_workspace_module("service.config", WORKSPACE)\n'
        'model = import_workspace_module("service.model", WORKSPACE)\n'
        "classifier = model.load_classifier(allow_random=True, num_threads=2)\n"
    ),
    "04": "import os\nimport subprocess\nimport sys\n",
    "05": "import os\nimport subprocess\nimport sys\n",
    "06": "import os\nimport subprocess\nimport sys\n",
    "07": "import os\nimport subprocess\nimport sys\n",
}
IN_GRADER = {"00"}  # reads files only; no learner code runs
TIMEOUTS = {"04": 900.0}  # the learner's own suite runs in it
DEFAULT_TIMEOUT = 180.0


@dataclass(frozen=True)
class HiddenCell:
    step: str
    grade_id: str
    points: float
    code: str  # the cell's hidden region, markers excluded


def check_id(step_id: str) -> str:
    return f"{step_id}.{ID_SUFFIX}"


def is_hidden(result_id: str) -> bool:
    return result_id.endswith("." + ID_SUFFIX)


def cells(folder: Path | None = None) -> dict[str, HiddenCell]:
    """Each step's hidden-test cell, from the solution notebooks in ``folder`` ({} without them)."""
    import nbformat

    folder = folder or course.SOLUTIONS_DIR / course.ASSIGNMENT
    found = {}
    for step in course.STEPS:
        path = folder / step.notebook if step.notebook else None
        if path is None or not path.is_file():
            continue
        for cell in nbformat.read(str(path), as_version=4).cells:
            meta = cell.metadata.get("nbgrader") or {}
            if cell.cell_type == "code" and meta.get("grade") and BEGIN in cell.source:
                region = cell.source.split(BEGIN, 1)[1].split(END, 1)[0]
                found[step.id] = HiddenCell(step.id, meta["grade_id"], float(meta.get("points", 0)), region)
    return found


def run(cell: HiddenCell, workspace: Path, settings: Settings) -> CheckResult:
    """The hidden tests of ``cell``'s step on ``workspace``, as one all-or-nothing result."""
    code = PRELUDES.get(cell.step, "") + cell.code
    if cell.step in IN_GRADER:
        error = _run_here(code, workspace)
    else:
        error = _run_sandboxed(cell.step, code, workspace, settings)
    if error:
        message = printable(f"a hidden test failed: {error}")
        return CheckResult(check_id(cell.step), TITLE, Verdict.FAILED, 0.0, cell.points, message, HINT)
    return CheckResult(check_id(cell.step), TITLE, Verdict.PASSED, cell.points, cell.points, "all hidden tests passed")


def _run_here(code: str, workspace: Path) -> str:
    namespace = {"__name__": "__hidden_tests__", "WORKSPACE": Path(workspace)}
    try:
        exec(compile(code, "<hidden tests>", "exec"), namespace)  # noqa: S102 - the course's own test code
    except Exception as error:  # noqa: BLE001 - any failure is the test's verdict
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return ""


def _run_sandboxed(step_id: str, code: str, workspace: Path, settings: Settings) -> str:
    from autograder.grading import Grading
    from autograder.runners import sandbox

    mechanism = sandbox.mechanism(settings)
    with Grading(Path(workspace), settings, mechanism, needs={"probe"}) as grading:
        runner = grading.provide("probe")
        timeout = TIMEOUTS.get(step_id, DEFAULT_TIMEOUT)
        result = runner("hidden_tests:run", {}, inputs={"hidden.py": code.encode()}, timeout=timeout)
    if not result.ok:
        return result.describe_failure()
    value = result.value if isinstance(result.value, dict) else {}
    if value.get("finished") is True:
        return ""
    return str(value.get("error") or "the hidden tests did not finish")
