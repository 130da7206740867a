"""Step 02, configuration: grades ``service/config.py``.

The probes (``autograder/probes/step02_configuration.py``) hand the learner's code explicit
environments, never the grader's own. Names, bounds, defaults and values are drawn for each run
from the ranges notebook 02 documents, and the expected answers are worked out here: an answer
prepared in advance cannot match them.
"""

from __future__ import annotations

import random
import string

from autograder.checks.context import Context
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome
from autograder.checks.stubs import stubbed_functions

STEP = StepChecks("02")
CONFIG_FILE = "service/config.py"
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# variable: (Settings field, allowed range or kind) as notebook 02's table documents them.
INTEGERS = {
    "PORT": ("port", 1, 65535),
    "TOP_K_DEFAULT": ("top_k_default", 1, 1000),
    "TOP_K_MAX": ("top_k_max", 1, 1000),
    "MAX_UPLOAD_BYTES": ("max_upload_bytes", 1024, 100 * 1024 * 1024),
    "MODEL_RANDOM_SEED": ("random_seed", 0, 2**32 - 1),
    "WEB_CONCURRENCY": ("workers", 1, 32),
    "WORKER_THREADS": ("threads", 1, 64),
    "TORCH_NUM_THREADS": ("torch_threads", 1, 64),
}
VARIABLES = (*INTEGERS, "MODEL_ALLOW_RANDOM_WEIGHTS", "LOG_LEVEL")
DEFAULTS = {
    "port": 5000, "top_k_default": 5, "top_k_max": 20, "max_upload_bytes": 10 * 1024 * 1024,
    "weights_path": None, "allow_random_weights": False, "random_seed": 0, "log_level": "INFO",
    "workers": 1, "threads": 2, "torch_threads": 1,
}  # fmt: skip


def _word(rng: random.Random, length: int = 6) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(length))


def _cased(rng: random.Random, word: str) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in word)


def valid_environment(rng: random.Random) -> tuple[dict[str, str], dict[str, object]]:
    """Every variable set to a valid value other than its default; and the Settings fields they must give."""
    environ: dict[str, str] = {}
    expected: dict[str, object] = {}
    for name, (field, low, high) in INTEGERS.items():
        value = rng.randint(low, min(high, low + 5000))
        while value == DEFAULTS[field]:
            value = rng.randint(low, min(high, low + 5000))
        environ[name], expected[field] = f" {value} " if rng.random() < 0.3 else str(value), value
    top_max = rng.randint(2, 1000)
    environ["TOP_K_MAX"], expected["top_k_max"] = str(top_max), top_max
    top_default = rng.choice([v for v in range(1, min(top_max, 50) + 1) if v != DEFAULTS["top_k_default"]] or [1])
    environ["TOP_K_DEFAULT"], expected["top_k_default"] = str(top_default), top_default
    environ["MODEL_ALLOW_RANDOM_WEIGHTS"], expected["allow_random_weights"] = _cased(rng, rng.choice(TRUE_WORDS)), True
    level = rng.choice([lv for lv in LOG_LEVELS if lv != "INFO"])
    environ["LOG_LEVEL"], expected["log_level"] = _cased(rng, level.lower()), level
    return environ, expected


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1][:300] if lines else ""


def _raised(attempt: dict) -> str:
    """'ConfigError: message', or the bare name when the message is empty (a stub's NotImplementedError)."""
    message = str(attempt.get("message") or "")[:300]
    return f"{attempt['raised']}: {message}" if message else str(attempt["raised"])


def _part_of(rng: random.Random, environ: dict[str, str]) -> dict[str, str]:
    """A random part of ``environ`` (all of it, or as little as nothing), keeping TOP_K_DEFAULT
    and TOP_K_MAX together so the part stays valid."""
    kept = {name: value for name, value in environ.items() if rng.random() < 0.6}
    if ("TOP_K_DEFAULT" in kept) != ("TOP_K_MAX" in kept):
        kept.pop("TOP_K_DEFAULT", None)
        kept.pop("TOP_K_MAX", None)
    return kept if rng.random() < 0.7 else dict(environ)


def invalid_values(rng: random.Random) -> dict[str, str]:
    """One invalid value for every variable: words, out of range, or almost right (10MB)."""
    values = {}
    for name, (_, low, high) in INTEGERS.items():
        values[name] = rng.choice(
            [
                _word(rng),
                str(rng.randint(high + 1, high + 10**6)),
                f"{rng.randint(1, 99)}{rng.choice(['MB', 'k', '.5'])}",
            ]
            + ([str(low - 1)] if low > 0 else [str(-rng.randint(1, 99))])
        )
    values["MODEL_ALLOW_RANDOM_WEIGHTS"] = rng.choice(["maybe", "2", "enabled", _word(rng)])
    values["LOG_LEVEL"] = rng.choice(["verbose", "trace", "loud", _word(rng)])
    return values


