"""A Gradescope autograder bundle made from this repository: ``setup.sh``, ``run_autograder`` and
the sources ``grade`` needs (the autograder, the pins, the student release it compares notebooks
with, the reference workspace, step 04's faulty services, and the solution notebooks whose
hidden-test cells ``grade`` runs). Learners upload their notebooks;
``run_autograder`` grades them with ``python -m autograder grade`` and hands Gradescope the
``results.json`` it writes (already in Gradescope's format).

Gradescope's container has no Docker engine: step 05's live checks come back as "needs manual
grading". bubblewrap is installed; where the container does not allow its namespaces, the bundle
grades with ``--sandbox auto`` and every result says UNSANDBOXED (the learner's code then runs
with the grader's rights inside Gradescope's throw-away container).
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

from autograder import course
from autograder.errors import ReleaseError
from autograder.trees import ALWAYS_IGNORED

SOURCES = (
    "autograder",
    "exercises",
    "pyproject.toml",
    "requirements.txt",
    f"solutions/{course.ASSIGNMENT}/{course.WORKSPACE_NAME}",
    f"solutions/{course.ASSIGNMENT}/hidden",
    # The hidden tests live in the solution notebooks' hidden-test cells; learners never see the bundle.
    *(f"solutions/{course.ASSIGNMENT}/{step.notebook}" for step in course.STEPS if step.notebook),
)

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu).
set -euo pipefail
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11 python3.11-venv bubblewrap >/dev/null
python3.11 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --quiet --upgrade pip
/autograder/venv/bin/python -m pip install --quiet -r /autograder/source/requirements.txt
/autograder/venv/bin/python -m pip install --quiet --no-deps -e /autograder/source
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: the learner's files are in submission/, and
# results/results.json is what Gradescope shows. AUTOGRADER_ROOT and AUTOGRADER_PYTHON let the
# same script run elsewhere (a test, a rehearsal on a laptop).
set -uo pipefail
root="${AUTOGRADER_ROOT:-/autograder}"
python="${AUTOGRADER_PYTHON:-$root/venv/bin/python}"
cd "$root/source"
"$python" -m autograder grade "$root/submission" --out "$root/results/graded" \\
    --sandbox "${COURSE_SANDBOX:-auto}" ${GRADE_OPTIONS:-}
status=$?
if [ -f "$root/results/graded/results.json" ]; then
  cp "$root/results/graded/results.json" "$root/results/results.json"
else
  # Gradescope needs a results file even when grading could not start: say why, score nothing.
  printf '{"score": 0, "output": "the autograder could not grade this submission (exit %s): ask your instructor"}\\n' \\
    "$status" > "$root/results/results.json"
fi
"""


def write(destination: Path) -> Path:
    """The bundle as a zip at ``destination``."""
    destination = Path(destination).expanduser().resolve()
    if destination.suffix != ".zip":
        raise ReleaseError(f"{destination} is not a .zip", hint="name the bundle like autograder.zip")
    if not course.FAULTY_VARIANTS.is_file() or not course.REFERENCE_WORKSPACE.is_dir():
        raise ReleaseError(
            "the Gradescope bundle needs solutions/ (the reference workspace and step 04's faulty services)",
            hint="make it in the instructors' repository",
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, text in (("setup.sh", SETUP), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | 0o755) << 16  # executable once unzipped
            bundle.writestr(info, text)
        for relative in SOURCES:
            source = course.REPO_ROOT / relative
            files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
            for path in files:
                parts = path.relative_to(course.REPO_ROOT).parts
                if ALWAYS_IGNORED.intersection(parts) or path.suffix == ".pyc" or path.is_symlink():
                    continue
                if parts[0] == "exercises" and course.WORKSPACE_NAME in parts:
                    continue  # a learner's workspace in the local release is not the course's
                bundle.write(path, Path(*parts).as_posix())
    partial.replace(destination)
    return destination
