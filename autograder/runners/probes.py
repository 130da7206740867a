"""Running the probes of ``autograder.probes`` against a workspace snapshot, in the sandbox.

A probe either returns its observations in a result file, or serves (step 03's apps on Unix
sockets) while a drive function of the checks sends it requests from the grader's process.
Each call is a fresh sandbox: the snapshot read-only, the probe's arguments and input files
read-only, an empty output folder, nothing carried over from the call before. What comes back is
read with bounds (the result file's size, each array's size) and becomes a ProbeResult; a
missing or unreadable result is a crash, never a pass.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy

from autograder import interrupts, probes
from autograder.checks.context import ProbeResult
from autograder.probes import harness
from autograder.runners import sandbox, unix_http
from autograder.settings import Settings, capped

PACKAGE_NAME = "course_probes"  # the probes package's name inside the sandbox
RESULT_LIMIT = 16 * 1024**2
ARRAY_LIMIT = 64 * 1024**2
ARRAYS_TOTAL_LIMIT = 256 * 1024**2  # every array a result names, a file named twice counted twice
OUTPUT_TAIL_LINES = 15
AFTER_A_HANG = 30.0  # seconds a probe gets once another of the same grading ran out of time
COMMAND_OUTPUT_LIMIT = 4000  # of a command's stdout and of its stderr, the ends kept
STDERR_FILE = "stderr"
STDERR_READ_LIMIT = 64 * 1024**2  # the file-size limit of the sandbox bounds it anyway
PROBE_ENV = {"OMP_NUM_THREADS": "2", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": "1"}


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
        self._hung = False

    def __call__(
        self,
        probe: str,
        arguments: Mapping[str, object],
        *,
        inputs: Mapping[str, bytes | Path] | None = None,
        timeout: float = 120.0,
        drive: Callable[[Served], dict] | None = None,
    ) -> ProbeResult:
        """Run ``probe`` and read its result; or, with ``drive``, a probe that serves: once it
        says it is serving, ``drive`` talks to it from here and what ``drive`` returns (with the
        output after the SERVING line as "log") is the observation."""
        root = Path(tempfile.mkdtemp(prefix="probe-", dir=self._scratch))
        timeout = self._after_a_hang(timeout)
        try:
            sandbox.prepare_root(root)
            (root / "in").mkdir()
            (root / "in" / "args.json").write_text(json.dumps(arguments))
            for name, content in (inputs or {}).items():
                _place(content, root / "in" / name)
            sandbox.make_readable(root / "in")
            inside = self.mechanism.inside(root)
            conversation = _Conversation(root / "out", drive) if drive else None
            finished = sandbox.run(
                [sys.executable, "-I", f"{inside}/lib/{PACKAGE_NAME}/run.py", inside, probe],
                root=root,
                mechanism=self.mechanism,
                limits=sandbox.Limits.from_settings(self.settings, capped(timeout)),
                binds={"workspace": self.snapshot, "lib": self._lib},
                env=PROBE_ENV,
                cwd="/tmp" if self.mechanism.sandboxed else str(root / "out"),
                during=conversation,
            )
            result = conversation.result(finished) if conversation else _result(root / "out", finished)
            self._hung = self._hung or result.timed_out
            return result
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _after_a_hang(self, timeout: float) -> float:
        """Once a probe of this grading ran out of time, the others get AFTER_A_HANG seconds at
        most: code that hangs would otherwise cost every check its full time (11 checks of step
        03, two minutes each)."""
        return min(timeout, AFTER_A_HANG) if self._hung else timeout

    def command(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        stdout_limit: int = COMMAND_OUTPUT_LIMIT,
        stdout_file_limit: int | None = None,
    ) -> ProbeResult:
        """Run ``argv`` in the workspace snapshot (its folder the working directory and on the
        path; "python" is this interpreter), in a fresh sandbox. The observation is what the
        grader saw from outside: {"status", "stdout", "stderr"} (their ends; of stdout the last
        ``stdout_limit`` characters, at most what the sandbox passes on). With ``stdout_file_limit``
        stdout goes to a file instead and comes back whole (then "stdout_complete"), or as ""
        with "stdout_complete" False when it is over that many bytes."""
        root = Path(tempfile.mkdtemp(prefix="command-", dir=self._scratch))
        timeout = self._after_a_hang(timeout)
        try:
            sandbox.prepare_root(root)
            inside = self.mechanism.inside(root)
            argv = [sys.executable if part == "python" else part for part in argv]
            # stderr apart from stdout: the command's own stderr goes to a file of its output folder.
            if stdout_file_limit is None:
                wrapped = ["/bin/sh", "-c", 'exec "$@" 2>"$0"', f"{inside}/out/{STDERR_FILE}", *argv]
            else:  # all of stdout, to a file: the sandbox passes on only the ends of what it prints
                wrapped = ["/bin/sh", "-c", 'exec "$@" 2>"$0" >"$0.stdout"', f"{inside}/out/{STDERR_FILE}", *argv]
            finished = sandbox.run(
                wrapped,
                root=root,
                mechanism=self.mechanism,
                limits=sandbox.Limits.from_settings(self.settings, capped(timeout)),
                binds={"workspace": self.snapshot},
                env={**PROBE_ENV, "PYTHONPATH": f"{inside}/workspace", "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
                cwd=f"{inside}/workspace",
            )
            if finished.timed_out:
                self._hung = True
                return ProbeResult(ok=False, timed_out=True, output_tail=_tail(finished.output))
            stderr = _file_end(root / "out" / STDERR_FILE, COMMAND_OUTPUT_LIMIT)
            value = {"status": finished.returncode, "stdout": finished.output[-stdout_limit:], "stderr": stderr}
            if stdout_file_limit is not None:
                try:
                    raw = sandbox.read_output(root / "out" / f"{STDERR_FILE}.stdout", stdout_file_limit)
                    value["stdout"], value["stdout_complete"] = raw.decode("utf-8", "replace"), True
                except ValueError:  # over the limit
                    value["stdout"], value["stdout_complete"] = "", False
                except OSError:  # nothing written, or not a regular file
                    value["stdout"], value["stdout_complete"] = "", True
            return ProbeResult(ok=True, value=value)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _file_end(path: Path, limit: int) -> str:
    """The last ``limit`` bytes of a regular file the sandbox wrote ('' for anything else: a
    link is never followed, whatever it points at)."""
    try:
        data = sandbox.read_output(path, STDERR_READ_LIMIT)
    except (OSError, ValueError):
        return ""
    return data[-limit:].decode("utf-8", "replace")


class Served:
    """What a drive function may use: a client for each app the probe serves, the facts it noted."""

    def __init__(self, out: Path):
        self.out = out

    def client(self, app: str, *, timeout: float = 30.0) -> unix_http.Client:
        return unix_http.Client(self.out / f"{app}.sock", timeout=timeout)

    def facts(self) -> dict:
        """What the probe noted (harness.note); {} while there is nothing readable."""
        try:
            facts = json.loads(sandbox.read_output(self.out / harness.FACTS_FILE, RESULT_LIMIT))
        except (OSError, ValueError, RecursionError):
            return {}
        return facts if isinstance(facts, dict) else {}

    def app_facts(self, app: str) -> dict:
        found = (self.facts().get("apps") or {}).get(app)
        return found if isinstance(found, dict) else {}

    def release(self) -> None:
        (self.out / harness.RELEASE_FILE).touch()


class _Conversation:
    """sandbox.run's ``during`` for a serving probe: wait until it serves, then drive it."""

    def __init__(self, out: Path, drive: Callable[[Served], dict]):
        self.served, self.drive = Served(out), drive
        self.value: dict | None = None
        self.error = ""
        self.serving = self.died = False

    def __call__(self, process) -> None:
        while not self.served.facts().get("ready"):
            interrupts.raise_if_interrupted()
            if process.poll() is not None:  # it ended, or the deadline killed it: its last word
                if not self.served.facts().get("ready"):
                    return
                break
            time.sleep(0.05)
        self.serving = True
        try:
            self.value = self.drive(self.served)
        except (OSError, http.client.HTTPException, unix_http.ResponseTooLarge) as error:
            self.error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            try:  # a process on its way out (os._exit) is reported as the death it is
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            self.died = process.poll() is not None

    def result(self, finished: sandbox.Finished) -> ProbeResult:
        if finished.timed_out:
            return ProbeResult(ok=False, timed_out=True, output_tail=_tail(finished.output))
        if not self.serving:
            # Why it never served: the harness's result (the learner's error), else the output.
            # A result saying ok cannot stand in for the answers it never gave.
            failed = _result(self.served.out, finished)
            if failed.ok:
                last = _last_line(finished.output)
                return ProbeResult(ok=False, error=f"your code ended before the app was served{last}")
            return failed
        if self.value is None:
            if self.died:
                why = f"your app's process died while the grader sent it requests{_last_line(finished.output)}"
            else:
                why = f"a request to your app failed ({self.error})"
            return ProbeResult(ok=False, error=why, output_tail=_tail(finished.output))
        _, marker, log = finished.output.partition(harness.SERVING)
        return ProbeResult(ok=True, value={**self.value, "log": log if marker else finished.output})


