"""checkov, the policy scanner, from a virtual environment of its own (``make tools``).

checkov pins packages the course pins differently (packaging, boto3), so it cannot live in the
course environment: ``make tools`` installs it, from requirements-checkov.txt, under the course
environment's ``tools/checkov``. It scans data the grader wrote (Kubernetes objects as kustomize
rendered them), never the learner's folder: nothing of the learner's can configure it (a
``.checkov.yaml``) or silence a policy (``checkov.io/skip`` annotations are removed first).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from autograder.errors import AutograderError
from autograder.runners.processes import course_tool, run_in_own_group, tail

# checkov skips a policy for any annotation whose key contains one of these (checkov.io/skip1:
# CKV_K8S_20=..., bridgecrew.io/skip2, x.cortex.io/skip3...): none reaches it.
SKIP_ANNOTATION_MARKERS = ("checkov.io/skip", "bridgecrew.io/skip", "cortex.io/skip")


@dataclass(frozen=True)
class PolicyFinding:
    """One policy checkov found broken: its id (CKV_K8S_20), its title, the object."""

    check_id: str
    title: str
    resource: str


def binary() -> str:
    """checkov from the course environment's tools/ (make tools), else one on PATH."""
    found = course_tool("checkov", Path(sys.prefix) / "tools" / "checkov")
    if not found:
        raise AutograderError(
            "checkov is not installed",
            hint="make tools (it installs checkov in a virtual environment of its own, under .venv/tools)",
        )
    return found


def for_scanning(value: object) -> object:
    """``value`` as checkov must see it: no annotation by which it would skip a policy (at any
    depth: a pod template has annotations too), and no ``{{`` in a string, which makes checkov
    take the whole file for a Helm template and scan nothing."""
    if isinstance(value, dict):
        return {
            key: for_scanning(item)
            for key, item in value.items()
            if not any(marker in str(key) for marker in SKIP_ANNOTATION_MARKERS)
        }
    if isinstance(value, list):
        return [for_scanning(item) for item in value]
    if isinstance(value, str):
        return value.replace("{{", "{ {").replace("}}", "} }")
    return value


def scan_kubernetes(objects: list[dict], *, timeout: float = 180) -> list[PolicyFinding]:
    """Every Kubernetes policy of checkov the objects break. AutograderError when checkov
    cannot run or answers something that is not its JSON report."""
    with tempfile.TemporaryDirectory(prefix="checkov-") as neutral:
        folder = Path(neutral) / "manifests"
        folder.mkdir()
        (folder / "rendered.yaml").write_text(yaml.safe_dump_all([for_scanning(o) for o in objects], sort_keys=False))
        finished = run_in_own_group(
            [
                binary(),
                "--directory",
                str(folder),
                "--framework",
                "kubernetes",
                "--quiet",
                "--compact",
                "--skip-download",
                "--output",
                "json",
            ],  # fmt: skip
            cwd=neutral,
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": neutral,
                "LANG": "C.UTF-8",
                "LOG_LEVEL": "ERROR",
            },  # fmt: skip
            timeout=timeout,
        )
    if finished.timed_out:
        raise AutograderError(f"checkov did not finish in {timeout:.0f} s", hint="is the machine overloaded?")
    start = re.search(r"(?m)^[{\[]", finished.output)  # its JSON, after any log line
    try:
        report = json.loads(finished.output[start.start() :]) if start else None
    except ValueError:
        report = None
    if isinstance(report, list):  # one report per framework: here, only kubernetes
        report = next((r for r in report if isinstance(r, dict) and r.get("check_type") == "kubernetes"), None)
    if isinstance(report, dict) and report.get("passed") == 0 and report.get("failed") == 0:
        if objects:  # it scanned nothing of what it was given: no verdict can rest on that
            raise AutograderError(
                "checkov scanned none of the objects", hint="run it on the rendered manifests yourself"
            )
        return []
    if not isinstance(report, dict) or not isinstance(report.get("results"), dict):
        raise AutograderError(f"checkov gave no report: {tail(finished.output, 3)}", hint="run make tools again")
    results = report["results"]
    # The grader asks it to skip nothing: a skipped policy was skipped by something in the objects.
    return [
        PolicyFinding(str(f.get("check_id")), str(f.get("check_name")), str(f.get("resource")))
        for f in [*(results.get("failed_checks") or []), *(results.get("skipped_checks") or [])]
    ]
