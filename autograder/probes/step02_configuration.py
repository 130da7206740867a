"""Step 02 probes: the learner's ``service/config.py`` given environments the grader wrote.

The environments are explicit (never the process's own) and drawn for this run: variable
names, bounds, defaults and values differ from one grading to the next.
"""

from __future__ import annotations

from .harness import input_path


def parser_calls(calls: list[dict]) -> list:
    """[result, problems] of each parser call: {"parser", "name", "raw" (None: unset), "default", "options"}."""
    from service.config import parse_bool, parse_choice, parse_int

    parsers = {"int": parse_int, "bool": parse_bool, "choice": parse_choice}
    answers = []
    for call in calls:
        problems: list = []
        environ = {} if call["raw"] is None else {call["name"]: call["raw"]}
        options = dict(call.get("options", {}))
        if "choices" in options:
            options["choices"] = tuple(options["choices"])
        result = parsers[call["parser"]](environ, call["name"], call["default"], problems=problems, **options)
        answers.append([result if isinstance(result, bool | int | str) else repr(result), [str(p) for p in problems]])
    return answers


def _attempt(environ: dict) -> dict:
    from service.config import ConfigError, Settings

    try:
        settings = Settings.from_env(environ)
    except ConfigError as error:
        return {"raised": "ConfigError", "problems": [str(p) for p in error.problems], "message": str(error)}
    except Exception as error:
        return {"raised": type(error).__name__, "problems": [], "message": str(error)}
    return {
        "raised": None,
        "settings": {
            k: v if isinstance(v, bool | int | str) or v is None else repr(v) for k, v in settings.to_dict().items()
        },
    }


def settings_from(environs: dict[str, dict], weights: str | None = None) -> dict:
    """``Settings.from_env`` of each named environment; with ``weights``, MODEL_WEIGHTS_PATH in
    the environment named "configured" is set to that input file."""
    from service.config import Settings

    answers = {"class_defaults": _attempt_class_defaults(Settings)}
    if weights:
        environs["configured"]["MODEL_WEIGHTS_PATH"] = input_path(weights)
        answers["weights_path_given"] = input_path(weights)
    for name, environ in environs.items():
        answers[name] = _attempt(environ)
    return answers


def _attempt_class_defaults(settings_class) -> dict:
    try:
        return settings_class().to_dict()
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}


def frozen_settings() -> dict:
    import dataclasses

    from service.config import Settings

    settings = Settings()
    try:
        settings.port = 1
    except dataclasses.FrozenInstanceError:
        return {"frozen": True}
    except Exception as error:
        return {"frozen": False, "error": f"{type(error).__name__}: {error}"}
    return {"frozen": False}


class _Recording(dict):
    """An environment that notes every variable the configuration asks for."""

    def __init__(self, values: dict):
        super().__init__(values)
        self.asked: list[str] = []
        self.listed = False  # it went through every variable: which it wanted cannot be told

    def _listing(self):
        self.listed = True

    def __iter__(self):
        self._listing()
        return super().__iter__()

    def keys(self):
        self._listing()
        return super().keys()

    def items(self):
        self._listing()
        return super().items()

    def _note(self, key) -> None:
        if isinstance(key, str) and key not in self.asked:
            self.asked.append(key)

    def get(self, key, default=None):
        self._note(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self._note(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self._note(key)
        return super().__contains__(key)


def settings_of(environ: dict) -> dict:
    """``Settings.from_env`` of a deployment's environment (a ConfigMap's data, compose's env
    file): what it made of it, or what it rejected, and which variables it asked for."""
    recording = _Recording(environ)
    answer = _attempt(recording)
    answer["asked"] = list(recording.asked)
    answer["listed"] = recording.listed
    return answer
