"""A frozen, sanitised copy of a learner's workspace: what grading reads, runs and builds.

The workspace is hostile input. The copy holds regular files and folders only: a symbolic link
that leaves the workspace is refused (a link inside it is copied as the file it names), devices,
pipes and sockets are left out, and so are files over the size limit and anything once the
total is reached; each refusal becomes a note for the report. Grading the copy also means the
learner's code cannot change the files a later check reads, and the checks see one state of the
workspace from start to end.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

# Never graded and never sent to a build: history, environments, caches, backups of catch-up.
SKIPPED_FOLDERS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "__pycache__",
        ".pytest_cache",
        ".ipynb_checkpoints",
        ".catch-up-backups",
        ".mypy_cache",
        ".ruff_cache",
        "node_modules",
    }
)
FILE_LIMIT = 256 * 1024**2  # a baked-in weights file is about 100 MB
TOTAL_LIMIT = 1024**3
MAX_ENTRIES = 20_000
MAX_DEPTH = 24  # folders within folders; a course workspace needs four
CHUNK = 1024 * 1024


@dataclass
class Snapshot:
    source: Path  # the learner's folder (for messages)
    root: Path  # the copy
    notes: list[str] = field(default_factory=list)  # what was refused, for the report
    total_bytes: int = 0
    files: int = 0


def take(
    workspace: Path, destination: Path, *, file_limit: int = FILE_LIMIT, total_limit: int = TOTAL_LIMIT
) -> Snapshot:
    """Copy ``workspace`` into the new folder ``destination`` under the rules above."""
    workspace = Path(workspace)
    real_root = os.path.realpath(workspace)
    snapshot = Snapshot(source=workspace, root=destination)
    destination.mkdir(parents=True)
    entries = 0

    def note(relative: str, why: str) -> None:
        if len(snapshot.notes) < 20:
            snapshot.notes.append(f"{relative}: {why}")
        elif len(snapshot.notes) == 20:
            snapshot.notes.append("... and more files left out")

    def copy_file(source_path: str, relative: str, size: int) -> None:
        if size > file_limit:
            note(relative, f"left out: {size / 1e6:.0f} MB is over the {file_limit / 1e6:.0f} MB limit for one file")
            return
        if snapshot.total_bytes + size > total_limit:
            note(relative, f"left out: the workspace is over its {total_limit / 1e9:.1f} GB limit")
            return
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        copied = 0
        with open(source_path, "rb") as reader, open(target, "wb") as writer:
            # Bounded even when the size reported above was a lie (a file still growing).
            while copied <= file_limit and (chunk := reader.read(CHUNK)):
                writer.write(chunk)
                copied += len(chunk)
        if copied > file_limit:
            target.unlink()
            note(relative, "left out: it grew over the size limit while it was copied")
            return
        if os.stat(source_path).st_mode & 0o111:
            target.chmod(0o755)
        snapshot.total_bytes += copied
        snapshot.files += 1

    def copy_or_note(source_path: str, relative: str, size: int) -> None:
        try:
            copy_file(source_path, relative, size)
        except OSError as error:  # unreadable, vanished meanwhile, a name too long for this system
            with contextlib.suppress(OSError):
                (destination / relative).unlink()
            note(relative, f"left out: could not be copied ({error.strerror or error})")

    def walk(folder: str, relative_folder: str, depth: int) -> None:
        nonlocal entries
        if depth > MAX_DEPTH:
            note(relative_folder, f"left out: folders nested more than {MAX_DEPTH} deep")
            return
        try:
            listing = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as error:
            note(relative_folder or ".", f"could not be read ({error.strerror})")
            return
        for entry in listing:
            entries += 1
            if entries > MAX_ENTRIES:
                note(relative_folder or ".", f"left out: more than {MAX_ENTRIES} files and folders")
                return
            relative = f"{relative_folder}/{entry.name}" if relative_folder else entry.name
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                target = os.path.realpath(entry.path)
                inside = target == real_root or target.startswith(real_root + os.sep)
                if not inside:
                    note(relative, "refused: a symbolic link to a path outside the workspace")
                    continue
                try:
                    target_info = os.stat(target)
                except OSError:
                    note(relative, "refused: a symbolic link to nothing")
                    continue
                if stat.S_ISREG(target_info.st_mode):
                    copy_or_note(target, relative, target_info.st_size)
                else:
                    note(relative, "left out: a symbolic link to a folder (copy the files instead)")
            elif stat.S_ISDIR(info.st_mode):
                if entry.name in SKIPPED_FOLDERS:
                    continue
                try:
                    (destination / relative).mkdir(exist_ok=True)
                except OSError as error:  # a name too long for this system, say
                    note(relative, f"left out: could not be copied ({error.strerror})")
                    continue
                walk(entry.path, relative, depth + 1)
            elif stat.S_ISREG(info.st_mode):
                copy_or_note(entry.path, relative, info.st_size)
            else:
                note(relative, "left out: not a regular file (a device, pipe or socket)")

    walk(str(workspace), "", 1)
    return snapshot
