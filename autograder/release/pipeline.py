"""solutions/ -> exercises/ with nbgrader's own generate_assignment converter.

The release is always generated into a scratch folder first. ``release`` then replaces exercises/
with it; ``release --check`` compares the two and lists what differs, changing nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from autograder.course import ASSIGNMENT, EXERCISES_DIR, WORKSPACE_NAME
from autograder.errors import ReleaseError
from autograder.release import nbgrader_setup
from autograder.trees import ALWAYS_IGNORED, differences, relative_files

# In exercises/, a learner's own workspace is theirs: never compared, never overwritten.
STUDENT_OWNED = ALWAYS_IGNORED | {WORKSPACE_NAME}


def _converter(output_root: Path, scratch: Path):
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    config = Config()
    nbgrader_setup.configure(config)  # what the shipped nbgrader_config.py applies
    config.CourseDirectory.release_directory = str(output_root)
    config.CourseDirectory.assignment_id = ASSIGNMENT
    # The gradebook is scratch: generating the release must not leave a database in the repository.
    config.CourseDirectory.db_url = f"sqlite:///{scratch / 'gradebook.db'}"
    coursedir = CourseDirectory(config=config)
    converter = GenerateAssignment(coursedir=coursedir, config=config)
    converter.force = True
    converter.log.setLevel(logging.ERROR)
    return converter


def generate(output_root: Path) -> Path:
    """Generate the student release of the assignment under ``output_root``; return its folder."""
    scratch = Path(tempfile.mkdtemp(prefix="release-"))
    # nbgrader creates its gradebook by running `alembic` in a subprocess: it must be on PATH.
    env_bin = str(Path(sys.executable).parent)
    saved_path = os.environ.get("PATH", "")
    os.environ["PATH"] = env_bin + os.pathsep + saved_path
    try:
        converter = _converter(output_root, scratch)
        try:
            converter.start()
        except Exception as error:  # nbgrader raises plain exceptions with the cell in its log
            raise ReleaseError(
                f"nbgrader could not generate the student version: {error}",
                hint="check the solution notebooks' BEGIN/END SOLUTION and HIDDEN TESTS markers and "
                "the nbgrader cell metadata (grade_id unique, points on grade cells)",
            ) from error
    finally:
        os.environ["PATH"] = saved_path
        shutil.rmtree(scratch, ignore_errors=True)
    return output_root / ASSIGNMENT


def release(check: bool = False, exercises_dir: Path = EXERCISES_DIR) -> list[str]:
    """Regenerate exercises/ (or, with check, only compare). Returns the differences found."""
    with tempfile.TemporaryDirectory(prefix="exercises-") as scratch:
        generated = generate(Path(scratch))
        target = exercises_dir / ASSIGNMENT
        found = differences(generated, target, ignore=STUDENT_OWNED)
        if check or not found:
            return found
        # Replace file by file so a learner's workspace/ inside exercises/ is never touched.
        for name in relative_files(target, STUDENT_OWNED) - relative_files(generated, STUDENT_OWNED):
            (target / name).unlink()
        for name in relative_files(generated, STUDENT_OWNED):
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(generated / name, destination)
        return found
