"""The course's nbgrader configuration, in one place: the shipped ``nbgrader_config.py`` (what
``nbgrader generate_assignment``, ``autograde``, ``formgrader`` and ``generate_feedback`` read when
run from the repository root) and ``python -m autograder release`` both apply ``configure``.

- The source is ``solutions/``; the release, submissions, autograded copies, feedback and the
  gradebook live under ``build/nbgrader/`` (``exercises/`` is ``release``'s, checked by CI).
- ``workspace/`` (the reference files) and ``hidden/`` (step 04's faulty services) are never
  released, so never copied into a graded folder either.
- ``%%writefile`` cells get the stub that fits the file they write (WritefileAwareClearSolutions),
  not ``raise NotImplementedError()`` inside a Dockerfile.
- A grade cell a learner split is sanitised without stopping ``autograde`` (nbgrader_sanitize.py);
  one they deleted is put back, so it gets its score (nbgrader's own code raises on this course).
- ``autograde`` never runs a learner's kernel: ``TrustedScores`` (reports/nbgrader_scores.py)
  takes ``Execute``'s place, grades the submission with ``python -m autograder grade`` (checks and
  hidden tests outside the learner's process, in the sandbox) and gives each grade cell its
  trusted score, so no output, a redefined ``checkpoint`` or a dead kernel changes a score; cells
  whose checks could not run (no Docker engine) are marked for manual grading (ManualGradingFlags).
- Where a kernel does run (``nbgrader validate``, a learner's Run All), cells may run as long as
  the course's checkpoints need (a model probe, a test-suite campaign, an image build), and their
  output is bounded.
"""

from __future__ import annotations

from autograder.course import BUILD_DIR, REPO_ROOT, SOLUTIONS_DIR, WORKSPACE_NAME

COURSE_ID = "resnet50-service"
NBGRADER_DIR = BUILD_DIR / "nbgrader"
DB_URL = f"sqlite:///{NBGRADER_DIR / 'gradebook.db'}"
# Never released: the reference workspace (learners build their own) and the hidden grading material.
RELEASE_IGNORE = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", WORKSPACE_NAME, "hidden"]
CELL_TIMEOUT_SECONDS = 1200  # step 04's campaign and step 05's build run in one checkpoint cell
OUTPUT_LINES = 1000
TRUSTED_SCORES = "autograder.reports.nbgrader_scores.TrustedScores"
MANUAL_GRADING_FLAGS = "autograder.reports.nbgrader_scores.ManualGradingFlags"
TRACEBACK_LINES = 100


def configure(c) -> None:
    """Apply the course's settings to the traitlets Config ``c``."""
    from nbgrader.converters import Autograde, GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import ClearSolutions, DeduplicateIds, Execute, OverwriteCells, SaveAutoGrades
    from traitlets.config import Config

    from autograder.release.nbgrader_sanitize import DeduplicateIdsCleanly, OverwriteCellsRestoringDeleted
    from autograder.release.writefile_stubs import WritefileAwareClearSolutions

    # nbgrader creates its gradebook's file but not the folder holding it.
    NBGRADER_DIR.mkdir(parents=True, exist_ok=True)
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.root = str(REPO_ROOT)
    c.CourseDirectory.source_directory = str(SOLUTIONS_DIR.relative_to(REPO_ROOT))
    for name in ("release", "submitted", "autograded", "feedback"):
        setattr(c.CourseDirectory, f"{name}_directory", str(NBGRADER_DIR / name))
    c.CourseDirectory.db_url = DB_URL
    c.CourseDirectory.ignore = RELEASE_IGNORE
    default = GenerateAssignment(coursedir=CourseDirectory(config=Config()), config=Config()).preprocessors
    c.GenerateAssignment.preprocessors = [
        WritefileAwareClearSolutions if step is ClearSolutions else step for step in default
    ]
    autograder = Autograde(coursedir=CourseDirectory(config=Config()), config=Config())
    fixed = {DeduplicateIds: DeduplicateIdsCleanly, OverwriteCells: OverwriteCellsRestoringDeleted}
    c.Autograde.sanitize_preprocessors = [fixed.get(step, step) for step in autograder.sanitize_preprocessors]
    # A grade cell the learner deleted comes back (and gets its trusted score) instead of a blank.
    c.OverwriteCellsRestoringDeleted.add_missing_cells = True
    # Named, not imported: the preprocessors belong to the reports layer, above this one.
    autograde = []
    for step in autograder.autograde_preprocessors:
        autograde.append(TRUSTED_SCORES if step is Execute else step)
        if step is SaveAutoGrades:
            autograde.append(MANUAL_GRADING_FLAGS)
    c.Autograde.autograde_preprocessors = autograde
    c.Execute.timeout = CELL_TIMEOUT_SECONDS
    c.Execute.interrupt_on_timeout = True
    c.LimitOutput.max_lines = OUTPUT_LINES
    c.LimitOutput.max_traceback = TRACEBACK_LINES
