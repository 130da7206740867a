"""Step 02, configuration: grades ``service/config.py``.

The probes hand the learner's code explicit environments (never the grader's own), so the
verdicts do not depend on the machine that grades.
"""

from __future__ import annotations

from autograder.checks.context import Context
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome
from autograder.checks.snippets import STUBBED_FUNCTIONS

STEP = StepChecks("02")
CONFIG_FILE = "service/config.py"

# variable: (Settings field, a valid non-default value, the value it must become, an invalid value)
VARIABLES = {
    "PORT": ("port", "8080", 8080, "http"),
    "TOP_K_DEFAULT": ("top_k_default", "3", 3, "0"),
    "TOP_K_MAX": ("top_k_max", "50", 50, "5000"),
    "MAX_UPLOAD_BYTES": ("max_upload_bytes", "2048", 2048, "12MB"),
    "MODEL_ALLOW_RANDOM_WEIGHTS": ("allow_random_weights", "YES", True, "maybe"),
    "MODEL_RANDOM_SEED": ("random_seed", "42", 42, "-1"),
    "LOG_LEVEL": ("log_level", "debug", "DEBUG", "verbose"),
    "WEB_CONCURRENCY": ("workers", "4", 4, "many"),
    "WORKER_THREADS": ("threads", "8", 8, "0"),
    "TORCH_NUM_THREADS": ("torch_threads", "2", 2, "x"),
}
DEFAULTS = {
    "port": 5000, "top_k_default": 5, "top_k_max": 20, "max_upload_bytes": 10 * 1024 * 1024,
    "weights_path": None, "allow_random_weights": False, "random_seed": 0, "log_level": "INFO",
    "workers": 1, "threads": 2, "torch_threads": 1,
}  # fmt: skip


@STEP.check(
    "parsers",
    "parse_int, parse_bool and parse_choice accept good values and describe bad ones",
    points=2,
    hint="Unset or empty means the default. A bad value appends \"NAME='value': must be ...\" to "
    "problems (saying what is allowed) and returns the default; it never raises.",
)
def parsers(ctx: Context) -> Outcome:
    value, failure = ctx.probe(
        """
from service.config import parse_bool, parse_choice, parse_int

def probe():
    facts = {}
    def run(function, raw, *args, **kwargs):
        problems = []
        environ = {} if raw is None else {"X_VAR": raw}
        result = function(environ, "X_VAR", *args, problems=problems, **kwargs)
        return [result, problems]
    bounds = dict(minimum=1, maximum=65535)
    facts["int"] = {raw or repr(raw): run(parse_int, raw, 7, **bounds) for raw in (None, "", " 80 ", "abc", "0", "65536")}
    facts["bool"] = {raw or repr(raw): run(parse_bool, raw, False) for raw in (None, "TRUE", "yes", "0", "Off", "maybe")}
    facts["choice"] = {raw or repr(raw): run(parse_choice, raw, "INFO", choices=("DEBUG", "INFO")) for raw in (None, "debug", "loud")}
    return facts
""",
        needs=(CONFIG_FILE,),
    )
    if failure:
        return Outcome.fail(f"the parsers failed: {failure}")
    expected = {
        "int": {"None": 7, "''": 7, " 80 ": 80, "abc": 7, "0": 7, "65536": 7},
        "bool": {"None": False, "TRUE": True, "yes": True, "0": False, "Off": False, "maybe": False},
        "choice": {"None": "INFO", "debug": "DEBUG", "loud": "INFO"},
    }
    bad = {"int": ("abc", "0", "65536"), "bool": ("maybe",), "choice": ("loud",)}
    allowed_words = {"int": ("1", "65535"), "bool": ("true", "false"), "choice": ("DEBUG", "INFO")}
    for kind, cases in expected.items():
        for raw, wanted in cases.items():
            got, problems = value[kind][raw]
            if got != wanted:
                return Outcome.fail(f"parse_{kind} gave {got!r} for X_VAR={raw}; expected {wanted!r}")
            if raw in bad[kind]:
                if len(problems) != 1:
                    return Outcome.fail(f"parse_{kind} with X_VAR={raw!r} should add one problem, added {problems}")
                text = problems[0]
                missing = [w for w in ("X_VAR", raw, *allowed_words[kind]) if w not in text]
                if missing:
                    return Outcome.fail(f"the problem {text!r} should name the variable, the value and what is allowed")
            elif problems:
                return Outcome.fail(f"parse_{kind} reported a problem for a valid X_VAR={raw}: {problems}")
    return Outcome.ok("good values parsed, bad ones described with name, value and what is allowed")


