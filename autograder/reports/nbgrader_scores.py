"""Scores for nbgrader from the trusted grading: each grade cell's points, from ``grade``'s results.

nbgrader scores a grade cell by what the learner's kernel printed in it, so a hidden output or a
redefined ``checkpoint`` decides the score. Here a grade cell's points come from ``python -m
autograder grade`` (the checks and hidden tests, outside the learner's kernel):

- a checkpoint cell earns the points its checks earned (the cell's ``checkpoint("NN", only=[...])``
  read from the course's release, never from the learner's copy of the cell);
- a hidden-test cell earns what the step's hidden tests earned;
- without results (the submission could not be graded) every cell earns 0, and says why.

Two ways in: ``TrustedScores`` replaces nbgrader's ``Execute`` in ``autograde`` (the shipped
nbgrader_config.py), so ``nbgrader autograde`` never runs a learner's kernel and writes these
scores (as partial credit: the cell's value) to its gradebook; and ``write_gradebook`` puts the
results of ``grade-all`` into an existing gradebook database.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Float, Unicode

from autograder import course, hidden


@dataclass(frozen=True)
class CellScore:
    grade_id: str
    score: float
    max_score: float
    lines: tuple[str, ...]  # what the cell shows: one line per check
    needs_person: bool = False  # a check could not run here (no Docker engine), or nothing was graded

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def checkpoint_call(source: str) -> tuple[str, list[str] | None] | None:
    """(step, only) of the ``checkpoint(...)`` call in a cell's source; None when it has none."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "checkpoint" and node.args:
            step = ast.literal_eval(node.args[0])
            only = next((ast.literal_eval(k.value) for k in node.keywords if k.arg == "only"), None)
            return str(step), list(only) if only else None
    return None


@functools.cache
def _released(notebook_name: str):
    """The course's release of a notebook (read once per process)."""
    import nbformat

    return nbformat.read(str(course.EXERCISES_DIR / course.ASSIGNMENT / notebook_name), as_version=4)


@functools.cache
def grade_cells(notebook_name: str) -> dict[str, tuple[float, str, list[str] | None]]:
    """The grade cells of a released notebook: grade_id -> (points, step, checks or None for all;
    a cell without a checkpoint call stands for the step's hidden tests, checks = [])."""
    step = next(s.id for s in course.STEPS if s.notebook == notebook_name)
    found = {}
    for cell in _released(notebook_name).cells:
        meta = cell.metadata.get("nbgrader") or {}
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        call = checkpoint_call(cell.source)
        if call is None:
            found[meta["grade_id"]] = (float(meta.get("points", 0)), step, [])
        else:
            found[meta["grade_id"]] = (float(meta.get("points", 0)), call[0], call[1])
    return found


def cell_scores(results: dict | None, notebook_name: str, *, why_not: str = "") -> dict[str, CellScore]:
    """Each grade cell of ``notebook_name`` scored from a results.json of ``grade`` (None: the
    submission was not graded, for the reason ``why_not``)."""
    scores = {}
    tests = {t.get("extra_data", {}).get("check"): t for t in (results or {}).get("tests", [])}
    for grade_id, (points, step, only) in grade_cells(notebook_name).items():
        if results is None:
            scores[grade_id] = CellScore(grade_id, 0.0, points, (f"not graded: {why_not or 'no results'}",), True)
            continue
        if only == []:
            wanted = [hidden.check_id(step)]
        elif only is None:
            wanted = [key for key in tests if key and key.startswith(f"{step}.") and not hidden.is_hidden(key)]
        else:
            wanted = [f"{step}.{name}" for name in only]
        found = [tests[key] for key in wanted if key in tests]
        if not found:
            scores[grade_id] = CellScore(grade_id, 0.0, points, (f"not graded: step {step} was not graded",), True)
            continue
        earned = sum(float(t["score"]) for t in found)
        possible = sum(float(t["max_score"]) for t in found) or 1.0
        # The cell's points and its checks' agree (a test of the course says so); scale if not.
        score = round(min(points, earned * points / possible), 4)
        lines = tuple(_line(t) for t in found)
        skipped = any(t.get("extra_data", {}).get("verdict") == "skipped" for t in found)
        scores[grade_id] = CellScore(grade_id, score, points, lines, skipped)
    return scores


def _line(test: dict) -> str:
    output = " ".join(str(test.get("output", "")).split("\nHint:")[0].split())
    return f"{test['status']:6} {float(test['score']):g}/{float(test['max_score']):g}  {test['name']}: {output[:400]}"


def _scored_outputs(score: CellScore) -> list:
    """A cell's outputs: the checks' lines, then the score as the cell's value (nbgrader's
    partial credit)."""
    from nbformat.v4 import new_output

    return [
        new_output("stream", name="stdout", text=score.text),
        new_output("execute_result", data={"text/plain": f"{score.score:g}"}, execution_count=None),
    ]


def apply(nb, scores: dict[str, CellScore], notebook_name: str) -> None:
    """Give each grade cell of ``nb`` its trusted outputs; a hidden-test cell shows the release's
    source (nbgrader restored the hidden tests' code into it: feedback must not show it)."""
    released = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in _released(notebook_name).cells
        if (c.metadata.get("nbgrader") or {}).get("grade_id")
    }
    for cell in nb.cells:
        grade_id = (cell.metadata.get("nbgrader") or {}).get("grade_id")
        if cell.cell_type != "code" or grade_id not in scores:
            continue
        cell.outputs = _scored_outputs(scores[grade_id])
        if hidden.BEGIN in cell.source and grade_id in released:
            cell.source = released[grade_id]


