"""What a check may use: the workspace, and the means to run code that the upper layers inject.

Checks never start processes or containers themselves. ``grading.py`` builds a Context with the
runners plugged in, and tests can build one with fakes or the real runners.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ProbeResult:
    """What came back from running a snippet of Python against the learner's code."""

    ok: bool
    value: object = None  # the JSON the snippet returned when ok
    error: str = ""  # "ExceptionType: message" raised by the learner's code
    timed_out: bool = False
    crashed: bool = False  # the interpreter died (segfault, os._exit, killed)
    output_tail: str = ""  # last lines of stdout/stderr, for the message

    def describe_failure(self) -> str:
        if self.timed_out:
            return "your code did not finish in time (an endless loop, or work done at import?)"
        if self.crashed:
            tail = self.output_tail.strip().splitlines()[-1:] or ["no output"]
            return f"the Python process running your code died ({tail[0]})"
        return self.error or "your code raised an error"


class PythonProbe(Protocol):
    def __call__(self, code: str, *, timeout: float = ...) -> ProbeResult: ...


class Service(Protocol):
    """A running service the live checks may send HTTP requests to (on 127.0.0.1 only)."""

    base_url: str
    figures: dict[str, str]

    def request(self, method: str, path: str, **kwargs) -> object: ...


@dataclass
class Context:
    workspace: Path
    run_python: PythonProbe | None = None
    # Live checks get a running container; None means "no engine here" and they are skipped.
    service: Service | None = None
    service_error: str = ""
    # Scratch folder for files a check creates (reference weights...), never the workspace.
    scratch: Path | None = None
    extras: dict = field(default_factory=dict)

    def file(self, relative: str) -> Path:
        return self.workspace / relative


ProbeFactory = Callable[[Path], PythonProbe]