@STEP.check(
    "defaults-and-variables",
    "Settings.from_env reads every variable, with the documented defaults",
    points=2,
    hint="Call the parsers once per field, with the variable names and defaults in the comments of "
    "the Settings class; from_env({}) must equal Settings().",
)
def defaults_and_variables(ctx: Context) -> Outcome:
    value, failure = ctx.probe(
        f"""
import os, tempfile
from service.config import Settings

def probe():
    weights = os.path.join(tempfile.mkdtemp(), "w.pt")
    open(weights, "wb").close()
    defaults = Settings.from_env({{}}).to_dict()
    environ = {{name: raw for name, (_, raw, _, _) in {VARIABLES!r}.items()}}
    environ["MODEL_WEIGHTS_PATH"] = weights
    configured = Settings.from_env(environ).to_dict()
    return {{"defaults": defaults, "configured": configured, "weights": weights,
             "class_defaults": Settings().to_dict()}}
""",
        needs=(CONFIG_FILE,),
    )
    if failure:
        return Outcome.fail(f"Settings.from_env failed: {failure}")
    if value["defaults"] != value["class_defaults"]:
        return Outcome.fail("from_env({}) differs from Settings(): the defaults must live in one place")
    wrong = {k: v for k, v in DEFAULTS.items() if value["defaults"].get(k) != v}
    if wrong:
        return Outcome.fail(f"defaults differ from the documented ones: {wrong}")
    for name, (field, _, wanted, _) in VARIABLES.items():
        if value["configured"].get(field) != wanted:
            return Outcome.fail(
                f"{name} is not read into {field}: got {value['configured'].get(field)!r}, expected {wanted!r}"
            )
    if value["configured"].get("weights_path") != value["weights"]:
        return Outcome.fail("MODEL_WEIGHTS_PATH is not read into weights_path")
    return Outcome.ok(f"{len(VARIABLES) + 1} variables read; defaults as documented")


@STEP.check(
    "invalid-values-named",
    "every invalid value fails, and all of them are reported together",
    points=2,
    hint="Collect problems in a list while parsing and raise ConfigError(problems) once at the end; "
    "each problem names the variable and the value it had.",
)
def invalid_values_named(ctx: Context) -> Outcome:
    value, failure = ctx.probe(
        f"""
from service.config import ConfigError, Settings

def attempt(environ):
    try:
        Settings.from_env(environ)
    except ConfigError as error:
        return {{"raised": "ConfigError", "problems": [str(p) for p in error.problems], "message": str(error)}}
    except Exception as error:
        return {{"raised": type(error).__name__, "problems": [], "message": str(error)}}
    return {{"raised": None, "problems": [], "message": ""}}

def probe():
    variables = {VARIABLES!r}
    each = {{name: attempt({{name: invalid}}) for name, (_, _, _, invalid) in variables.items()}}
    together = attempt({{name: invalid for name, (_, _, _, invalid) in variables.items()}})
    return {{"each": each, "together": together}}
""",
        needs=(CONFIG_FILE,),
    )
    if failure:
        return Outcome.fail(f"Settings.from_env failed: {failure}")
    for name, (_, _, _, invalid) in VARIABLES.items():
        outcome = value["each"][name]
        if outcome["raised"] != "ConfigError":
            return Outcome.fail(
                f"{name}={invalid!r} should raise ConfigError; it gave {outcome['raised'] or 'no error'}"
            )
        if name not in outcome["message"] or invalid not in outcome["message"]:
            return Outcome.fail(
                f"the error for {name}={invalid!r} does not name the variable and its value: {outcome['message']!r}"
            )
    together = value["together"]
    named = [name for name in VARIABLES if any(name in p for p in together["problems"])]
    if len(named) < len(VARIABLES):
        missing = sorted(set(VARIABLES) - set(named))
        return Outcome.fail(f"with every variable wrong, only {len(named)} problems were reported; missing {missing}")
    return Outcome.ok(f"each of {len(VARIABLES)} invalid values named; all reported in one error")


