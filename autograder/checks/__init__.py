"""Layer 1: the checks, one module per step. Pure functions of a Context; no processes of their own."""

from __future__ import annotations

from autograder.checks import (
    step00_orientation,
    step01_model,
    step02_configuration,
    step03_api,
    step04_testing,
    step05_image,
    step06_monitoring,
    step07_kubernetes,
)
from autograder.checks.registry import StepChecks

STEP_CHECKS: dict[str, StepChecks] = {
    module.STEP.step_id: module.STEP
    for module in (
        step00_orientation,
        step01_model,
        step02_configuration,
        step03_api,
        step04_testing,
        step05_image,
        step06_monitoring,
        step07_kubernetes,
    )
}


def for_step(step_id: str) -> StepChecks:
    return STEP_CHECKS[step_id]
