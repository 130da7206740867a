"""The grader's own record of the images it built: which snapshot each came from (so an unchanged
workspace is not rebuilt), the last one of each workspace (what notebook 05 shows), which ones
running gradings are using (never pruned under them), and the bounded cache of the rest.

The record lives in the grader's cache, never in an image's label: labels are set by whoever
writes the Dockerfile. Gradings may run side by side (an instructor's batch, the tests' workers),
so every read-modify-write of the record holds a file lock, and pruning spares what others use.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from autograder import processes
from autograder.runners import docker as docker_runner
from autograder.runners import offline
from autograder.settings import current

RECORD = "built-images.json"
BUILDING = "building"  # what a grading pins while its build runs: no one prunes the cache meanwhile
CONTEXTS_KEPT = 20
WORKSPACES_KEPT = 50
USED_KEPT = 400  # images and build steps, most recently used last


def workspace_label(workspace: Path) -> str:
    """What names a workspace in the record (a digest of its resolved path)."""
    return hashlib.sha256(str(Path(workspace).resolve()).encode()).hexdigest()[:16]


def new_image_tag() -> str:
    """A tag nobody can predict: no other build can name a graded image in its FROM."""
    return f"{docker_runner.GRADED_REPOSITORY}:{secrets.token_hex(8)}"


def build(context: Path, workspace: Path) -> docker_runner.BuildResult:
    """Build ``context`` (the snapshot) under the build limits, on the network ``offline.build_network``
    gives; or, when the grader built this very context on this very base image before and the
    image is still there, that image. Either way it becomes the workspace's last image."""
    digest = _context_digest(context)
    with _record() as known:
        reused = docker_runner.image_by_id(known["contexts"].get(digest, ""))
        if reused is not None:
            _remember(known, digest, workspace, reused.image_id, _reused_steps(known, reused.image_id))
            return reused
    with pinned(BUILDING), offline.build_network() as network_mode:
        built = docker_runner.build_image(
            context,
            new_image_tag(),
            network_mode=network_mode,
            labels={docker_runner.WORKSPACE_LABEL: workspace_label(workspace)},
        )
    with _record() as known:
        _remember(known, digest, workspace, built.image_id, built.step_images)
    return built


def last_image(workspace: Path) -> str:
    """The id of the image the last grading of ``workspace`` built or reused ('' when none)."""
    with _record() as known:
        return known["workspaces"].get(workspace_label(workspace), "")


def _pins() -> Path:
    """Where gradings pin images: one folder per user and machine, whatever cache each grading
    uses (the engine, and so its images, are shared by them all)."""
    folder = Path(tempfile.gettempdir()) / f"resnet-course-image-pins-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.is_symlink() or folder.stat().st_uid != os.getuid():
        raise OSError(f"{folder} is not this user's own folder")
    return folder


@contextlib.contextmanager
def pinned(image_id: str) -> Iterator[None]:
    """While inside, no grading's pruning removes ``image_id`` (or, for BUILDING, anything)."""
    pin = _pins() / f"{os.getpid()}-{secrets.token_hex(4)}"
    pin.write_text(image_id)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            pin.unlink()


def prune(keep: int = docker_runner.IMAGE_CACHE_KEEP) -> list[str]:
    """Remove all but the ``keep`` most recently used graded images (and build stages), sparing
    those that running gradings have pinned."""
    protect = _pinned_ids()
    if BUILDING in protect:
        return []  # a build elsewhere may be using any cached layer: the next grading prunes
    with _record() as known:
        last_used = {image: float(used) for image, used in known["used"].items() if isinstance(used, (int, float))}
    return docker_runner.prune_images(keep, protect=protect, last_used=last_used)


def _pinned_ids() -> set[str]:
    ids = set()
    for pin in _pins().glob("*-*"):
        pid = pin.name.split("-", 1)[0]
        if pid.isdigit() and not processes.alive(int(pid)):
            with contextlib.suppress(OSError):
                pin.unlink()  # a grading that was killed
            continue
        with contextlib.suppress(OSError):
            ids.add(pin.read_text().strip())
    return ids


def _remember(known: dict, digest: str, workspace: Path, image_id: str, steps) -> None:
    """Record the build (or reuse); the image and the step images behind it count as just used."""
    known["steps"][image_id] = list(steps)
    known["contexts"][digest] = image_id
    known["workspaces"][workspace_label(workspace)] = image_id
    now = time.time()
    for used in (image_id, *steps):
        known["used"].pop(used, None)  # re-inserted last: the tables are kept in order of use
        known["used"][used] = now
    for table, bound in (("contexts", CONTEXTS_KEPT), ("workspaces", WORKSPACES_KEPT), ("used", USED_KEPT)):
        known[table] = dict(list(known[table].items())[-bound:])
    referenced = set(known["contexts"].values()) | set(known["workspaces"].values())
    known["steps"] = {image: steps for image, steps in known["steps"].items() if image in referenced}


def _reused_steps(known: dict, image_id: str) -> list[str]:
    steps = known["steps"].get(image_id, [])
    return [step for step in steps if isinstance(step, str)] if isinstance(steps, list) else []


@contextlib.contextmanager
def _record() -> Iterator[dict]:
    """The record, locked against other gradings; written back (atomically) when it changed."""
    cache = current().cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / RECORD
    with open(cache / (RECORD + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = _read(path)
        before = json.dumps(known, sort_keys=True)
        yield known
        if json.dumps(known, sort_keys=True) != before:
            partial = path.with_suffix(f".{os.getpid()}.partial")
            partial.write_text(json.dumps(known))
            partial.replace(path)


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    return {
        table: dict(data[table]) if isinstance(data.get(table), dict) else {}
        for table in ("contexts", "workspaces", "used", "steps")
    }


def _context_digest(context: Path) -> str:
    """What a build depends on: every file of the snapshot (name, mode, content) and the base image."""
    digest = hashlib.sha256(docker_runner.image_id(docker_runner.BASE_IMAGE).encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(context)}\0{path.stat().st_mode & 0o111}\0".encode())
        with open(path, "rb") as stream:
            while chunk := stream.read(1024 * 1024):
                digest.update(chunk)
    return digest.hexdigest()
