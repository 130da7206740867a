"""Step 02's checks: pass on the reference workspace, fail on the untouched student workspace, and
fail for the right reason on a variant with one specific mistake."""

from __future__ import annotations

import pytest

from autograder.checks import step02_configuration
from autograder.checks.result import Verdict

STEP_ID = "02"
CHECK_IDS = [check.id for check in step02_configuration.STEP.checks]
CONFIG = "service/config.py"


@pytest.mark.parametrize("check_id", CHECK_IDS)
def test_passes_on_the_reference_workspace(reference_results, check_id):
    assert reference_results[check_id].verdict is Verdict.PASSED, reference_results[check_id].message


@pytest.mark.parametrize("check_id", CHECK_IDS)
def test_fails_on_the_untouched_student_workspace(blank_results, check_id):
    assert blank_results[check_id].verdict is Verdict.FAILED and blank_results[check_id].hint


def test_step_02_is_worth_ten_visible_points():
    assert step02_configuration.STEP.max_points == 10


VARIANTS = {
    "bool-of-any-string": (
        "02.parsers",
        [(CONFIG, "    if raw.lower() in TRUE_WORDS:\n        return True", "    if raw:\n        return True")],
        "parse_bool",
    ),
    "problem-without-allowed-range": (
        "02.parsers",
        [
            (
                CONFIG,
                'problems.append(f"{name}={raw!r}: must be an integer from {minimum} to {maximum}")',
                'problems.append(f"{name}={raw!r}: bad")',
            )
        ],
        "what is allowed",
    ),
    "raises-on-first-problem": (
        "02.invalid-values-named",
        [
            (
                CONFIG,
                'problems.append(f"{name}={raw!r}: must be an integer from {minimum} to {maximum}")',
                'raise ConfigError([f"{name}={raw!r}: must be an integer from {minimum} to {maximum}"])',
            )
        ],
        "reported",
    ),
    "default-in-two-places": (
        "02.defaults-and-variables",
        [(CONFIG, 'parse_int(environ, "TOP_K_MAX", 20,', 'parse_int(environ, "TOP_K_MAX", 10,')],
        "Settings()",
    ),
    "variable-not-read": (
        "02.defaults-and-variables",
        [(CONFIG, 'parse_int(environ, "TORCH_NUM_THREADS", 1,', 'parse_int({}, "TORCH_NUM_THREADS", 1,')],
        "TORCH_NUM_THREADS",
    ),
    "no-top-k-rule": (
        "02.cross-field-rules",
        [(CONFIG, "        if settings.top_k_default > settings.top_k_max:", "        if False:")],
        "should fail naming both",
    ),
    "traceback-at-startup": (
        "02.startup-command",
        [
            (
                CONFIG,
                "    except ConfigError as error:\n        print(error, file=sys.stderr)\n        return 2",
                "    except KeyError:\n        return 2",
            )
        ],
        "",
    ),
    "mutable-settings": (
        "02.complete-and-immutable",
        [(CONFIG, "@dataclass(frozen=True)\nclass Settings:", "@dataclass\nclass Settings:")],
        "frozen",
    ),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_specific_mistake_fails_the_check_that_covers_it(assert_variant_caught, variant):
    assert_variant_caught("02", variant, VARIANTS[variant])
