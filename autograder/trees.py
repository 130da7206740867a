"""Comparing folders file by file: how release --check and run-solutions --check find drift."""

from __future__ import annotations

import filecmp
from pathlib import Path

ALWAYS_IGNORED = frozenset({"__pycache__", ".ipynb_checkpoints", ".pytest_cache"})


def relative_files(root: Path, ignore: frozenset[str] | set[str] = ALWAYS_IGNORED) -> set[str]:
    """Paths of the files below ``root``, skipping any path with a part in ``ignore``."""
    if not root.is_dir():
        return set()
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not set(ignore).intersection(path.relative_to(root).parts)
    }


def differences(expected: Path, actual: Path, ignore: frozenset[str] | set[str] = ALWAYS_IGNORED) -> list[str]:
    """'missing', 'unexpected' and 'differs' lines for ``actual`` compared with ``expected``."""
    expected_files, actual_files = relative_files(expected, ignore), relative_files(actual, ignore)
    lines = [f"missing    {name}" for name in sorted(expected_files - actual_files)]
    lines += [f"unexpected {name}" for name in sorted(actual_files - expected_files)]
    lines += [
        f"differs    {name}"
        for name in sorted(expected_files & actual_files)
        if not filecmp.cmp(expected / name, actual / name, shallow=False)
    ]
    return lines
