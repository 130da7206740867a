"""Grading a whole submission: the notebooks a learner hands in, with or without their workspace.

What counts is what the notebooks write. The workspace is rebuilt from the ``%%writefile`` cells
of the submitted notebooks, read as files (no kernel runs, so nothing a learner's cell prints or
redefines can change a score), into a folder of the grader's; a submitted ``workspace/`` is only
compared with it, and every difference is reported. Then every step's checks grade the rebuilt
workspace outside the learner's process, as ``check`` does, and the step's hidden tests run on it
in the sandbox (``hidden.py``). A notebook that is missing, unreadable
or too large costs the files it would have written, never the rest of the submission; an error in
one step is that step's failure, never the end of the grading.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from autograder import course, hidden, trees
from autograder.checks import for_step
from autograder.checks.result import CheckResult, Verdict
from autograder.errors import AutograderError, NotebookError
from autograder.grading import SCRATCH_PREFIX, StepReport, grade_step
from autograder.release.writefiles import write_files_of
from autograder.settings import Settings, current

NOTEBOOK_LIMIT = 200 * 1024**2  # 100 MB of printed output still grades (about 5 s and 500 MB to read)
DIFFERENCES_SHOWN = 20


@dataclass(frozen=True)
class Submission:
    """Where a learner's notebooks (by step id) and submitted workspace are."""

    root: Path
    notebooks: dict[str, Path]
    workspace: Path | None


@dataclass
class SubmissionReport:
    submission: Submission
    reports: list[StepReport]
    notes: list[str] = field(default_factory=list)  # what the instructor must know: missing notebooks...
    seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def points(self) -> float:
        return sum(r.points for r in self.reports)

    @property
    def max_points(self) -> float:
        return sum(r.max_points for r in self.reports)

    @property
    def flags(self) -> list[str]:
        """Short words for a gradebook: what makes this score need a look."""
        results = [r for report in self.reports for r in report.results]
        found = []
        if any(r.verdict is Verdict.SKIPPED for r in results):
            found.append("skipped")
        if any(report.unsandboxed for report in self.reports):
            found.append("unsandboxed")
        if any(note.startswith("workspace differs") for note in self.notes):
            found.append("workspace differs")
        if any(note.startswith(("missing notebook", "unreadable notebook", "refused")) for note in self.notes):
            found.append("notebook problem")
        if any(note.startswith("tampered") for note in self.notes):
            found.append("tampered")
        if any(r.id.endswith(".grading-error") or r.message.startswith("not graded:") for r in results):
            found.append("not graded")
        return found


