"""Whether a process still runs: how files and containers left by killed gradings are told apart
from those of gradings running side by side."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while process ``pid`` exists (owned by anyone); False for 0 and negative numbers."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
