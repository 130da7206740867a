"""The service's settings: read once from environment variables at start-up, typed, validated.

Every invalid value is reported, all at once, naming the variable, the value and what is allowed,
so an operator fixes a bad deployment in one go instead of one restart per typo.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class ConfigError(ValueError):
    """One or more settings are invalid; ``problems`` lists every one of them."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


def parse_int(
    environ: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int, problems: list[str]
) -> int:
    """``environ[name]`` as an int in [minimum, maximum], or ``default`` when unset or empty.

    An invalid value appends "NAME='value': must be an integer from MIN to MAX" to ``problems``
    and returns ``default``, so that every problem can be reported together.
    """
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:
        problems.append(f"{name}={raw!r}: must be an integer from {minimum} to {maximum}")
        return default
    return value


def parse_bool(environ: Mapping[str, str], name: str, default: bool, *, problems: list[str]) -> bool:
    """``environ[name]`` as a bool (1/true/yes/on or 0/false/no/off, any case), else ``default``."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() in TRUE_WORDS:
        return True
    if raw.lower() in FALSE_WORDS:
        return False
    problems.append(f"{name}={raw!r}: must be one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")
    return default


def parse_choice(
    environ: Mapping[str, str], name: str, default: str, *, choices: tuple[str, ...], problems: list[str]
) -> str:
    """``environ[name]`` upper-cased if it is one of ``choices``, else ``default``."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if raw.upper() in choices:
        return raw.upper()
    problems.append(f"{name}={raw!r}: must be one of {', '.join(choices)}")
    return default


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told, with the defaults it runs with when told nothing."""

    port: int = 5000  # PORT
    top_k_default: int = 5  # TOP_K_DEFAULT: predictions per answer when the client does not say
    top_k_max: int = 20  # TOP_K_MAX: the most a client may ask for
    max_upload_bytes: int = 10 * 1024 * 1024  # MAX_UPLOAD_BYTES
    weights_path: str | None = None  # MODEL_WEIGHTS_PATH
    allow_random_weights: bool = False  # MODEL_ALLOW_RANDOM_WEIGHTS
    random_seed: int = 0  # MODEL_RANDOM_SEED
    log_level: str = "INFO"  # LOG_LEVEL
    workers: int = 1  # WEB_CONCURRENCY (gunicorn's own variable)
    threads: int = 2  # WORKER_THREADS: request threads per worker
    torch_threads: int = 1  # TORCH_NUM_THREADS: PyTorch threads per worker

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default: os.environ); raise ConfigError listing
        every invalid value. Also invalid: TOP_K_DEFAULT above TOP_K_MAX, and a
        MODEL_WEIGHTS_PATH that is not a file."""
        environ = os.environ if environ is None else environ
        problems: list[str] = []
        settings = cls(
            port=parse_int(environ, "PORT", 5000, minimum=1, maximum=65535, problems=problems),
            top_k_default=parse_int(environ, "TOP_K_DEFAULT", 5, minimum=1, maximum=1000, problems=problems),
            top_k_max=parse_int(environ, "TOP_K_MAX", 20, minimum=1, maximum=1000, problems=problems),
            max_upload_bytes=parse_int(
                environ, "MAX_UPLOAD_BYTES", 10 * 1024 * 1024, minimum=1024, maximum=100 * 1024 * 1024, problems=problems
            ),
            weights_path=environ.get("MODEL_WEIGHTS_PATH", "").strip() or None,
            allow_random_weights=parse_bool(environ, "MODEL_ALLOW_RANDOM_WEIGHTS", False, problems=problems),
            random_seed=parse_int(environ, "MODEL_RANDOM_SEED", 0, minimum=0, maximum=2**32 - 1, problems=problems),
            log_level=parse_choice(environ, "LOG_LEVEL", "INFO", choices=LOG_LEVELS, problems=problems),
            workers=parse_int(environ, "WEB_CONCURRENCY", 1, minimum=1, maximum=32, problems=problems),
            threads=parse_int(environ, "WORKER_THREADS", 2, minimum=1, maximum=64, problems=problems),
            torch_threads=parse_int(environ, "TORCH_NUM_THREADS", 1, minimum=1, maximum=64, problems=problems),
        )
        if settings.top_k_default > settings.top_k_max:
            problems.append(
                f"TOP_K_DEFAULT={settings.top_k_default!r}: must not exceed TOP_K_MAX ({settings.top_k_max})"
            )
        if settings.weights_path is not None and not Path(settings.weights_path).is_file():
            problems.append(f"MODEL_WEIGHTS_PATH={settings.weights_path!r}: must be an existing weights file")
        if problems:
            raise ConfigError(problems)
        return settings

    def to_dict(self) -> dict:
        return asdict(self)


def main(environ: Mapping[str, str] | None = None) -> int:
    """``python -m service.config``: print the effective settings (exit 0) or every problem (exit 2).

    Operators run it before a deployment; the service runs the same validation at start-up.
    Problems go to stderr, one per line, and never as a traceback.
    """
    try:
        settings = Settings.from_env(environ)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    for name, value in settings.to_dict().items():
        print(f"{name} = {value!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