@STEP.check(
    "parsers",
    "parse_int, parse_bool and parse_choice accept good values and describe bad ones",
    points=2,
    hint="Unset or empty means the default. A bad value appends \"NAME='value': must be ...\" to "
    "problems (saying what is allowed) and returns the default; it never raises.",
    needs=("probe",),
)
def parsers(ctx: Context) -> Outcome:
    rng = ctx.rng
    name = "X_" + _word(rng).upper()
    low = rng.randint(1, 100)
    high = rng.randint(low + 100, low + 70000)
    default = rng.randint(low, high)
    good = rng.randint(low, high)
    choices = rng.sample(["ALPHA", "BRAVO", "DELTA", "ECHO", "KILO", "LIMA", "TANGO"], 3)
    choice_default, choice_good = rng.choice(choices), rng.choice(choices)
    bool_default = rng.random() < 0.5
    nonsense = _word(rng)
    # (parser, raw, expected result, whether a problem must be added, options)
    cases = [
        ("int", None, default, False), ("int", "", default, False), ("int", f" {good} ", good, False),
        ("int", nonsense, default, True), ("int", str(low - 1), default, True), ("int", str(high + 1), default, True),
        ("bool", None, bool_default, False), ("bool", _cased(rng, rng.choice(TRUE_WORDS)), True, False),
        ("bool", _cased(rng, rng.choice(FALSE_WORDS)), False, False), ("bool", nonsense, bool_default, True),
        ("choice", None, choice_default, False), ("choice", choice_good.lower(), choice_good, False),
        ("choice", nonsense, choice_default, True),
    ]  # fmt: skip
    defaults = {"int": default, "bool": bool_default, "choice": choice_default}
    options = {"int": {"minimum": low, "maximum": high}, "bool": {}, "choice": {"choices": choices}}
    allowed_words = {"int": (str(low), str(high)), "bool": ("true", "false"), "choice": tuple(choices)}
    calls = [
        {"parser": kind, "name": name, "raw": raw, "default": defaults[kind], "options": options[kind]}
        for kind, raw, _, _ in cases
    ]
    value, failure = ctx.probe("step02_configuration:parser_calls", {"calls": calls}, files=(CONFIG_FILE,))
    if failure:
        return Outcome.fail(f"the parsers failed: {failure}")
    if not isinstance(value, list) or len(value) != len(cases):
        return Outcome.fail("the parsers' answers did not come back")
    for (kind, raw, wanted, bad), (got, problems) in zip(cases, value, strict=True):
        shown = f"{name}={raw!r}" if raw is not None else f"{name} unset"
        if got != wanted or type(got) is not type(wanted):
            return Outcome.fail(f"parse_{kind} gave {got!r} for {shown}; expected {wanted!r}")
        if bad:
            if len(problems) != 1:
                return Outcome.fail(f"parse_{kind} with {shown} should add one problem, added {problems}")
            missing = [w for w in (name, raw, *allowed_words[kind]) if w not in problems[0]]
            if missing:
                return Outcome.fail(
                    f"the problem {problems[0]!r} should name the variable, the value and what is allowed "
                    f"(missing {', '.join(missing)})"
                )
        elif problems:
            return Outcome.fail(f"parse_{kind} reported a problem for a valid {shown}: {problems}")
    return Outcome.ok("good values parsed, bad ones described with name, value and what is allowed")


@STEP.check(
    "defaults-and-variables",
    "Settings.from_env reads every variable, with the documented defaults",
    points=2,
    hint="Call the parsers once per field, with the variable names and defaults in the comments of "
    "the Settings class, reading the environ argument (never os.environ when one is given); "
    "from_env({}) must equal Settings().",
    needs=("probe",),
)
def defaults_and_variables(ctx: Context) -> Outcome:
    environ, expected = valid_environment(ctx.rng)
    value, failure = ctx.probe(
        "step02_configuration:settings_from",
        {"environs": {"defaults": {}, "configured": environ}, "weights": "resnet50.pt"},
        inputs={"resnet50.pt": b"weights"},
        files=(CONFIG_FILE,),
    )
    if failure:
        return Outcome.fail(f"Settings.from_env failed: {failure}")
    defaults, configured = value["defaults"], value["configured"]
    for attempt in (defaults, configured):
        if attempt.get("raised"):
            return Outcome.fail(f"Settings.from_env raised {_raised(attempt)}")
    if defaults["settings"] != value["class_defaults"]:
        return Outcome.fail("from_env({}) differs from Settings(): the defaults must live in one place")
    wrong = {k: v for k, v in DEFAULTS.items() if defaults["settings"].get(k) != v}
    if wrong:
        return Outcome.fail(f"defaults differ from the documented ones: {wrong}")
    fields = {field: name for name, (field, _, _) in INTEGERS.items()}
    fields.update(allow_random_weights="MODEL_ALLOW_RANDOM_WEIGHTS", log_level="LOG_LEVEL")
    for field, wanted in expected.items():
        got = configured["settings"].get(field)
        if got != wanted:
            name = fields[field]
            return Outcome.fail(f"{name}={environ[name]!r} is not read into {field}: got {got!r}, expected {wanted!r}")
    if configured["settings"].get("weights_path") != value.get("weights_path_given"):
        return Outcome.fail("MODEL_WEIGHTS_PATH is not read into weights_path")
    return Outcome.ok(f"{len(VARIABLES) + 1} variables read; defaults as documented")