class TrustedScores(NbGraderPreprocessor):
    """nbgrader ``autograde``'s stand-in for ``Execute``: no kernel runs. The submission's folder
    is graded once by ``python -m autograder grade`` (its results and feedback kept next to the
    autograded notebooks, in ``course-grading/``), and each grade cell gets its trusted score."""

    sandbox = Unicode("require", help="grade's --sandbox: require, auto or off").tag(config=True)
    timeout = Float(3600.0, help="seconds one submission's grading may take").tag(config=True)
    steps = Unicode("", help='grade\'s --steps ("00,02"): only these steps; empty: every step').tag(config=True)
    _graded: dict = {}  # noqa: RUF012 - one grading per submission for the life of the process

    def preprocess(self, nb, resources):
        from nbgrader.coursedir import CourseDirectory

        student = resources["nbgrader"]["student"]
        assignment = resources["nbgrader"]["assignment"]
        notebook_name = resources["nbgrader"]["notebook"] + ".ipynb"
        coursedir = CourseDirectory(config=self.config)
        submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
        out = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment)) / "course-grading"
        results, why_not = self._results(submitted, out)
        if why_not:
            self.log.error("%s/%s not graded: %s", student, assignment, why_not)
        scores = cell_scores(results, notebook_name, why_not=why_not)
        apply(nb, scores, notebook_name)
        # SaveAutoGrades, after us, clears nbgrader's "needs manual grade": ManualGradingFlags, after it, sets it.
        resources["course_needs_person"] = [grade_id for grade_id, score in scores.items() if score.needs_person]
        notes = (results or {}).get("extra_data", {}).get("submission_notes", [])
        resources["course_notes"] = [note for note in notes if notebook_name in note]
        return nb, resources

    def _results(self, submitted: Path, out: Path) -> tuple[dict | None, str]:
        from autograder.submissions import grade_in_process

        key = (str(submitted), _stamp(submitted))
        if key not in self._graded:
            self.log.info("Grading %s outside the kernel (python -m autograder grade)", submitted)
            options = ["--sandbox", self.sandbox, *(["--steps", self.steps] if self.steps else [])]
            row = grade_in_process(submitted, out, options, self.timeout)
            self._graded[key] = (row.results, row.problem.removeprefix("not graded: "))
            flags = (row.results or {}).get("extra_data", {}).get("flags", [])
            if flags:  # nbgrader keeps no such thing: say it here, and in formgrader (ManualGradingFlags)
                self.log.warning("%s flagged %s: see %s", submitted, ", ".join(flags), out / "feedback.md")
        return self._graded[key]


def _stamp(folder: Path) -> tuple:
    """What changes when a learner's submission is collected again."""
    return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in folder.glob("*.ipynb")))


def write_gradebook(rows, db_url: str, assignment: str = course.ASSIGNMENT) -> int:
    """Put the trusted scores of ``grade-all``'s rows (submissions.GradedLearner) into nbgrader's
    gradebook at ``db_url``, as ``autograde`` would: ``formgrader`` and ``nbgrader export`` then
    show them. The assignment must be in it already (``nbgrader generate_assignment`` records its
    grade cells). A learner not graded gets 0 everywhere, marked for manual grading. Returns the
    number of learners written."""
    from nbgrader.api import Gradebook, MissingEntry

    from autograder.errors import AutograderError

    with Gradebook(db_url) as gradebook:
        try:
            recorded = gradebook.find_assignment(assignment)
        except MissingEntry:
            raise AutograderError(
                f"the gradebook {db_url} has no assignment {assignment}",
                hint=f"run `nbgrader generate_assignment {assignment}` first: it records the grade cells",
            ) from None
        notebooks = [notebook.name for notebook in recorded.notebooks]
        for row in rows:
            gradebook.update_or_create_student(row.learner)
            gradebook.update_or_create_submission(assignment, row.learner)
            for notebook in notebooks:
                scores = cell_scores(row.results, f"{notebook}.ipynb", why_not=row.problem)
                for grade_id, score in scores.items():
                    grade = gradebook.find_grade(grade_id, notebook, assignment, row.learner)
                    grade.auto_score = score.score
                    grade.needs_manual_grade = score.needs_person
            gradebook.db.commit()
    return len(rows)


class ManualGradingFlags(NbGraderPreprocessor):
    """After nbgrader's SaveAutoGrades: the grade cells whose checks could not run here (no Docker
    engine) or that were not graded are marked "needs manual grading" in the gradebook, so
    formgrader lists them instead of showing a quiet 0; and what ``grade`` noted about this
    notebook (tampering, a refused file) becomes the automatic comment of its first solution cell,
    where formgrader shows it."""

    def preprocess(self, nb, resources):
        from nbgrader.api import Gradebook

        flagged = resources.get("course_needs_person") or []
        notes = resources.get("course_notes") or []
        info = resources["nbgrader"]
        first_solution = next(
            (
                c.metadata["nbgrader"]["grade_id"]
                for c in nb.cells
                if (c.metadata.get("nbgrader") or {}).get("solution")
            ),
            None,
        )
        if not flagged and not (notes and first_solution):
            return nb, resources
        with Gradebook(info["db_url"]) as gradebook:
            for grade_id in flagged:
                grade = gradebook.find_grade(grade_id, info["notebook"], info["assignment"], info["student"])
                grade.needs_manual_grade = True
            if notes and first_solution:
                comment = gradebook.find_comment(first_solution, info["notebook"], info["assignment"], info["student"])
                said = [comment.auto_comment] if comment.auto_comment else []
                comment.auto_comment = "\n".join([*said, *(f"Autograder: {note}" for note in notes)])
            gradebook.db.commit()
        return nb, resources
