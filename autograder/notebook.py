"""What notebooks import: the checkpoint cell and a fresh import of the learner's modules."""

from __future__ import annotations

from pathlib import Path

from autograder import course
from autograder.grading import grade_step
from autograder.probes.hidden_tests import import_workspace_module  # noqa: F401 - what notebooks import
from autograder.progress import grading, record
from autograder.reports.notebook import CheckpointReport


def checkpoint(step_id: str, workspace: str | Path = "workspace", only: list[str] | None = None) -> CheckpointReport:
    """Grade one step's visible checks; the cell shows a table and its value is the points earned."""
    step = course.step(step_id)
    with grading(Path(workspace), step.id):
        report = grade_step(step.id, workspace, only=only)
    record(Path(workspace), report)
    return CheckpointReport(report)


def image_layers(workspace: str | Path = "workspace", largest: int = 8) -> str:
    """The image the last step 05 checkpoint built: its size and its heaviest layers, as
    `docker history` shows them, with the Dockerfile instruction that made each."""
    from autograder import images
    from autograder.runners import docker as docker_runner

    described = docker_runner.image_history(images.last_image(Path(workspace)))
    if described is None:
        return "no image of this workspace yet: run the step 05 checkpoint that builds it"
    tag, size, history = described
    lines = [f"{tag}: {size / 1e9:.2f} GB in {len(history)} layers; the heaviest:"]
    for layer in sorted(history, key=lambda layer: layer.get("Size", 0), reverse=True)[:largest]:
        made_by = " ".join(layer.get("CreatedBy", "").replace("/bin/sh -c #(nop) ", "").split())
        lines.append(f"  {layer.get('Size', 0) / 1e6:9.1f} MB  {made_by[:100] or '(the base image)'}")
    return "\n".join(lines)