@STEP.check(
    "invalid-values-named",
    "every invalid value fails, and all of them are reported together",
    points=2,
    hint="Collect problems in a list while parsing and raise ConfigError(problems) once at the end; "
    "each problem names the variable and the value it had.",
    needs=("probe",),
)
def invalid_values_named(ctx: Context) -> Outcome:
    invalid = invalid_values(ctx.rng)
    valid, _ = valid_environment(ctx.rng)
    # Each bad value among valid ones, in environments of every size (the whole valid one, or a
    # part of it): only the value tells them from the valid control, never their length.
    environs = {name: {**_part_of(ctx.rng, valid), name: raw} for name, raw in invalid.items()}
    environs["together"] = dict(invalid)
    environs["valid control"] = _part_of(ctx.rng, valid)
    value, failure = ctx.probe("step02_configuration:settings_from", {"environs": environs}, files=(CONFIG_FILE,))
    if failure:
        return Outcome.fail(f"Settings.from_env failed: {failure}")
    control = value["valid control"]
    if control["raised"] and control["raised"] != "ConfigError":
        return Outcome.fail(f"Settings.from_env raised {_raised(control)}")
    if control["raised"]:
        shown = ", ".join(f"{k}={v!r}" for k, v in environs["valid control"].items()) or "an empty environment"
        return Outcome.fail(f"valid values were refused ({shown}): {_raised(control)}")
    for name, raw in invalid.items():
        outcome = value[name]
        if outcome["raised"] != "ConfigError":
            return Outcome.fail(f"{name}={raw!r} should raise ConfigError; it gave {outcome['raised'] or 'no error'}")
        if name not in outcome["message"] or raw not in outcome["message"]:
            return Outcome.fail(
                f"the error for {name}={raw!r} does not name the variable and its value: {outcome['message']!r}"
            )
    together = value["together"]
    named = [name for name in invalid if any(name in p for p in together.get("problems", []))]
    if len(named) < len(invalid):
        missing = sorted(set(invalid) - set(named))
        return Outcome.fail(f"with every variable wrong, only {len(named)} problems were reported; missing {missing}")
    return Outcome.ok(f"each of {len(invalid)} invalid values named; all reported in one error")


@STEP.check(
    "cross-field-rules",
    "rules across settings: TOP_K_DEFAULT <= TOP_K_MAX, MODEL_WEIGHTS_PATH exists",
    points=1,
    hint="After parsing, compare top_k_default with top_k_max, and check Path(weights_path).is_file(); "
    "add a problem for each, naming the variables and the path.",
    needs=("probe",),
)
def cross_field_rules(ctx: Context) -> Outcome:
    top_max = ctx.rng.randint(2, 500)
    top_default = ctx.rng.randint(top_max + 1, 1000)
    missing_path = f"/no/such/{_word(ctx.rng)}/resnet50.pt"
    fine_default = ctx.rng.randint(1, top_max)
    environs = {
        "top_k": {"TOP_K_DEFAULT": str(top_default), "TOP_K_MAX": str(top_max)},
        "weights": {"MODEL_WEIGHTS_PATH": missing_path},
        # The same variables, valid: the rules, not the variables' presence, must decide.
        "configured": {"TOP_K_DEFAULT": str(fine_default), "TOP_K_MAX": str(top_max)},
    }
    value, failure = ctx.probe(
        "step02_configuration:settings_from",
        {"environs": environs, "weights": "resnet50.pt"},
        inputs={"resnet50.pt": b"weights"},
        files=(CONFIG_FILE,),
    )
    if failure:
        return Outcome.fail(f"Settings.from_env failed: {failure}")
    for attempt in (value["top_k"], value["weights"], value["configured"]):
        if attempt["raised"] not in (None, "ConfigError"):
            return Outcome.fail(f"Settings.from_env raised {_raised(attempt)} instead of a ConfigError")
    if value["configured"]["raised"]:
        return Outcome.fail(
            f"TOP_K_DEFAULT={fine_default} with TOP_K_MAX={top_max} and an existing MODEL_WEIGHTS_PATH were "
            f"refused: {value['configured'].get('message', '')[:200]}"
        )
    top_k = value["top_k"].get("message", "") if value["top_k"]["raised"] == "ConfigError" else ""
    if "TOP_K_DEFAULT" not in top_k or "TOP_K_MAX" not in top_k:
        return Outcome.fail(
            f"TOP_K_DEFAULT={top_default} with TOP_K_MAX={top_max} should fail naming both; got {top_k or 'no error'!r}"
        )
    weights = value["weights"].get("message", "") if value["weights"]["raised"] == "ConfigError" else ""
    if missing_path not in weights:
        return Outcome.fail(
            f"a MODEL_WEIGHTS_PATH that does not exist should fail naming the path; got {weights or 'no error'!r}"
        )
    return Outcome.ok("both rules enforced, with the names and the path in the message")


