"""Running the probes of ``autograder.probes`` against a workspace snapshot, in the sandbox.

Each call is a fresh sandbox: the snapshot read-only, the probe's arguments and input files
read-only, an empty output folder, nothing carried over from the call before. What comes back is
read with bounds (the result file's size, each array's size) and becomes a ProbeResult; a
missing or unreadable result is a crash, never a pass.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy

from autograder import probes
from autograder.checks.context import ProbeResult
from autograder.runners import sandbox
from autograder.settings import Settings, capped

PACKAGE_NAME = "course_probes"  # the probes package's name inside the sandbox
RESULT_LIMIT = 16 * 1024**2
ARRAY_LIMIT = 64 * 1024**2
ARRAYS_TOTAL_LIMIT = 256 * 1024**2  # every array a result names, a file named twice counted twice
OUTPUT_TAIL_LINES = 15
PROBE_ENV = {"OMP_NUM_THREADS": "2", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def install_probes(destination: Path) -> Path:
    """Copy the probes package to ``destination/course_probes``; return ``destination``."""
    package = destination / PACKAGE_NAME
    package.mkdir(parents=True)
    for source in Path(probes.__file__).parent.glob("*.py"):
        shutil.copyfile(source, package / source.name)
    sandbox.make_readable(destination)
    return destination


class ProbeRunner:
    """A Context's probe runner, bound to one workspace snapshot for one grading run."""

    def __init__(self, snapshot: Path, mechanism: sandbox.Mechanism, settings: Settings, scratch: Path):
        self.snapshot, self.mechanism, self.settings = snapshot, mechanism, settings
        self._scratch = scratch
        self._lib = install_probes(Path(tempfile.mkdtemp(prefix="probes-lib-", dir=scratch)))

    def __call__(
        self,
        probe: str,
        arguments: Mapping[str, object],
        *,
        inputs: Mapping[str, bytes | Path] | None = None,
        timeout: float = 120.0,
    ) -> ProbeResult:
        root = Path(tempfile.mkdtemp(prefix="probe-", dir=self._scratch))
        try:
            sandbox.prepare_root(root)
            (root / "in").mkdir()
            (root / "in" / "args.json").write_text(json.dumps(arguments))
            for name, content in (inputs or {}).items():
                _place(content, root / "in" / name)
            sandbox.make_readable(root / "in")
            inside = self.mechanism.inside(root)
            finished = sandbox.run(
                [sys.executable, "-I", f"{inside}/lib/{PACKAGE_NAME}/run.py", inside, probe],
                root=root,
                mechanism=self.mechanism,
                limits=sandbox.Limits.from_settings(self.settings, capped(timeout)),
                binds={"workspace": self.snapshot, "lib": self._lib},
                env=PROBE_ENV,
                cwd="/tmp" if self.mechanism.sandboxed else str(root / "out"),
            )
            return _result(root / "out", finished)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _place(content: bytes | Path, destination: Path) -> None:
    if isinstance(content, bytes):
        destination.write_bytes(content)
        return
    try:
        os.link(content, destination)  # weights files are large: no copy where a link will do
    except OSError:
        shutil.copyfile(content, destination)


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-OUTPUT_TAIL_LINES:])


def _result(out: Path, finished: sandbox.Finished) -> ProbeResult:
    if finished.timed_out:
        return ProbeResult(ok=False, timed_out=True, output_tail=_tail(finished.output))
    path = out / "result.json"
    try:
        if path.is_symlink() or not path.is_file():
            raise FileNotFoundError(path)
        if path.stat().st_size > RESULT_LIMIT:
            return ProbeResult(ok=False, crashed=True, output_tail="the probe's result was over its size limit")
        payload = json.loads(path.read_text())
        value = _decode(payload.get("value"), out) if payload.get("ok") else None
    except (OSError, ValueError, TypeError, AttributeError, RecursionError, MemoryError) as error:
        reason = _tail(finished.output) or f"exit status {finished.returncode}"
        if not isinstance(error, FileNotFoundError):
            reason = f"its result could not be read ({type(error).__name__}); {reason}"
        return ProbeResult(ok=False, crashed=True, output_tail=reason)
    if payload.get("ok") is True:
        return ProbeResult(ok=True, value=value, output_tail=_tail(finished.output))
    return ProbeResult(ok=False, error=str(payload.get("error", "an error"))[:2000], output_tail=_tail(finished.output))


def _decode(value: object, out: Path, loaded: list[int] | None = None) -> object:
    """The JSON with every {"__npy__": name} replaced by its array (bounded each and in total,
    ``loaded[0]`` counting the bytes so far; never pickled)."""
    loaded = [0] if loaded is None else loaded
    if isinstance(value, dict):
        if set(value) == {"__npy__"}:
            name = str(value["__npy__"])
            path = out / name
            if "/" in name or path.is_symlink() or not path.is_file() or path.stat().st_size > ARRAY_LIMIT:
                raise ValueError(f"array {name!r} is missing or too large")
            loaded[0] += path.stat().st_size
            if loaded[0] > ARRAYS_TOTAL_LIMIT:
                raise ValueError("the arrays it names are too large in total")
            return numpy.load(path, allow_pickle=False)
        return {k: _decode(v, out, loaded) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, out, loaded) for v in value]
    return value
