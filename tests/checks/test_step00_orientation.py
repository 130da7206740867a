"""Step 00's checks: pass on the reference workspace, fail on the untouched student workspace, and
fail for the right reason on a variant with one specific mistake."""

from __future__ import annotations

import pytest

from autograder.checks import step00_orientation
from autograder.checks.result import Verdict
from autograder.checks.step00_orientation import gitignore_matches
from autograder.grading import grade_step

CHECK_IDS = [check.id for check in step00_orientation.STEP.checks]


@pytest.mark.parametrize("check_id", CHECK_IDS)
def test_passes_on_the_reference_workspace(reference_workspace, check_id):
    result = grade_step("00", reference_workspace, only=[check_id]).results[0]
    assert result.verdict is Verdict.PASSED, result.message


@pytest.mark.parametrize("check_id", CHECK_IDS)
def test_fails_on_the_untouched_student_workspace(blank_workspace, check_id):
    result = grade_step("00", blank_workspace, only=[check_id]).results[0]
    assert result.verdict is Verdict.FAILED and result.hint


VARIANTS = {
    "range-instead-of-pin": (
        "00.requirements-pinned",
        [("requirements.txt", "flask==3.1.3", "flask>=3")],
        "not pinned",
    ),
    "other-version": ("00.requirements-pinned", [("requirements.txt", "flask==3.1.3", "flask==3.0.0")], "flask==3.0.0"),
    "missing-package": ("00.requirements-pinned", [("requirements.txt", "gunicorn==27.0.1\n", "")], "gunicorn"),
    "dev-tool-in-image": (
        "00.requirements-pinned",
        [("requirements.txt", "gunicorn==27.0.1\n", "gunicorn==27.0.1\npytest==9.2.0\n")],
        "development tools",
    ),
    "version-disagrees": (
        "00.project-metadata",
        [("pyproject.toml", 'version = "0.1.0"', 'version = "0.2.0"')],
        "differs",
    ),
    "any-python-3": ("00.project-metadata", [("pyproject.toml", '"==3.11.*"', '">=3"')], "3.11 and nothing else"),
    "no-pytest-config": (
        "00.project-metadata",
        [("pyproject.toml", 'testpaths = ["tests"]', 'addopts = "-q"')],
        "testpaths",
    ),
    "broken-toml": ("00.project-metadata", [("pyproject.toml", "[project]", "[project")], "not valid TOML"),
    "weights-committed": ("00.gitignore-hygiene", [(".gitignore", "*.pt\n*.pth\n", "")], "resnet50.pt"),
    "ignores-everything": (
        "00.gitignore-hygiene",
        [(".gitignore", "__pycache__/", "*\n__pycache__/")],
        "must stay in git",
    ),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_specific_mistake_fails_the_check_that_covers_it(assert_variant_caught, variant):
    assert_variant_caught("00", variant, VARIANTS[variant])


@pytest.mark.parametrize(
    ("patterns", "path", "ignored"),
    [
        (["__pycache__/"], "a/b/__pycache__/x.pyc", True),
        (["__pycache__/"], "a/__pycache__", False),  # a file named like the directory
        (["*.pyc"], "deep/er/x.pyc", True),
        (["/build"], "build/out.txt", True),
        (["/build"], "src/build/out.txt", False),
        (["docs/*.md"], "docs/readme.md", True),
        (["docs/*.md"], "other/docs/readme.md", False),
        (["**/logs"], "a/logs/x.log", True),
        (["*.pt", "!keep.pt"], "keep.pt", False),
        (["# *.py", ""], "service/model.py", False),
    ],
)
def test_gitignore_matching_follows_git(patterns, path, ignored):
    assert gitignore_matches(patterns, path) is ignored
