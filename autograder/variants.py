"""Faulty variants of the reference service: the hidden test set that grades a learner's suite.

A variant is the reference workspace with a few exact text replacements, read from
``solutions/<assignment>/hidden/faulty-variants.toml``. Keeping them as edits (not as copies of the
service) means a change to the reference cannot silently leave a variant behind: an edit whose
text no longer occurs exactly once is an error, and the tests say which.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from autograder import course
from autograder.errors import AutograderError


@dataclass(frozen=True)
class Edit:
    file: str  # workspace-relative
    old: str
    new: str


@dataclass(frozen=True)
class Variant:
    name: str
    description: str  # what a learner is told when their suite misses it: a behaviour, not a test
    edits: tuple[Edit, ...]


def load(path: Path | None = None) -> list[Variant]:
    """The variants in ``path`` (default: the course's hidden file)."""
    path = path or course.FAULTY_VARIANTS
    if not path.is_file():
        raise AutograderError(
            f"the faulty variants file {path} does not exist",
            hint="it lives in solutions/, which only instructors have; grade step 04 with the full course repository",
        )
    try:
        data = tomllib.loads(path.read_text())
        variants = [
            Variant(
                name=entry["name"],
                description=entry["description"],
                edits=tuple(Edit(e["file"], e["old"], e["new"]) for e in entry["edit"]),
            )
            for entry in data["variant"]
        ]
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as error:
        raise AutograderError(f"{path} is malformed: {error}", hint="see the comment at the top of the file") from error
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise AutograderError(f"{path} names a variant twice", hint="give every variant its own name")
    return variants


def apply(variant: Variant, workspace: Path) -> None:
    """Turn the copy of the reference at ``workspace`` into ``variant``."""
    for edit in variant.edits:
        path = workspace / edit.file
        text = path.read_text() if path.is_file() else ""
        count = text.count(edit.old)
        if count != 1:
            raise AutograderError(
                f"variant {variant.name}: the text to replace occurs {count} times in {edit.file} (must be once)",
                hint="the reference service changed: update hidden/faulty-variants.toml to match it",
            )
        path.write_text(text.replace(edit.old, edit.new))
