"""Wires the checks to the runners for one workspace: the one place that knows how a step is graded.

Step 01's checks get a Python probe bound to the workspace; step 05's checks get a built image and
a running container (or a reason they are skipped). Everything started here is removed here.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from autograder import checks, course, variants
from autograder.checks import step05_image
from autograder.checks.context import Context
from autograder.checks.result import CheckResult, Verdict
from autograder.errors import AutograderError, ContainerError, DockerUnavailable, WorkspaceError
from autograder.runners import docker as docker_runner
from autograder.runners import hadolint, offline, pytest_suite
from autograder.runners.python_probe import probe_for

# No trained weights can be downloaded on the course machines: graded containers run on seeded,
# labelled random weights, and the predict check expects the answers to say so.
# Nothing else is set: the image's own configuration (workers, threads) is what is graded.
GRADING_CONTAINER_ENV = {"MODEL_ALLOW_RANDOM_WEIGHTS": "1"}
LIVE_STEPS = {"05"}
# Steps that grade the learner's tests by running them against the reference and its faulty variants.
SUITE_STEPS = {"04"}


@dataclass(frozen=True)
class StepReport:
    step: course.Step
    results: list[CheckResult]

    @property
    def points(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def max_points(self) -> float:
        return sum(r.max_points for r in self.results)

    @property
    def all_passed(self) -> bool:
        return bool(self.results) and all(r.verdict is Verdict.PASSED for r in self.results)


def resolve_workspace(workspace: Path | str) -> Path:
    path = Path(workspace).expanduser().resolve()
    if not path.is_dir():
        raise WorkspaceError(
            f"the workspace {path} does not exist",
            hint="run the notebook's cells that write files (they create workspace/ next to the notebook), "
            "or pass --workspace with the right folder",
        )
    return path


def grade_step(step_id: str, workspace: Path | str, *, only: Iterable[str] | None = None) -> StepReport:
    step = course.step(step_id)
    path = resolve_workspace(workspace)
    step_checks = checks.for_step(step.id)
    unknown = sorted(
        set(only or ()) - {c.id for c in step_checks.checks} - {c.id.split(".", 1)[1] for c in step_checks.checks}
    )
    if unknown:
        names = ", ".join(c.id.split(".", 1)[1] for c in step_checks.checks)
        raise AutograderError(f"step {step.id} has no check {', '.join(unknown)}", hint=f"its checks: {names}")
    if step.id in LIVE_STEPS:
        # Do no more than the selected checks need: a checkpoint of the Dockerfile alone needs no
        # build (minutes, the first time), and the build's own check no container.
        selected = {name.split(".")[-1] for name in only or ()}
        build = not selected or not selected <= step05_image.STATIC_CHECKS
        run = not selected or not selected <= step05_image.STATIC_CHECKS | {"image-builds"}
        with live_context(path, build=build, run=run) as context:
            return StepReport(step, step_checks.run(context, only))
    if step.id in SUITE_STEPS:
        return StepReport(step, step_checks.run(suite_context(path), only))
    return StepReport(step, step_checks.run(Context(workspace=path, run_python=probe_for(path)), only))


def suite_context(workspace: Path) -> Context:
    """Step 04's context: the learner's tests, run against the reference service and its variants."""
    context = Context(workspace=workspace)
    try:
        faulty = variants.load()
    except AutograderError as error:
        context.skip_reason = f"{error} ({error.hint})"
        return context
    context.run_suite = pytest_suite.SuiteRunner(workspace, course.REFERENCE_WORKSPACE, faulty)
    return context


def image_tag(workspace: Path) -> str:
    """One tag per workspace, so regrading replaces the image instead of piling up new ones."""
    digest = hashlib.sha256(str(workspace).encode()).hexdigest()[:12]
    return f"{docker_runner.GRADED_REPOSITORY}:{digest}"


@contextlib.contextmanager
def live_context(workspace: Path, *, build: bool = True, run: bool = True) -> Iterator[Context]:
    """Lint the Dockerfile, build the workspace's image and run it (as far as ``build`` and ``run``
    say); yield a Context describing what happened."""
    context = Context(workspace=workspace)
    dockerfile = workspace / "Dockerfile"
    if dockerfile.is_file():
        try:
            context.lint_findings = hadolint.lint(dockerfile)
        except AutograderError as error:
            context.lint_error = f"{error} ({error.hint})"
    if not build:
        yield context
        return
    available, why = docker_runner.engine_available()
    if not available:
        context.skip_reason = f"skipped: no Docker engine ({why})"
        yield context
        return
    docker_runner.remove_leftover_containers()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(docker_runner.prune_images)  # bounded image cache, also on errors
        try:
            context.build = build_workspace_image(workspace)
        except ContainerError as error:
            context.build_error = str(error)
        if context.build and run:
            try:
                context.service = cleanup.enter_context(
                    # Ready means the model is loaded and warmed up (step 03's /ready), not just alive.
                    docker_runner.run_service(context.build.tag, env=GRADING_CONTAINER_ENV, ready_path="/ready")
                )
            except ContainerError as error:
                context.service_error = str(error)
        yield context


def build_workspace_image(workspace: Path) -> docker_runner.BuildResult:
    """Build with the offline wheelhouse served on loopback when the base image is the stand-in."""
    try:
        stand_in = docker_runner.image_exists(offline.BASE_IMAGE) and offline.is_stand_in()
    except DockerUnavailable:
        stand_in = False
    if not stand_in:
        return docker_runner.build_image(workspace, image_tag(workspace))
    with offline.serve_wheelhouse():
        return docker_runner.build_image(workspace, image_tag(workspace), network_mode="host")