def find(root: Path) -> Submission:
    """The course's notebooks in ``root``, or in its one subfolder holding them (nbgrader's
    ``submitted/<student>/<assignment>/`` layout, handed ``submitted/<student>``)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise AutograderError(f"the submission {root} is not a folder", hint="pass the folder of one learner")
    names = {step.notebook: step.id for step in course.STEPS if step.notebook}
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())]
    for folder in candidates:
        notebooks = {
            names[p.name]: p for p in folder.iterdir() if p.name in names and p.is_file() and not p.is_symlink()
        }
        if notebooks:
            workspace = folder / course.WORKSPACE_NAME
            usable = workspace.is_dir() and not workspace.is_symlink()
            return Submission(folder, notebooks, workspace if usable else None)
    raise AutograderError(
        f"no notebook of the course in {root}",
        hint="a submission holds the notebooks learners hand in (" + ", ".join(sorted(names)) + ")",
    )


def rebuild_workspace(submission: Submission, destination: Path) -> tuple[Path, list[str]]:
    """Write what the submitted notebooks' ``%%writefile`` cells write, in course order, under
    ``destination``; return the workspace and notes on what could not be written."""
    notes = []
    for step in course.STEPS:
        if not step.notebook:
            continue
        notebook = submission.notebooks.get(step.id)
        if notebook is None:
            notes.append(f"missing notebook {step.notebook}: the files it writes are missing too")
            continue
        if notebook.stat().st_size > NOTEBOOK_LIMIT:
            notes.append(
                f"unreadable notebook {step.notebook}: over {NOTEBOOK_LIMIT // 1024**2} MB; clear its outputs "
                "(jupyter nbconvert --clear-output --inplace) and grade it again"
            )
            continue
        refused: list[str] = []
        try:
            write_files_of(notebook, destination, refused=refused, strip_markers=True)
        except NotebookError as error:
            notes.append(f"unreadable notebook {step.notebook}: {error.message}")
        except (OSError, UnicodeError, ValueError) as error:
            notes.append(f"unreadable notebook {step.notebook}: a file it writes failed ({error})")
        notes += [
            f"refused a file of {step.notebook}: {target!r} is outside the notebook's folder" for target in refused
        ]
    workspace = destination / course.WORKSPACE_NAME
    workspace.mkdir(parents=True, exist_ok=True)
    return workspace, notes


# Code that takes over what a checkpoint cell shows: harmless to `grade` (no kernel runs), but an
# instructor wants to know, and nbgrader's autograde would believe it.
TAMPERING_NAMES = ("checkpoint",)
TAMPERING_TEXT = ("ast_node_interactivity",)


def tampering(submission: Submission, released: Path | None = None) -> list[str]:
    """Notes on the code cells of the release a submission edited, deleted or changed in type
    (checkpoints, hidden-test cells: nbgrader's checksums say), and on cells that redefine
    ``checkpoint`` or hide output. None of it changes a score here."""
    import nbformat
    from nbgrader import utils

    released = released or course.EXERCISES_DIR / course.ASSIGNMENT
    notes = []
    for path in sorted(submission.notebooks.values()):
        name = path.name
        try:
            if path.stat().st_size > NOTEBOOK_LIMIT:
                continue
            theirs = nbformat.read(str(path), as_version=4)
            ours = nbformat.read(str(released / name), as_version=4)
        except Exception:  # noqa: BLE001 - unreadable notebooks are noted by rebuild_workspace
            continue
        by_id = {}
        for cell in theirs.cells:
            meta = cell.get("metadata", {}).get("nbgrader")
            if isinstance(meta, dict) and meta.get("grade_id"):
                by_id[meta["grade_id"]] = cell
        problems, untouched = [], set()
        for cell in ours.cells:
            meta = cell.metadata.get("nbgrader") or {}
            if cell.cell_type != "code" or meta.get("solution") or not (meta.get("grade") or meta.get("locked")):
                continue
            found = by_id.get(meta["grade_id"])
            if found is None:
                problems.append(f"cell {meta['grade_id']} deleted")
            elif found.cell_type != cell.cell_type:
                problems.append(f"cell {meta['grade_id']} changed to {found.cell_type}")
            elif utils.compute_checksum(found) != meta.get("checksum"):
                problems.append(f"cell {meta['grade_id']} edited")
            else:
                untouched.add(id(found))
        # The release's own cells (which import checkpoint) are not the learner's doing.
        problems += [
            why
            for cell in theirs.cells
            if cell.cell_type == "code" and id(cell) not in untouched and not _released_as_is(cell, ours)
            for why in _takes_over(cell.source)
        ]
        if problems:
            notes.append(f"tampered with {name}: " + "; ".join(dict.fromkeys(problems)))
    return notes


def _released_as_is(cell, released) -> bool:
    return any(cell.source == ours.source for ours in released.cells if ours.cell_type == "code")


def _takes_over(source: str) -> list[str]:
    import ast

    found = [f"a cell sets {text}" for text in TAMPERING_TEXT if text in source]
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return found
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.asname or alias.name for alias in node.names]
        found += [f"a cell redefines {name}()" for name in names if name in TAMPERING_NAMES]
    return found


def workspace_differences(rebuilt: Path, submitted: Path | None) -> list[str]:
    """Notes on how the submitted workspace differs from what the notebooks write."""
    if submitted is None:
        return []
    ignored = trees.ALWAYS_IGNORED | {".catch-up-backups", ".venv", ".git"}
    found = trees.differences(rebuilt, submitted, ignore=ignored)
    if not found:
        return []
    shown = "; ".join(line.split(maxsplit=1)[1] + " " + line.split()[0] for line in found[:DIFFERENCES_SHOWN])
    more = f" and {len(found) - DIFFERENCES_SHOWN} more" if len(found) > DIFFERENCES_SHOWN else ""
    return [
        f"workspace differs from what the notebooks write ({len(found)} files: {shown}{more}); "
        "the notebooks' version was graded"
    ]


def grade(root: Path, *, steps: Iterable[str] | None = None, settings: Settings | None = None) -> SubmissionReport:
    """Grade the submission in ``root``: every step (or those of ``steps``), on the workspace its
    notebooks write."""
    started = time.monotonic()
    submission = find(root)
    settings = settings or current()
    wanted = [course.step(s) for s in steps] if steps else list(course.STEPS)
    # Named like a grading's scratch (with this PID): a killed grade's folder is swept the same way.
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-submission-"))
    try:
        workspace, notes = rebuild_workspace(submission, scratch)
        notes += workspace_differences(workspace, submission.workspace)
        notes += tampering(submission)
        if steps:
            notes.append(
                "graded only step(s) " + ", ".join(s.id for s in wanted) + " (--steps): the points cover those"
            )
        hidden_cells = hidden.cells()
        if not hidden_cells:
            notes.append("no hidden tests here (they live in solutions/): the points cover the visible checks only")
        reports, step_seconds = [], {}
        for step in wanted:
            step_started = time.monotonic()
            report = _grade_step(step, workspace, settings)
            if step.id in hidden_cells:
                report = dataclasses.replace(
                    report, results=[*report.results, _run_hidden(hidden_cells[step.id], workspace, settings)]
                )
            reports.append(_without_paths(report, workspace))
            step_seconds[step.id] = time.monotonic() - step_started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    notes = [note.replace(f"{submission.root}{os.sep}", "") for note in notes]
    return SubmissionReport(submission, reports, notes, seconds=time.monotonic() - started, step_seconds=step_seconds)


def _without_paths(report: StepReport, workspace: Path) -> StepReport:
    """The report with the grader's folder for the rebuilt workspace named as the learner knows it."""

    def clean(text: str) -> str:
        return text.replace(str(workspace), "the workspace your notebooks write")

    results = [dataclasses.replace(r, message=clean(r.message), hint=clean(r.hint)) for r in report.results]
    return dataclasses.replace(report, results=results, notes=tuple(clean(n) for n in report.notes))


def _grade_step(step: course.Step, workspace: Path, settings: Settings) -> StepReport:
    """The step's report; an error of the grader's (a missing engine is a skip, not an error)
    becomes one failed result worth the step's points, so the rest still gets graded."""
    try:
        return grade_step(step.id, workspace, settings=settings)
    except AutograderError as error:
        failed = CheckResult(
            id=f"{step.id}.grading-error",
            title=f"step {step.id} could be graded",
            verdict=Verdict.FAILED,
            points=0.0,
            max_points=for_step(step.id).max_points,
            message=f"not graded: {error}",
            hint="an instructor must look at this submission",
        )
        return StepReport(step, [failed])


def _run_hidden(cell: hidden.HiddenCell, workspace: Path, settings: Settings) -> CheckResult:
    """The step's hidden tests; an error of the grader's is their failure, with the reason."""
    try:
        return hidden.run(cell, workspace, settings)
    except AutograderError as error:
        return CheckResult(
            id=hidden.check_id(cell.step),
            title=hidden.TITLE,
            verdict=Verdict.FAILED,
            points=0.0,
            max_points=cell.points,
            message=f"not graded: {error}",
            hint="an instructor must look at this submission",
        )


def reference_submission(folder: Path) -> Path:
    """What a learner who solved everything hands in, written to ``folder``: the release's
    notebooks, each solution cell holding the reference's code (no nbgrader markers), every other
    cell as released. For rehearsing a grading, tests and benchmarks."""
    import nbformat

    from autograder.release.writefiles import without_solution_markers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for step in course.STEPS:
        if not step.notebook:
            continue
        released = nbformat.read(str(course.EXERCISES_DIR / course.ASSIGNMENT / step.notebook), as_version=4)
        solutions = nbformat.read(str(course.SOLUTIONS_DIR / course.ASSIGNMENT / step.notebook), as_version=4)
        solved = {
            c.metadata["nbgrader"]["grade_id"]: c.source
            for c in solutions.cells
            if c.metadata.get("nbgrader", {}).get("solution")
        }
        for cell in released.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution"):
                cell.source = without_solution_markers(solved[meta["grade_id"]])
        nbformat.write(released, str(folder / step.notebook))
    return folder


@dataclass(frozen=True)
class GradedLearner:
    """One row of a batch: the learner's folder name, and their results.json (None: not graded)."""

    learner: str
    results: dict | None
    problem: str = ""  # why there are no results
    seconds: float = 0.0


def learners(root: Path) -> list[Path]:
    """The submission folders of a batch: one per learner (nbgrader's ``submitted/``, say)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise AutograderError(f"{root} is not a folder", hint="pass the folder holding one folder per learner")
    found = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))
    if not found:
        raise AutograderError(f"{root} holds no submission folder", hint="one folder per learner, named after them")
    return found


def grade_all(
    root: Path,
    out: Path,
    *,
    steps: Iterable[str] | None = None,
    jobs: int = 2,
    sandbox: str | None = None,
    timeout: float = 3600.0,
    progress=None,
) -> list[GradedLearner]:
    """Grade every learner's folder of ``root`` with ``grade`` in its own process, ``jobs`` at a
    time, results under ``out/<learner>/``; a submission that fails to grade is a row saying why,
    and the batch goes on."""
    import concurrent.futures

    folders = learners(root)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = [*(["--steps", ",".join(steps)] if steps else []), *(["--sandbox", sandbox] if sandbox else [])]

    def one(folder: Path) -> GradedLearner:
        return grade_in_process(folder, out / folder.name, options, timeout)

    rows = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for row in pool.map(one, folders):
            rows.append(row)
            if progress:
                progress(row)
    return rows


def grade_in_process(folder: Path, out: Path, options: list[str], timeout: float) -> GradedLearner:
    import json
    import subprocess
    import sys

    from autograder import interrupts

    started = time.monotonic()
    shutil.rmtree(out, ignore_errors=True)
    results = out / "results.json"
    command = [sys.executable, "-m", "autograder", "grade", str(folder), "--out", str(out), *options]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()  # the grading removes its containers on SIGTERM
        _, stderr = process.communicate()
        return GradedLearner(folder.name, None, f"not graded: over {timeout:.0f} s", time.monotonic() - started)
    except BaseException:
        process.terminate()
        process.wait()
        raise
    interrupts.raise_if_interrupted()
    seconds = time.monotonic() - started
    if process.returncode != 0 or not results.is_file():
        lines = stderr.strip().splitlines()
        # The CLI's "error: ..." line says why; else whatever it printed last.
        why = next((line for line in lines if line.startswith("error: ")), lines[-1] if lines else "")
        why = why.removeprefix("error: ") or f"exit status {process.returncode}"
        return GradedLearner(folder.name, None, f"not graded: {why[:500]}", seconds)
    return GradedLearner(folder.name, json.loads(results.read_text()), "", seconds)