def _place(content: bytes | Path, destination: Path) -> None:
    if isinstance(content, bytes):
        destination.write_bytes(content)
        return
    try:
        os.link(content, destination)  # weights files are large: no copy where a link will do
    except OSError:
        shutil.copyfile(content, destination)


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return f" (its last output: {lines[-1][:300]})" if lines else ""


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-OUTPUT_TAIL_LINES:])


def _result(out: Path, finished: sandbox.Finished) -> ProbeResult:
    if finished.timed_out:
        return ProbeResult(ok=False, timed_out=True, output_tail=_tail(finished.output))
    try:
        if not (out / "result.json").exists():
            raise FileNotFoundError(out / "result.json")
        try:
            text = sandbox.read_output(out / "result.json", RESULT_LIMIT)
        except ValueError:
            return ProbeResult(ok=False, crashed=True, output_tail="the probe's result was over its size limit")
        payload = json.loads(text)
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
            try:
                if "/" in name:
                    raise OSError(name)
                data = sandbox.read_output(out / name, ARRAY_LIMIT)
            except (OSError, ValueError) as error:
                raise ValueError(f"array {name!r} is missing or too large") from error
            loaded[0] += len(data)
            if loaded[0] > ARRAYS_TOTAL_LIMIT:
                raise ValueError("the arrays it names are too large in total")
            return numpy.load(io.BytesIO(data), allow_pickle=False)
        return {k: _decode(v, out, loaded) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, out, loaded) for v in value]
    return value
