"""The record every check returns, and the small vocabulary around it."""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import asdict, dataclass

MESSAGE_LIMIT = 4000


def printable(text: str, *, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` safe to print on a terminal or embed anywhere: control characters (escape
    sequences that move the cursor or erase lines) and invisible Unicode format characters
    (bidirectional overrides) shown as escapes, newlines and tabs kept, length bounded."""
    out = []
    for character in str(text)[: limit * 2]:
        if character in "\n\t":
            out.append(character)
        elif unicodedata.category(character) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            out.append(f"\\u{ord(character):04x}" if ord(character) > 0xFF else f"\\x{ord(character):02x}")
        else:
            out.append(character)
    escaped = "".join(out)
    if len(escaped) > limit or len(str(text)) > limit * 2:
        escaped = escaped[: limit - 40] + " [... the rest left out]"
    return escaped


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


# What a check may declare it needs; grading makes each once per run, on first use.
RESOURCES = (
    "probe",
    "suite",
    "lint",
    "image",
    "service",
    "compose",
    "promtool",
    "stack",
    "manifests",
    "pod",
    "policies",
)


@dataclass(frozen=True)
class Check:
    """A registered check: metadata plus the function that produces its result."""

    id: str
    title: str
    max_points: float
    hint: str
    function: object  # Callable[[Context], Outcome]
    needs: tuple[str, ...] = ()  # resources, from RESOURCES
    last: bool = False  # runs after the step's other checks (it ends what they share)


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
