"""A learner's progress through the steps, and catching up to a later step.

Which files a step writes is read from its solution notebook's ``%%writefile`` cells, so adding a
step needs no list to maintain here. The last results of ``check`` and of every checkpoint are kept
per workspace in the course cache, so ``progress`` answers at once without re-grading. Each entry
is signed with a key only this user's autograder reads: entries written by anything else (learner
code, a hand edit) are ignored, never believed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from autograder import checks, course
from autograder.errors import AutograderError
from autograder.grading import StepReport
from autograder.settings import current

WORKSPACE_PREFIX = course.WORKSPACE_NAME + "/"
HISTORY_LIMIT = 4 * 1024**2


def step_files(step: course.Step) -> list[str]:
    """Workspace-relative paths the step's notebook writes, in cell order, without duplicates."""
    if step.notebook is None:
        return []
    # The student release writes the same files; it is all a learners-only repository has.
    source = step.solution_notebook
    if not source.is_file():
        source = course.EXERCISES_DIR / course.ASSIGNMENT / step.notebook
    # Imported here: nbformat and nbgrader take seconds to import (jsonschema's format parsers),
    # and only catch-up and the files of a step need them, never a checkpoint's grading.
    import nbformat

    from autograder.release.writefile_stubs import writefile_target

    notebook = nbformat.read(str(source), as_version=4)
    files: list[str] = []
    for cell in notebook.cells:
        target = writefile_target(cell.source) if cell.cell_type == "code" else None
        if target and target.startswith(WORKSPACE_PREFIX):
            relative = target[len(WORKSPACE_PREFIX) :]
            if relative not in files:
                files.append(relative)
    return files


def _history_file(workspace: Path) -> Path:
    digest = hashlib.sha256(str(Path(workspace).resolve()).encode()).hexdigest()[:16]
    return current().cache_dir / "results" / f"{digest}.json"


def _key() -> bytes:
    """This user's signing key for the history (created once, readable by the user only). Learner
    code in the sandbox never sees the cache folder, so it can neither read the key nor sign."""
    path = current().cache_dir / "results" / "history.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        path.parent.mkdir(parents=True, exist_ok=True)
    # Made whole, then linked into place only where none exists: gradings starting side by side
    # (grade-all's jobs, test workers) agree on one key; an overwrite would void the other's entries.
    key = secrets.token_bytes(32)
    partial = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(key.hex())
    try:
        os.link(partial, path)
    except FileExistsError:
        pass
    finally:
        partial.unlink()
    try:
        return bytes.fromhex(path.read_text().strip())
    except ValueError:  # an unreadable key (edited by hand): start again with a fresh one
        path.unlink(missing_ok=True)
        return _key()


def _signature(key: bytes, step_id: str, entry: dict) -> str:
    body = json.dumps({"step": step_id, **{k: v for k, v in entry.items() if k != "signature"}}, sort_keys=True)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _read_history(path: Path) -> tuple[dict, int]:
    """The entries of ``path`` this autograder signed, and how many others it ignored."""
    try:
        if path.is_symlink() or path.stat().st_size > HISTORY_LIMIT:
            return {}, 1
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, 0
    except (OSError, ValueError):
        return {}, 1
    if not isinstance(raw, dict):
        return {}, 1
    key, kept, ignored = _key(), {}, 0
    for step_id, entry in raw.items():
        valid = isinstance(entry, dict) and isinstance(entry.get("signature"), str)
        if valid and hmac.compare_digest(entry["signature"], _signature(key, step_id, entry)):
            kept[step_id] = entry
        else:
            ignored += 1
    return kept, ignored


def _write_history(path: Path, history: dict) -> None:
    key = _key()
    for step_id, entry in history.items():
        entry["signature"] = _signature(key, step_id, entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(history, indent=2))
    partial.replace(path)