@STEP.check(
    "cross-field-rules",
    "rules across settings: TOP_K_DEFAULT <= TOP_K_MAX, MODEL_WEIGHTS_PATH exists",
    points=1,
    hint="After parsing, compare top_k_default with top_k_max, and check Path(weights_path).is_file(); "
    "add a problem for each, naming the variables and the path.",
)
def cross_field_rules(ctx: Context) -> Outcome:
    value, failure = ctx.probe(
        """
from service.config import ConfigError, Settings

def message(environ):
    try:
        Settings.from_env(environ)
    except ConfigError as error:
        return str(error)
    return None

def probe():
    return {"top_k": message({"TOP_K_DEFAULT": "30", "TOP_K_MAX": "20"}),
            "weights": message({"MODEL_WEIGHTS_PATH": "/no/such/dir/resnet50.pt"})}
""",
        needs=(CONFIG_FILE,),
    )
    if failure:
        return Outcome.fail(f"Settings.from_env failed: {failure}")
    if value["top_k"] is None or "TOP_K_DEFAULT" not in value["top_k"] or "TOP_K_MAX" not in value["top_k"]:
        return Outcome.fail(f"TOP_K_DEFAULT=30 with TOP_K_MAX=20 should fail naming both; got {value['top_k']!r}")
    if value["weights"] is None or "/no/such/dir/resnet50.pt" not in value["weights"]:
        return Outcome.fail(
            f"a MODEL_WEIGHTS_PATH that does not exist should fail naming the path; got {value['weights']!r}"
        )
    return Outcome.ok("both rules enforced, with the names and the path in the message")


@STEP.check(
    "startup-command",
    "python -m service.config prints the settings, or every problem with exit status 2",
    points=2,
    hint="main() catches ConfigError, prints it to stderr and returns 2; otherwise prints one "
    "'name = value' line per setting and returns 0. The module ends with sys.exit(main()) under "
    'if __name__ == "__main__".',
)
def startup_command(ctx: Context) -> Outcome:
    value, failure = ctx.probe(
        f"""
import os, subprocess, sys

def run(extra):
    env = {{"PATH": os.environ.get("PATH", ""), "PYTHONPATH": {str(ctx.workspace)!r}, "PYTHONDONTWRITEBYTECODE": "1", **extra}}
    done = subprocess.run([sys.executable, "-m", "service.config"], env=env, capture_output=True, text=True,
                          timeout=30, cwd={str(ctx.workspace)!r})
    return {{"status": done.returncode, "stdout": done.stdout, "stderr": done.stderr}}

def probe():
    return {{"good": run({{"PORT": "8080"}}), "bad": run({{"PORT": "http", "LOG_LEVEL": "verbose"}})}}
""",
        needs=(CONFIG_FILE,),
    )
    if failure:
        return Outcome.fail(f"running python -m service.config failed: {failure}")
    good, bad = value["good"], value["bad"]
    if good["status"] != 0 or "8080" not in good["stdout"]:
        return Outcome.fail(
            f"with PORT=8080 it should exit 0 and print the port; exit {good['status']}: {(good['stdout'] + good['stderr'])[-300:]!r}"
        )
    if bad["status"] != 2:
        return Outcome.fail(f"with invalid values it should exit with status 2, not {bad['status']}")
    if "Traceback" in bad["stderr"]:
        return Outcome.fail("invalid values produced a traceback: print the problems instead")
    if "PORT" not in bad["stderr"] or "LOG_LEVEL" not in bad["stderr"]:
        return Outcome.fail(f"stderr should name every invalid variable: {bad['stderr'][-300:]!r}")
    return Outcome.ok("settings printed; invalid values listed on stderr with exit status 2")


@STEP.check(
    "complete-and-immutable",
    "config.py has no exercise stub left, and Settings cannot be changed after start-up",
    points=1,
    hint="Replace every `raise NotImplementedError()`; keep @dataclass(frozen=True) on Settings so "
    "no code can change the configuration while the service runs.",
)
def complete_and_immutable(ctx: Context) -> Outcome:
    value, failure = ctx.probe(
        STUBBED_FUNCTIONS
        + """
import dataclasses
import service.config as config

def probe():
    stubbed = stubbed_functions(config)
    settings = config.Settings()
    try:
        settings.port = 1
        frozen = False
    except dataclasses.FrozenInstanceError:
        frozen = True
    return {"stubbed": stubbed, "frozen": frozen}
""",
        needs=(CONFIG_FILE,),
    )
    if failure:
        return Outcome.fail(f"importing service.config failed: {failure}")
    if value["stubbed"]:
        return Outcome.fail("still an exercise stub (raise NotImplementedError) in: " + ", ".join(value["stubbed"]))
    if not value["frozen"]:
        return Outcome.fail("Settings can be changed after it is made: keep it a frozen dataclass")
    return Outcome.ok("complete; Settings is frozen")
