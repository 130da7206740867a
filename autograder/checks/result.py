"""The record every check returns, and the small vocabulary around it."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass


class Verdict(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    # Could not run here (no Docker engine, for example). Never counts as passed.
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check against one workspace.

    ``message`` says what was observed; ``hint`` says what to try, without revealing a hidden test.
    """

    id: str
    title: str
    verdict: Verdict
    points: float
    max_points: float
    message: str = ""
    hint: str = ""
    # Extra figures worth showing (build seconds, image size...), never used for the verdict.
    figures: tuple[tuple[str, str], ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED

    def to_dict(self) -> dict:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["figures"] = dict(self.figures)
        return data


@dataclass(frozen=True)
class Check:
    """A registered check: metadata plus the function that produces its result."""

    id: str
    title: str
    max_points: float
    hint: str
    function: object  # Callable[[Context], Outcome]


@dataclass(frozen=True)
class Outcome:
    """What a check function returns; the registry turns it into a CheckResult."""

    passed: bool
    message: str
    figures: tuple[tuple[str, str], ...] = ()
    skipped: bool = False
    # Partial credit: the share of the check's points earned (None: all or nothing by ``passed``).
    score: float | None = None

    @classmethod
    def ok(cls, message: str, **figures: str) -> Outcome:
        return cls(True, message, tuple(figures.items()))

    @classmethod
    def fail(cls, message: str, **figures: str) -> Outcome:
        return cls(False, message, tuple(figures.items()))

    @classmethod
    def partial(cls, score: float, message: str, **figures: str) -> Outcome:
        """Passed only with the full score; otherwise failed, but worth ``score`` of the points."""
        score = min(max(score, 0.0), 1.0)
        return cls(score >= 1.0, message, tuple(figures.items()), score=score)

    @classmethod
    def skip(cls, message: str) -> Outcome:
        return cls(False, message, skipped=True)
