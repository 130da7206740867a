"""Reading a Dockerfile and a .dockerignore well enough for the static checks of step 05.

Not a full parser (hadolint has one); enough to find instructions, stages and their arguments,
with line continuations and comments handled.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, USER...
    arguments: str  # the rest, continuations joined
    line: int  # where it starts, 1-based
    stage: int  # 0 for the first FROM's stage, 1 for the next...


def parse(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, in order; parser directives and comments skipped."""
    instructions: list[Instruction] = []
    stage, pending, start = -1, "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comments may sit between continuation lines
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, arguments.strip(), start, max(stage, 0)))
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by build stage, each group starting with its FROM."""
    grouped: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM" or not grouped:
            grouped.append([])
        grouped[-1].append(instruction)
    return grouped


def unfinished(instructions: list[Instruction]) -> str:
    """Why this is not a whole Dockerfile yet ("" when it is): an image that serves says in its
    final stage how it starts. The release hands out FROM lines; what they alone earn is nothing."""
    final = stages(instructions)[-1] if instructions else []
    if not any(i.keyword in ("CMD", "ENTRYPOINT") for i in final):
        return "its final stage has no CMD or ENTRYPOINT (how the image starts the service): finish the Dockerfile"
    return ""


def from_image(instruction: Instruction) -> tuple[str, str | None]:
    """(image, stage name) of a FROM: ``FROM --platform=x python:3.11-slim AS build``."""
    words = [w for w in instruction.arguments.split() if not w.startswith("--")]
    name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
    return (words[0] if words else ""), name


def image_is_pinned(image: str) -> bool:
    """A tag other than latest, or a digest: ``python:3.11-slim``, ``python@sha256:...``."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and not last.endswith(":latest") and "$" not in last


SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I)


def assignments(instruction: Instruction) -> dict[str, str]:
    """NAME=value pairs of an ENV or ARG (``ENV A=1 B=2``, ``ENV A 1``, ``ARG NAME``)."""
    try:
        words = shlex.split(instruction.arguments)
    except ValueError:
        words = instruction.arguments.split()
    if instruction.keyword == "ENV" and len(words) >= 2 and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return {w.partition("=")[0]: w.partition("=")[2] for w in words}


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context (last matching pattern wins;
    ``!`` re-includes; ``**`` matches any number of folders; a folder's pattern covers its files)."""
    excluded = False
    for raw in patterns:
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip().strip("/")
        candidates = {pattern, pattern.replace("**/", "")} if "**/" in pattern else {pattern}
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, candidate) for prefix in prefixes for candidate in candidates) or (
            pattern.startswith("**/") and any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        ):
            excluded = not negate
    return excluded


def _normalised(image: str) -> str:
    """python:3.11-slim for docker.io/library/python:3.11-slim and friends; the digest dropped."""
    name = image.split("@", 1)[0].lower()
    for prefix in ("docker.io/library/", "index.docker.io/library/", "library/", "docker.io/"):
        name = name.removeprefix(prefix)
    return name


def foreign_images(instructions: list[Instruction], allowed: set[str]) -> list[str]:
    """What a Dockerfile takes from images other than ``allowed`` and its own earlier stages:
    a FROM, a COPY --from or a RUN --mount=from=. Variables in FROM are resolved with the ARG
    defaults declared before the first FROM, as the builder does without --build-arg."""
    allowed_names = {_normalised(image) for image in allowed}
    arguments: dict[str, str] = {}
    stage_names: set[str] = set()
    stages_seen = 0
    problems = []
    for instruction in instructions:
        if instruction.keyword == "ARG" and stages_seen == 0:
            arguments.update(assignments(instruction))
        elif instruction.keyword == "FROM":
            image, name = from_image(instruction)
            resolved = re.sub(
                r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda match: arguments.get(match.group(1), match.group(0)), image
            )
            if "$" in resolved:
                problems.append(f"line {instruction.line}: FROM {image} names its image through an unset variable")
            elif resolved.lower() not in stage_names and _normalised(resolved) not in allowed_names:
                problems.append(f"line {instruction.line}: FROM {image}")
            stages_seen += 1
            if name:
                stage_names.add(name.lower())
        elif instruction.keyword in ("COPY", "ADD", "RUN"):
            for word in instruction.arguments.split():
                if not word.startswith("--"):
                    break
                reference = ""
                if word.startswith("--from="):
                    reference = word.removeprefix("--from=")
                elif word.startswith("--mount=") and "from=" in word:
                    reference = word.split("from=", 1)[1].split(",", 1)[0]
                if not reference:
                    continue
                earlier_stage = reference.isdigit() and int(reference) < stages_seen
                if not earlier_stage and reference.lower() not in stage_names:
                    problems.append(f"line {instruction.line}: {instruction.keyword} {word}")
    return problems
