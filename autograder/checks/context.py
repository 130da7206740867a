"""What a check may use: the workspace, and the means to run code that the upper layers inject.

Checks never start processes or containers themselves. ``grading.py`` builds a Context with the
runners plugged in, and tests can build one with fakes or the real runners.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class SuiteRun:
    """What came back from running a learner's pytest suite once."""

    exit_code: int  # pytest's: 0 all passed, 1 some failed, 2 interrupted, 5 no tests; -1 timed out
    collected: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    timed_out: bool = False
    seconds: float = 0.0
    output_tail: str = ""

    @property
    def passed(self) -> bool:
        """Every collected test passed, and there was at least one."""
        return self.exit_code == 0 and self.collected > 0

    @property
    def caught_something(self) -> bool:
        """The suite did not pass (failed, crashed or hung): on a faulty service whose reference
        passes, that means the fault was caught."""
        return self.exit_code != 0

    def describe(self) -> str:
        if self.timed_out:
            return f"the suite did not finish in {self.seconds:.0f} s"
        if self.exit_code == 5 or (self.exit_code == 0 and not self.collected):
            return "pytest collected no tests"
        if self.exit_code in (2, 3, 4):
            last = self.output_tail.strip().splitlines()[-1:] or ["no output"]
            return f"pytest could not run the suite ({last[0]})"
        return f"{self.collected} tests: {self.failed} failed, {self.errors} errors, {self.skipped} skipped"


@dataclass(frozen=True)
class LintFinding:
    """One finding of hadolint: a rule id (DL3008, SC2164...), its level, the line, the message."""

    code: str
    level: str  # error, warning, info, style
    line: int
    message: str


class PythonProbe(Protocol):
    def __call__(self, code: str, *, timeout: float = ...) -> ProbeResult: ...


class SuiteRunner(Protocol):
    """Runs the learner's tests against the reference service (None) or a named faulty variant."""

    variants: tuple[tuple[str, str], ...]  # (name, description) of every faulty variant

    def __call__(self, variant: str | None = None) -> SuiteRun: ...


class Service(Protocol):
    """A running service the live checks may send HTTP requests to (on 127.0.0.1 only)."""

    base_url: str
    figures: dict[str, str]

    def request(self, method: str, path: str, **kwargs) -> object: ...

    def running(self) -> bool: ...

    def configured_user(self) -> str:
        """USER from the image's configuration ('' means root)."""

    def process_uids(self) -> dict[int, tuple[str, str]]:
        """(UID, command) of each process in the container, by PID."""

    def read_only_root_trouble(self) -> str:
        """A hint when the logs show writes to the read-only root filesystem, else ''."""

    def stop(self, grace: float) -> StopResult:
        """SIGTERM, SIGKILL after ``grace`` seconds; the same result on every later call."""


class StopResult(Protocol):
    seconds: float
    exit_code: int
    oom_killed: bool
    logs: str


class Build(Protocol):
    """What the live checks read of an image build (runners.docker.BuildResult)."""

    tag: str
    seconds: float
    size_bytes: int
    layers: int


@dataclass
class Context:
    workspace: Path
    # Static and probe-based checks (steps 00-02) get a probe bound to the workspace.
    run_python: PythonProbe | None = None
    # Step 04 runs the learner's tests against the reference service and its faulty variants.
    run_suite: SuiteRunner | None = None
    # Step 05's static checks read hadolint's findings on the Dockerfile (None: not linted).
    lint_findings: list[LintFinding] | None = None
    lint_error: str = ""
    # Live checks (step 05) get what happened to the image and, if it started, the running service.
    skip_reason: str = ""  # set when they cannot run here (no Docker engine): skipped, never passed
    build: Build | None = None
    build_error: str = ""
    service: Service | None = None
    service_error: str = ""

    def file(self, relative: str) -> Path:
        return self.workspace / relative

    def probe(self, body: str, *, needs: tuple[str, ...], timeout: float = 120) -> tuple[object | None, str]:
        """Run ``body`` (which defines ``probe()``) against the learner's code once the files it
        ``needs`` exist; return (value, "") or (None, a failure message for the learner)."""
        for relative in needs:
            if not self.file(relative).is_file():
                return None, f"{relative} does not exist in {self.workspace}: run the cell that writes it"
        result = self.run_python(body, timeout=timeout)
        if not result.ok:
            return None, result.describe_failure()
        return result.value, ""
