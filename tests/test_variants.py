"""The hidden faulty variants that grade step 04: each applies to the current reference, and
none of them ever reaches learners."""

from __future__ import annotations

import shutil

import pytest

from autograder import course, variants
from autograder.errors import AutograderError
from autograder.trees import relative_files

ALL = variants.load()


def test_there_are_at_least_eight_variants_with_descriptions():
    assert len(ALL) >= 8
    assert all(v.description and v.edits for v in ALL)


@pytest.mark.parametrize("variant", ALL, ids=lambda v: v.name)
def test_each_variant_applies_to_the_reference_and_changes_the_service(variant, tmp_path, reference_workspace):
    copy = tmp_path / "workspace"
    shutil.copytree(reference_workspace, copy)
    variants.apply(variant, copy)
    changed = [
        e.file for e in variant.edits if (copy / e.file).read_text() != (reference_workspace / e.file).read_text()
    ]
    assert changed, f"{variant.name} changes nothing"
    assert all(not f.startswith("tests/") for f in changed), "a variant breaks the service, never the tests"


def test_a_stale_edit_is_an_error_that_names_the_variant(tmp_path, reference_workspace):
    copy = tmp_path / "workspace"
    shutil.copytree(reference_workspace, copy)
    stale = variants.Variant("stale", "x", (variants.Edit("service/app.py", "text that is not there", ""),))
    with pytest.raises(AutograderError, match="variant stale: the text to replace occurs 0 times"):
        variants.apply(stale, copy)


def test_a_malformed_file_is_reported(tmp_path):
    bad = tmp_path / "variants.toml"
    bad.write_text('[[variant]]\nname = "x"\n')
    with pytest.raises(AutograderError, match="malformed"):
        variants.load(bad)


def test_the_student_release_never_contains_them():
    released = relative_files(course.EXERCISES_DIR)
    assert not any("hidden" in name or "faulty" in name for name in released)
    assert not any(name.startswith(f"{course.ASSIGNMENT}/workspace") for name in released)