@STEP.check(
    "startup-command",
    "python -m service.config prints the settings, or every problem with exit status 2",
    points=2,
    hint="main() catches ConfigError, prints it to stderr and returns 2; otherwise prints the "
    "effective settings, one 'name = value' line each, and returns 0. The module ends with "
    'sys.exit(main()) under if __name__ == "__main__".',
    needs=("probe",),
)
def startup_command(ctx: Context) -> Outcome:
    port = ctx.rng.randint(1024, 65535)
    while port == DEFAULTS["port"]:
        port = ctx.rng.randint(1024, 65535)
    invalid = invalid_values(ctx.rng)
    valid, _ = valid_environment(ctx.rng)
    wrong = ctx.rng.sample(sorted(invalid), 2)
    bad = {**_part_of(ctx.rng, valid), **{name: invalid[name] for name in wrong}}
    good_env = {**_part_of(ctx.rng, valid), "PORT": str(port)}
    # The command run as a learner would run it; its exit status and output seen from outside.
    good, failure = ctx.command(["python", "-m", "service.config"], env=good_env, files=(CONFIG_FILE,))
    if not failure:
        broken, failure = ctx.command(["python", "-m", "service.config"], env=bad, files=(CONFIG_FILE,))
    if failure:
        return Outcome.fail(f"running python -m service.config failed: {failure}")
    if good["status"] != 0 or str(port) not in good["stdout"]:
        return Outcome.fail(
            f"with PORT={port} it should exit 0 and print the port; exit {good['status']}: "
            f"{_last_line(good['stderr']) or _last_line(good['stdout']) or 'no output'}"
        )
    if broken["status"] != 2:
        return Outcome.fail(f"with invalid values it should exit with status 2, not {broken['status']}")
    if "Traceback" in broken["stderr"]:
        return Outcome.fail("invalid values produced a traceback: print the problems instead")
    if not all(name in broken["stderr"] for name in wrong):
        return Outcome.fail(
            f"stderr should name every invalid variable ({', '.join(wrong)}): {broken['stderr'][-300:]}"
        )
    return Outcome.ok("settings printed; invalid values listed on stderr with exit status 2")


@STEP.check(
    "complete-and-immutable",
    "config.py has no exercise stub left, and Settings cannot be changed after start-up",
    points=1,
    hint="Replace every `raise NotImplementedError()`; keep @dataclass(frozen=True) on Settings so "
    "no code can change the configuration while the service runs.",
    needs=("probe",),
)
def complete_and_immutable(ctx: Context) -> Outcome:
    if not ctx.file(CONFIG_FILE).is_file():
        return Outcome.fail(f"{CONFIG_FILE} does not exist in {ctx.workspace}: run the cell that writes it")
    try:
        stubbed = stubbed_functions(ctx.read_text(CONFIG_FILE))
    except SyntaxError as error:
        return Outcome.fail(f"{CONFIG_FILE} is not valid Python (line {error.lineno}: {error.msg})")
    if stubbed:
        return Outcome.fail("still an exercise stub (raise NotImplementedError) in: " + ", ".join(stubbed))
    value, failure = ctx.probe("step02_configuration:frozen_settings", files=(CONFIG_FILE,))
    if failure:
        return Outcome.fail(f"importing service.config failed: {failure}")
    if not value["frozen"]:
        return Outcome.fail("Settings can be changed after it is made: keep it a frozen dataclass")
    return Outcome.ok("complete; Settings is frozen")
