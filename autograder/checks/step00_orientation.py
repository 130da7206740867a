"""Step 00, setup and orientation: the project files every later step relies on.

Static checks (no learner code runs): pinned runtime requirements, project metadata, .gitignore.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import tomllib

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet

from autograder import course
from autograder.checks.context import Context
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome

STEP = StepChecks("00")
RUNTIME_PACKAGES = ("torch", "torchvision", "numpy", "pillow", "flask", "prometheus-client", "gunicorn")
# Never in git: caches, environments, notebooks' autosaves, model weights (large, binary, licensed).
MUST_IGNORE = (
    "service/__pycache__/model.cpython-311.pyc",
    "tests/__pycache__/conftest.cpython-311.pyc",
    ".venv/bin/python",
    ".ipynb_checkpoints/01-model-inference-checkpoint.ipynb",
    "weights/resnet50.pt",
    "resnet50-11ad3fa6.pth",
    ".pytest_cache/v/cache/nodeids",
)
MUST_KEEP = (
    "service/model.py",
    "Dockerfile",
    "requirements.txt",
    "pyproject.toml",
    "tests/test_api.py",
    "k8s/deployment.yaml",
)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def course_lock() -> dict[str, str]:
    """The course environment's pinned versions (requirements.txt at the repository root)."""
    return course.pinned_versions(course.REPO_ROOT / "requirements.txt")


@STEP.check(
    "requirements-pinned",
    "requirements.txt pins the service's runtime packages to the course's versions",
    points=2,
    hint="One package per line with an exact version (name==version), the same versions the course "
    "environment runs (see requirements.txt at the repository root or `pip freeze`); runtime only: "
    "no jupyterlab or pytest in the image.",
)
def requirements_pinned(ctx: Context) -> Outcome:
    path = ctx.file("requirements.txt")
    if not path.is_file():
        return Outcome.fail("requirements.txt does not exist in the workspace")
    pins: dict[str, str] = {}
    for number, raw in enumerate(ctx.read_text("requirements.txt").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            return Outcome.fail(f"line {number} is not a requirement: {raw.strip()!r}")
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            return Outcome.fail(f"line {number} is not pinned with ==: {raw.strip()!r}")
        pins[_normalise(requirement.name)] = specifiers[0].version
    missing = [name for name in RUNTIME_PACKAGES if name not in pins]
    if missing:
        return Outcome.fail("not in requirements.txt: " + ", ".join(missing))
    lock = course_lock()
    wrong = [
        f"{name}=={version} (course: {lock.get(name)})" for name, version in pins.items() if lock.get(name) != version
    ]
    if wrong:
        return Outcome.fail("versions differ from the course environment: " + ", ".join(wrong))
    development = [name for name in pins if name in {"jupyterlab", "pytest", "nbgrader", "papermill", "ipykernel"}]
    if development:
        return Outcome.fail("development tools do not belong in the image: " + ", ".join(development))
    return Outcome.ok(f"{len(pins)} packages pinned to the course's versions")


def package_version(ctx: Context) -> str | None:
    init = ctx.file("service/__init__.py")
    if not init.is_file():
        return None
    try:
        tree = ast.parse(ctx.read_text("service/__init__.py"))
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    return None


@STEP.check(
    "project-metadata",
    "pyproject.toml describes the project and configures pytest",
    points=2,
    hint='[project] needs name = "resnet-service", the version from service/__init__.py and '
    'requires-python that admits 3.11 only ("==3.11.*"); [tool.pytest.ini_options] sets '
    'testpaths = ["tests"].',
)
def project_metadata(ctx: Context) -> Outcome:
    path = ctx.file("pyproject.toml")
    if not path.is_file():
        return Outcome.fail("pyproject.toml does not exist in the workspace")
    try:
        data = tomllib.loads(ctx.read_text("pyproject.toml"))
    except tomllib.TOMLDecodeError as error:
        return Outcome.fail(f"pyproject.toml is not valid TOML: {error}")
    project = data.get("project", {})
    if project.get("name") != "resnet-service":
        return Outcome.fail(f"[project] name is {project.get('name')!r}, expected 'resnet-service'")
    version = package_version(ctx)
    if version is None:
        return Outcome.fail('service/__init__.py does not set __version__ = "..." (notebook 00 writes it)')
    if project.get("version") != version:
        return Outcome.fail(
            f"[project] version {project.get('version')!r} differs from service.__version__ {version!r}"
        )
    try:
        python = SpecifierSet(project.get("requires-python", ""))
    except Exception:
        return Outcome.fail(f"requires-python {project.get('requires-python')!r} is not a version specifier")
    admitted = {v: python.contains(v) for v in ("3.10.14", "3.11.2", "3.11.9", "3.12.1")}
    if not admitted["3.11.2"] or not admitted["3.11.9"] or admitted["3.10.14"] or admitted["3.12.1"]:
        return Outcome.fail(f"requires-python {str(python)!r} should admit 3.11 and nothing else; admits {admitted}")
    testpaths = data.get("tool", {}).get("pytest", {}).get("ini_options", {}).get("testpaths")
    if testpaths != ["tests"]:
        return Outcome.fail(f"[tool.pytest.ini_options] testpaths is {testpaths!r}, expected ['tests']")
    return Outcome.ok(f"resnet-service {version}, Python {python}")


def gitignore_matches(patterns: list[str], path: str) -> bool:
    """Whether a .gitignore with ``patterns`` ignores ``path`` (the common subset of gitignore rules)."""
    ignored = False
    parts = path.split("/")
    for raw in patterns:
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        directory_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        pattern = pattern.removeprefix("**/")  # "**/name" matches at any depth, like "name"
        anchored = "/" in pattern
        pattern = pattern.lstrip("/")
        candidates = []
        for index in range(len(parts)):
            if directory_only and index == len(parts) - 1:
                continue  # "name/" only matches directories, and the last part is the file
            # A pattern with a slash matches from the workspace root; one without, any single part.
            candidates.append("/".join(parts[: index + 1]) if anchored else parts[index])
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            ignored = not negate
    return ignored


@STEP.check(
    "gitignore-hygiene",
    ".gitignore keeps caches, environments and weights out of git, and nothing else",
    points=2,
    hint="Ignore __pycache__/, *.pyc, .venv/, .ipynb_checkpoints/, .pytest_cache/ and weight files "
    "(*.pt, *.pth); a broad pattern such as * or *.py would hide your code from git.",
)
def gitignore_hygiene(ctx: Context) -> Outcome:
    path = ctx.file(".gitignore")
    if not path.is_file():
        return Outcome.fail(".gitignore does not exist in the workspace")
    patterns = ctx.read_text(".gitignore").splitlines()
    leaked = [p for p in MUST_IGNORE if not gitignore_matches(patterns, p)]
    if leaked:
        return Outcome.fail("not ignored, but should be: " + ", ".join(leaked))
    hidden = [p for p in MUST_KEEP if gitignore_matches(patterns, p)]
    if hidden:
        return Outcome.fail("ignored, but must stay in git: " + ", ".join(hidden))
    return Outcome.ok(f"ignores {len(MUST_IGNORE)} kinds of clutter, keeps {len(MUST_KEEP)} project files")
