"""Step 05's static checks (Dockerfile, .dockerignore, hadolint): no Docker engine needed. Each
passes on the reference workspace and fails, saying why, on a Dockerfile with one mistake."""

from __future__ import annotations

import pytest

from autograder.checks import step05_image
from autograder.checks.dockerfile import dockerignore_excludes, parse, stages
from autograder.checks.result import Verdict
from autograder.grading import grade_step

STATIC = [
    "hadolint-clean",
    "base-image-pinned",
    "multi-stage-non-root",
    "healthcheck",
    "no-secrets-or-remote-add",
    "dockerignore",
]
DOCKERFILE, DOCKERIGNORE = "Dockerfile", ".dockerignore"


def static_results(workspace):
    return {r.id.split(".", 1)[1]: r for r in grade_step("05", workspace, only=STATIC).results}


@pytest.mark.parametrize("name", STATIC)
def test_passes_on_the_reference_workspace(reference_workspace, name):
    result = static_results(reference_workspace)[name]
    assert result.verdict is Verdict.PASSED, result.message


def test_an_empty_workspace_fails_every_static_check(tmp_path):
    results = static_results(tmp_path)
    assert all(r.verdict is Verdict.FAILED and r.hint for r in results.values())
    assert "Dockerfile does not exist" in results["hadolint-clean"].message


VARIANTS = {
    "latest-base": (
        "base-image-pinned",
        [(DOCKERFILE, "FROM python:3.11-slim\n", "FROM python:latest\n")],
        "not pinned",
    ),
    "untagged-base": (
        "base-image-pinned",
        [(DOCKERFILE, "FROM python:3.11-slim AS build", "FROM python AS build")],
        "not pinned",
    ),
    "apt-unpinned": (
        "hadolint-clean",
        [(DOCKERFILE, "WORKDIR /build\n", "WORKDIR /build\nRUN apt-get update && apt-get install -y curl\n")],
        "DL3008",
    ),
    "single-stage": (
        "multi-stage-non-root",
        [
            (DOCKERFILE, "FROM python:3.11-slim AS build", "FROM python:3.11-slim"),
            (DOCKERFILE, "FROM python:3.11-slim\nLABEL", "LABEL"),
            (DOCKERFILE, "COPY --from=build /opt/venv /opt/venv\n", ""),
        ],
        "one stage",
    ),
    "runs-as-root": ("multi-stage-non-root", [(DOCKERFILE, "USER 10001\n", "")], "root"),
    "user-by-name": ("multi-stage-non-root", [(DOCKERFILE, "USER 10001\n", "USER app\n")], "numeric"),
    "user-zero": ("multi-stage-non-root", [(DOCKERFILE, "USER 10001\n", "USER 0:0\n")], "root"),
    "no-healthcheck": (
        "healthcheck",
        [
            (DOCKERFILE, "HEALTHCHECK --interval", "# HEALTHCHECK --interval"),
            (DOCKERFILE, '    CMD ["python", "-c"', '#    CMD ["python", "-c"'),
        ],
        "no HEALTHCHECK",
    ),
    "healthcheck-elsewhere": ("healthcheck", [(DOCKERFILE, "5000/health'", "5000/'")], "/health"),
    "secret-in-env": (
        "no-secrets-or-remote-add",
        [(DOCKERFILE, "    PYTHONUNBUFFERED=1 \\\n", "    PYTHONUNBUFFERED=1 \\\n    API_TOKEN=s3cr3t \\\n")],
        "API_TOKEN",
    ),
    "remote-add": (
        "no-secrets-or-remote-add",
        [(DOCKERFILE, "WORKDIR /app\n", "WORKDIR /app\nADD https://example.org/weights.pt /app/\n")],
        "ADD of a URL",
    ),
    "git-in-context": ("dockerignore", [(DOCKERIGNORE, ".git\n", "")], ".git/HEAD"),
    "tests-in-context": ("dockerignore", [(DOCKERIGNORE, "tests/\n", "")], "tests/test_api.py"),
    "service-left-out": ("dockerignore", [(DOCKERIGNORE, ".git\n", ".git\nservice/\n")], "service/app.py"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_catches_the_mistake(make_workspace, variant):
    name, edits, expected = VARIANTS[variant]
    result = static_results(make_workspace(*edits, name=variant))[name]
    assert result.verdict is Verdict.FAILED, f"{variant} passed {name}: {result.message}"
    assert expected in result.message and result.hint


def test_a_hadolint_config_in_the_workspace_cannot_switch_rules_off(make_workspace):
    workspace = make_workspace(
        (DOCKERFILE, "WORKDIR /build\n", "WORKDIR /build\nRUN apt-get update && apt-get install -y curl\n"),
        name="with-config",
    )
    (workspace / ".hadolint.yaml").write_text("ignored:\n  - DL3008\n")
    assert "DL3008" in static_results(workspace)["hadolint-clean"].message


def test_the_parser_joins_continuations_and_splits_stages():
    instructions = parse("# c\nFROM a:1 AS b\nRUN x \\\n  # inner comment\n  && y\nFROM c:2\nUSER 1\n")
    assert [(i.keyword, i.line, i.stage) for i in instructions] == [
        ("FROM", 2, 0),
        ("RUN", 3, 0),
        ("FROM", 6, 1),
        ("USER", 7, 1),
    ]
    assert instructions[1].arguments == "x && y"
    assert [len(s) for s in stages(instructions)] == [2, 2]


@pytest.mark.parametrize(
    "patterns, path, excluded",
    [
        (["**/__pycache__"], "a/b/__pycache__/x.pyc", True),
        (["*.ipynb"], "notes.ipynb", True),
        (["tests/"], "tests/unit/test_a.py", True),
        (["*.md", "!README.md"], "README.md", False),
        ([".git"], "service/app.py", False),
    ],
)
def test_dockerignore_matching(patterns, path, excluded):
    assert dockerignore_excludes(patterns, path) is excluded


def test_the_static_checks_are_the_ones_grading_can_run_without_a_build():
    assert step05_image.STATIC_CHECKS == set(STATIC)


def test_a_checkpoint_of_the_dockerfile_alone_builds_nothing(reference_workspace, monkeypatch):
    from autograder import grading, images

    def no_build(context, workspace):
        raise AssertionError("a static-only checkpoint must not build the image")

    monkeypatch.setattr(images, "build", no_build)
    report = grading.grade_step("05", reference_workspace, only=STATIC)
    assert [r.verdict for r in report.results] == [Verdict.PASSED] * len(STATIC)


def test_the_untouched_student_workspace_fails_every_check(blank_workspace):
    """The release hands out the FROM lines: they alone earn nothing, and nothing is built."""
    results = static_results(blank_workspace)
    assert all(r.verdict is Verdict.FAILED for r in results.values()), {n: r.message for n, r in results.items()}
    assert "not written yet" in results["base-image-pinned"].message
    report = grade_step("05", blank_workspace, only=["image-builds", "container-ready"])
    assert [r.verdict for r in report.results] == [Verdict.FAILED, Verdict.FAILED]
    assert "the Dockerfile is not written yet" in report.results[0].message
