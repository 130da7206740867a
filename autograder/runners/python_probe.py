"""Run a snippet of Python against a learner's workspace in a separate, time-limited process.

The snippet defines ``probe()``; its JSON-able return value comes back in a ProbeResult. Whatever
the learner's code does (loops forever, calls os._exit, segfaults, prints to stdout) the checker
gets a verdict and goes on.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from autograder.checks.context import ProbeResult
from autograder.runners.processes import capped, run_in_own_group, tail

MARKER = "@@autograder-probe-result@@"
DEFAULT_TIMEOUT = 120.0

_BOOTSTRAP = """
import json, sys, traceback
sys.path.insert(0, sys.argv[1])
namespace = {"__name__": "__probe__"}
try:
    exec(compile(open(sys.argv[2]).read(), "<probe>", "exec"), namespace)
    value = namespace["probe"]()
    payload = {"ok": True, "value": value}
except BaseException as error:
    frames = traceback.extract_tb(error.__traceback__)
    learner = [f for f in frames if f.filename.startswith(sys.argv[1])]
    where = f" ({learner[-1].filename[len(sys.argv[1]) + 1:]}, line {learner[-1].lineno})" if learner else ""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    payload = {"ok": False, "error": text + where}
sys.stdout.flush()
print("\\n" + sys.argv[3] + json.dumps(payload, default=str), flush=True)
"""


def run_probe(workspace: Path, code: str, *, timeout: float = DEFAULT_TIMEOUT) -> ProbeResult:
    """Execute ``code`` with ``workspace`` first on sys.path; kill the process group on timeout."""
    workspace = Path(workspace).resolve()
    with tempfile.TemporaryDirectory(prefix="probe-") as scratch:
        script = Path(scratch) / "probe.py"
        script.write_text(code)
        env = {
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",  # keep __pycache__ out of the learner's workspace
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
        }
        finished = run_in_own_group(
            [sys.executable, "-c", _BOOTSTRAP, str(workspace), str(script), MARKER],
            cwd=scratch,
            env=env,
            timeout=timeout,
        )
    output = finished.output
    if finished.timed_out:
        return ProbeResult(ok=False, timed_out=True, output_tail=tail(output))
    before, marker, after = output.rpartition(MARKER)
    if not marker:
        return ProbeResult(ok=False, crashed=True, output_tail=tail(output) or f"exit status {finished.returncode}")
    try:
        payload = json.loads(after.strip().splitlines()[0])
    except (ValueError, IndexError):
        return ProbeResult(ok=False, crashed=True, output_tail=tail(output))
    if payload["ok"]:
        return ProbeResult(ok=True, value=payload["value"], output_tail=tail(before))
    return ProbeResult(ok=False, error=payload["error"], output_tail=tail(before))


def probe_for(workspace: Path):
    """A PythonProbe bound to one workspace, as the checks' Context expects."""

    def probe(code: str, *, timeout: float = DEFAULT_TIMEOUT) -> ProbeResult:
        return run_probe(workspace, code, timeout=capped(timeout))

    return probe