@contextlib.contextmanager
def grading(workspace: Path, step_id: str) -> Iterator[None]:
    """Mark ``step_id`` as being graded until the block ends: a grading killed midway (SIGKILL,
    power cut) leaves the step shown as "not graded", never as its last results."""
    path = _history_file(workspace)
    try:
        history, _ = _read_history(path)
        entry = history.setdefault(step_id, {"checks": {}})
        entry["grading_since"] = time.time()
        _write_history(path, history)
    except OSError:
        pass
    yield


def record(workspace: Path, report: StepReport) -> None:
    """Remember each check's latest verdict for ``progress``; a checkpoint that ran some of a step's
    checks updates just those. Never fails the grading that called it."""
    path = _history_file(workspace)
    try:
        history, _ = _read_history(path)
        step = history.setdefault(report.step.id, {"checks": {}})
        step.pop("grading_since", None)
        step["time"] = time.time()
        step["files"] = _digests(workspace)
        for result in report.results:
            step["checks"][result.id] = {"passed": result.passed, "points": result.points}
        _write_history(path, history)
    except (OSError, ValueError, KeyError, TypeError):
        pass


def recorded_checks(workspace: Path) -> dict[str, dict[str, dict]]:
    """The latest verdict of each check graded on ``workspace`` (by this user's autograder, signed):
    {step id: {check id: {"passed", "points"}}}."""
    history, _ = _read_history(_history_file(workspace))
    return {step_id: dict(entry.get("checks") or {}) for step_id, entry in history.items()}


DIGESTED_FILE_LIMIT = 1024**2  # larger files (weights) are compared by size and time instead
DIGESTED_BYTES_MAX = 32 * 1024**2  # all the files read for one record, at the most
DIGESTED_FILES_MAX = 400
SKIPPED_FOLDERS = {".catch-up-backups", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".git", ".venv"}


