"""The repository learners get: the course without what grades them.

``python -m autograder release --learner-repo DIR`` writes the student notebooks (``exercises/``),
the autograder (its visible checks are public by design), the environment files and the learners'
guides; never ``solutions/`` (the reference notebooks, their hidden tests, the reference workspace,
step 04's faulty services), the instructors' guide, the autograder's own tests or CI. With
``--with-reference`` the reference workspace comes along as ``reference/workspace``, for
``catch-up`` and for step 04's "passes on the reference" (an instructor's choice: it is the
solution of every step's files).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from autograder import course
from autograder.errors import ReleaseError
from autograder.trees import ALWAYS_IGNORED

# What the learner's repository holds, from this one; anything else stays here.
COPIED = (
    "autograder",
    "exercises",
    "pyproject.toml",
    "requirements.in",
    "requirements.txt",
    "requirements-checkov.txt",  # make venv installs checkov in an environment of its own
    "environment.yml",
    "LEARNING_GUIDE.md",
    ".gitignore",
    "course_docs/architecture.md",
    "course_docs/offline.md",
)
NEVER = (*ALWAYS_IGNORED, "*.pyc", "*.egg-info", course.WORKSPACE_NAME)  # a learner's own work stays theirs

README = """# ResNet50 service course

Build a production-style image-classification service step by step, in Jupyter notebooks: the
model, its configuration, a Flask API, its tests, a container image. Every step is checked as you
go. Start with [LEARNING_GUIDE.md](LEARNING_GUIDE.md).

```bash
make lab                                        # first run: creates .venv (Python 3.11), then JupyterLab
.venv/bin/python -m autograder doctor           # is this machine ready? each problem with its fix
.venv/bin/python -m autograder check 01         # grade one step of your workspace
.venv/bin/python -m autograder progress         # every step's status
{catch_up}```

The checks you run here are the visible ones; your instructor grades your notebooks with hidden
tests too, and step 04's suite against faulty services they keep.
"""
# The learners' Makefile: this repository's variables and environment rule (taken from its own
# Makefile, so the pins stay one), and only the targets that work without solutions/.
LEARNER_TARGETS = """
.PHONY: help venv lab doctor progress clean

help:
\t@echo "make lab       JupyterLab on exercises/ (first run: creates .venv with the course's pinned packages)"
\t@echo "make doctor    is this machine ready for the course? each problem with its fix"
\t@echo "make progress  every step's status"
\t@echo "make clean     remove the containers and old images the autograder left"

venv: $(STAMP)

lab: venv
\t$(RUN) -m jupyter lab --notebook-dir=exercises

doctor: venv
\t$(RUN) -m autograder doctor

progress: venv
\t$(RUN) -m autograder progress

clean:
\t-$(RUN) -m autograder clean --keep 0
"""


def learner_makefile(makefile: str) -> str:
    """The learners' Makefile made from this repository's: its variables and its $(STAMP) rule."""
    blocks = makefile.split("\n\n")
    variables = next(b for b in blocks if "PYTHON ?=" in b)
    variables = "\n".join(line for line in variables.splitlines() if not line.startswith("#") or "PATH" in line)
    stamp = next(b for b in blocks if b.lstrip().startswith(("$(STAMP):", "# Re-installs")) and "$(STAMP):" in b)
    header = "# The course's commands for learners (the autograder's own are in README.md).\n\n"
    return header + variables + "\n" + LEARNER_TARGETS + "\n" + stamp.strip() + "\n"


CATCH_UP_LINE = ".venv/bin/python -m autograder catch-up 03  # the reference files of the steps before 03\n"


def write(destination: Path, *, with_reference: bool = False) -> list[str]:
    """Write the learner's repository into ``destination`` (new or empty); return what it holds."""
    destination = Path(destination).expanduser().resolve()
    if destination.exists() and any(destination.iterdir()):
        raise ReleaseError(f"{destination} is not empty", hint="give a new folder for the learners' repository")
    if destination == course.REPO_ROOT or course.REPO_ROOT in destination.parents:
        raise ReleaseError(f"{destination} is inside this repository", hint="write it elsewhere")
    destination.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns(*NEVER)
    for relative in COPIED:
        source = course.REPO_ROOT / relative
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    if with_reference:
        shutil.copytree(
            course.REFERENCE_WORKSPACE,
            destination / course.REFERENCE_BUNDLE.name / course.WORKSPACE_NAME,
            ignore=shutil.ignore_patterns(*ALWAYS_IGNORED, "*.pyc"),
        )
    (destination / "Makefile").write_text(learner_makefile((course.REPO_ROOT / "Makefile").read_text()))
    (destination / "README.md").write_text(README.format(catch_up=CATCH_UP_LINE if with_reference else ""))
    return sorted(p.name for p in destination.iterdir())
