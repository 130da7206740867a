"""Where things live in the repository and in what order the course runs.

The single place that knows the layout, so that moving a folder is a one-line change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = REPO_ROOT / "solutions"
EXERCISES_DIR = REPO_ROOT / "exercises"
# Generated at run time, ignored by git: executed notebooks, gradebooks, reports.
BUILD_DIR = REPO_ROOT / "build"

# nbgrader calls a set of notebooks handed out together an assignment; the course has one per module.
ASSIGNMENT = "resnet-service"
WORKSPACE_NAME = "workspace"
# A learner's repository (release --learner-repo) has no solutions/: the reference workspace, when
# the instructor hands it out (--with-reference), is reference/workspace there.
REFERENCE_BUNDLE = REPO_ROOT / "reference"
REFERENCE_WORKSPACE = (
    SOLUTIONS_DIR / ASSIGNMENT / WORKSPACE_NAME if SOLUTIONS_DIR.is_dir() else REFERENCE_BUNDLE / WORKSPACE_NAME
)
STUDENT_WORKSPACE = EXERCISES_DIR / ASSIGNMENT / WORKSPACE_NAME
# Hidden from learners (the release skips hidden/): the faulty services that grade step 04's tests.
FAULTY_VARIANTS = SOLUTIONS_DIR / ASSIGNMENT / "hidden" / "faulty-variants.toml"


@dataclass(frozen=True)
class Step:
    """One step of the course: a notebook and the checks that grade what it builds."""

    id: str
    title: str
    # File name inside the assignment folder. None while a step's checks exist before its notebook
    # does: step 05's live checks grade the image that notebook 01 already writes.
    notebook: str | None

    @property
    def solution_notebook(self) -> Path | None:
        return SOLUTIONS_DIR / ASSIGNMENT / self.notebook if self.notebook else None


# Course order.
STEPS: tuple[Step, ...] = (
    Step("00", "Setup and orientation", "00-setup-and-orientation.ipynb"),
    Step("01", "Model inference", "01-model-inference.ipynb"),
    Step("02", "Configuration", "02-configuration.ipynb"),
    Step("03", "Flask API", "03-flask-api.ipynb"),
    Step("04", "Testing the service", "04-testing-the-service.ipynb"),
    Step("05", "Container image", "05-container-image.ipynb"),
    Step("06", "Compose and monitoring", "06-compose-and-monitoring.ipynb"),
    Step("07", "Kubernetes", "07-kubernetes.ipynb"),
)


def step(step_id: str) -> Step:
    """Look up a step by its id ("01" or "1")."""
    wanted = step_id.zfill(2)
    for candidate in STEPS:
        if candidate.id == wanted:
            return candidate
    known = ", ".join(s.id for s in STEPS)
    from autograder.errors import AutograderError

    raise AutograderError(f"there is no step {step_id!r} in this course", hint=f"pick one of: {known}")


def pinned_versions(requirements: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file, by normalised name (PEP 503)."""
    pins = {}
    for line in requirements.read_text().splitlines():
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==(\S+)\s*", line.split("#", 1)[0])
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def cache_dir() -> Path:
    """The one named cache of the course (wheelhouse, grading history); override with COURSE_CACHE_DIR."""
    from autograder.settings import current

    return current().cache_dir
