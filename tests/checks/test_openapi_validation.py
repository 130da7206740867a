"""Step 03's document validation treats the learner's OpenAPI document as hostile data: no
keyword whose cost its author controls is evaluated, and no document makes the check crash."""

from __future__ import annotations

from autograder.checks.step03_api import _validate_answer

ANSWER = {"status": 200, "mimetype": "application/json", "json": {"service": "a" * 40 + "!", "pattern": 1}}


def _spec(schema: dict) -> dict:
    return {"openapi": "3.1.0", "paths": {"/": {"get": {"responses": {"200": {"content": {"application/json": {"schema": schema}}}}}}}}  # fmt: skip


def test_a_catastrophic_pattern_is_never_evaluated_and_a_property_named_pattern_still_is():
    schema = {
        "type": "object",
        "properties": {"service": {"type": "string", "pattern": "^(a+)+$"}, "pattern": {"type": "string"}},
        "uniqueItems": True,
    }
    failure = _validate_answer(_spec(schema), "/", "get", ANSWER)  # returns at once: ^(a+)+$ would not
    assert "at pattern" in failure and "is not of type 'string'" in failure


def test_an_unusable_document_is_a_failure_not_a_crash():
    broken_ref = _spec({"$ref": "#/components/schemas/Missing"})
    assert "cannot be used" in _validate_answer(broken_ref, "/", "get", ANSWER)
    assert "has no GET /elsewhere" in _validate_answer(broken_ref, "/elsewhere", "get", ANSWER)
    deep: dict = {}
    for _ in range(1000):
        deep = {"items": deep}
    assert "cannot be used" in _validate_answer(_spec(deep), "/", "get", ANSWER)
