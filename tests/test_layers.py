"""The autograder's layers import only the layers below them (see course_docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from autograder import course

PACKAGE = course.REPO_ROOT / "autograder"
# Lower number = lower layer. A module may import its own layer and the ones below.
LAYERS = {
    "errors": 0,
    "course": 0,
    "trees": 0,
    "variants": 0,
    "settings": 0,
    "interrupts": 0,
    "processes": 0,
    "snapshot": 0,
    "probes": 0,
    "checks": 1,
    "runners": 2,
    "release": 3,
    "grading": 3,
    "images": 3,
    "submissions": 3,
    "hidden": 3,
    "reference": 3,
    "doctor": 3,
    "progress": 3,
    "reports": 4,
    "notebook": 5,
    "cli": 5,
    "__main__": 5,
}
# Only runners/docker.py may talk to Docker, and only it imports testcontainers.
DOCKER_MODULES = {"docker", "testcontainers"}


def _layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "autograder" or len(parts) < 2:
        return None
    return LAYERS[parts[1]]


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names if node.module == "autograder"]
    return names


SOURCES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_respect_the_layers(path):
    relative = path.relative_to(PACKAGE)
    own = LAYERS[relative.parts[0].removesuffix(".py")] if relative.parts[0] != "__init__.py" else 0
    for name in _imports(path):
        layer = _layer_of(name)
        assert layer is None or layer <= own, f"{relative} (layer {own}) imports {name} (layer {layer})"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_docker_runner_talks_to_docker(path):
    if path == PACKAGE / "runners" / "docker.py":
        return
    for name in _imports(path):
        assert name.split(".")[0] not in DOCKER_MODULES, f"{path.relative_to(PACKAGE)} imports {name}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "probes").glob("*.py")), ids=lambda p: p.name)
def test_probes_import_nothing_of_the_autograder(path):
    """Probes run inside the sandbox, where only their own package exists."""
    for name in _imports(path):
        assert not name.startswith("autograder"), f"probes/{path.name} imports {name}"


def test_the_layer_check_can_fail():
    fake = {"autograder.grading": 3}
    assert _layer_of("autograder.grading") == fake["autograder.grading"] > LAYERS["checks"]