def _digests(workspace: Path) -> dict[str, str]:
    """A short digest of each of the workspace's files, so that ``progress`` can tell a file
    changed from one rewritten as it was (a notebook's %%writefile cells run again)."""
    digests: dict[str, str] = {}
    budget = DIGESTED_BYTES_MAX
    root = Path(workspace)
    for path in sorted(root.rglob("*")):
        if len(digests) >= DIGESTED_FILES_MAX:
            break
        relative = path.relative_to(root)
        if SKIPPED_FOLDERS & set(relative.parts) or path.is_symlink() or not path.is_file():
            continue
        try:
            stat = path.stat()
            if stat.st_size > min(DIGESTED_FILE_LIMIT, budget):
                digests[str(relative)] = f"size {stat.st_size} time {stat.st_mtime}"
            else:
                budget -= stat.st_size
                digests[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        except OSError:  # unreadable: it counts as changed next time, never as an error
            continue
    return digests


def _changed_since(workspace: Path, files: list[str], last: dict) -> bool:
    """Whether one of ``files`` differs from what the last check saw (by content where it was recorded)."""
    seen = last.get("files")
    if not isinstance(seen, dict):  # a history from before digests: modification times
        present = [f for f in files if (workspace / f).exists()]
        return max(((workspace / f).stat().st_mtime for f in present), default=0.0) > last["time"]
    now = {f: d for f, d in _digests(workspace).items() if f in files}
    return any(now.get(f) != seen.get(f) for f in files if f in now or f in seen)


@dataclass(frozen=True)
class StepStatus:
    step: course.Step
    state: str  # "not started", "in progress", "checked", "done"
    detail: str


def progress(workspace: Path) -> list[StepStatus]:
    workspace = Path(workspace)
    history, ignored = _read_history(_history_file(workspace))
    statuses = []
    for step in course.STEPS:
        files = step_files(step)
        present = [f for f in files if (workspace / f).exists()]
        last = history.get(step.id)
        if last is not None and "grading_since" in last:
            state, detail = "not graded", "its last grading did not finish (interrupted?): run the check again"
        elif last is None or "time" not in last:
            state = "not started" if not present and files else "not checked"
            detail = f"{len(present)}/{len(files)} files written" if files else "graded from the files of earlier steps"
        else:
            check_ids = [c.id for c in checks.for_step(step.id).checks]
            seen = last.get("checks", {})
            failing = [c for c in check_ids if c in seen and not seen[c]["passed"]]
            unchecked = [c for c in check_ids if c not in seen]
            state = "done" if not failing and not unchecked else "in progress"
            points = sum(seen[c]["points"] for c in check_ids if c in seen)
            detail = f"{points:g}/{checks.for_step(step.id).max_points:g} points"
            if failing:
                detail += f"; failing: {', '.join(failing[:3])}"
            if unchecked:
                detail += f"; {len(unchecked)} check(s) not run yet"
            if _changed_since(workspace, files, last):
                detail += "; files changed since the last check"
        if ignored and step is course.STEPS[0]:
            detail += f" ({ignored} history entries ignored: not written by this autograder)"
        statuses.append(StepStatus(step, state, detail))
    return statuses


@dataclass(frozen=True)
class Change:
    path: str
    action: str  # "created", "replaced", "unchanged"
    backup: str = ""


def catch_up(target_step: str, workspace: Path, *, reference: Path | None = None) -> list[Change]:
    """Restore the reference files of every step before ``target_step``; back up what it replaces.

    A later notebook may rewrite an earlier step's file (notebook 06 rewrites metrics.py and
    gunicorn.conf.py): where the solution notebooks are here, the files are what the notebooks
    before ``target_step`` write, so catching up never hands out a later step's solution. With
    only the reference workspace (a learner's repository) they are its files."""
    target = course.step(target_step)
    earlier = [s for s in course.STEPS if s.id < target.id]
    if reference is None and earlier and all(s.solution_notebook and s.solution_notebook.is_file() for s in earlier):
        from autograder.release.writefiles import write_files_of

        with tempfile.TemporaryDirectory(prefix="catch-up-") as folder:
            for step in earlier:
                write_files_of(step.solution_notebook, Path(folder), strip_markers=True)
            return _catch_up(target, earlier, Path(workspace), Path(folder) / course.WORKSPACE_NAME)
    return _catch_up(target, earlier, Path(workspace), reference or course.REFERENCE_WORKSPACE)


def _catch_up(target: course.Step, earlier: list[course.Step], workspace: Path, reference: Path) -> list[Change]:
    if not reference.is_dir():
        raise AutograderError(
            f"catch-up needs the reference workspace, and {reference} does not exist",
            hint="your instructor decides whether to hand it out: ask them for the course's reference/ folder "
            "(python -m autograder release --learner-repo DIR --with-reference includes it)",
        )
    if not earlier:
        raise AutograderError(f"step {target.id} is the first step: there is nothing to catch up on")
    # Check the whole plan before touching anything: a half catch-up would leave a mixed workspace.
    relatives = [relative for step in earlier for relative in step_files(step)]
    missing = [relative for relative in relatives if not (reference / relative).is_file()]
    if missing:
        raise AutograderError(
            f"the reference workspace lacks {', '.join(missing)}",
            hint="regenerate it: python -m autograder run-solutions",
        )
    workspace = Path(workspace)
    workspace.mkdir(parents=True, exist_ok=True)
    backup_root = workspace / ".catch-up-backups" / time.strftime("%Y%m%d-%H%M%S")
    changes = []
    for relative in relatives:
        source, destination = reference / relative, workspace / relative
        if destination.is_file() and destination.read_bytes() == source.read_bytes():
            changes.append(Change(relative, "unchanged"))
            continue
        backup = ""
        if destination.exists():
            backup_path = backup_root / relative
            backup_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(destination, backup_path)
            backup = str(backup_path.relative_to(workspace))
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        changes.append(Change(relative, "replaced" if backup else "created", backup))
    return changes
