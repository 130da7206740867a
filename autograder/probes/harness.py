"""The probe process's harness: ``python -I run.py ROOT MODULE:FUNCTION`` calls ``main``.

ROOT is the grading root as the process sees it (``/run/course`` in the sandbox): the probe's
JSON arguments are ``ROOT/in/args.json``, input files are in ``ROOT/in``, the learner's workspace
is ``ROOT/workspace`` (read-only), and the result goes to ``ROOT/out/result.json``. NumPy arrays
in a result are written next to it as ``.npy`` files and named in the JSON.

The learner's code runs in this process and could write that file itself: nothing in it is a
verdict, only observations that the grader compares with values it computed outside. Where the
contract is what a server answers (step 03), the probe serves instead (``serving``) and the
grader sends the requests from its own process.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import traceback
from pathlib import Path

ROOT = Path("/run/course")
ARRAY_KEY = "__npy__"
# A probe that serves (see ``serving``) notes what only its process can see in FACTS_FILE; the
# grader creates RELEASE_FILE when the probe may go on (a slow loader may return, say), and
# judges the output that follows the SERVING line.
FACTS_FILE = "facts.json"
RELEASE_FILE = "release"
SERVING = "--- the grader's requests start here ---"

_facts: dict = {"ready": False, "apps": {}}
_facts_lock = threading.Lock()


def input_path(name: str) -> str:
    """A file the grader put in the input folder."""
    return str(ROOT / "in" / name)


def workspace() -> str:
    return str(ROOT / "workspace")


def note(app: str | None, key: str, value: object = None, *, add: int = 0) -> None:
    """Record a fact (of one served app, or of the process) and rewrite FACTS_FILE atomically."""
    with _facts_lock:
        target = _facts["apps"].setdefault(app, {}) if app else _facts
        target[key] = target.get(key, 0) + add if add else value
        partial = ROOT / "out" / (FACTS_FILE + ".partial")
        partial.write_text(json.dumps(_facts))
        partial.replace(ROOT / "out" / FACTS_FILE)


def released() -> bool:
    return (ROOT / "out" / RELEASE_FILE).exists()


def serving() -> None:
    """Tell the grader every server listens, then wait to be killed (a serving probe's end)."""
    sys.stderr.flush()
    print(SERVING, flush=True)
    note(None, "ready", True)
    threading.Event().wait()


def _encode(value, arrays: list) -> object:
    """JSON-able value; NumPy arrays (and tensors) become .npy files named in the JSON."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch.Tensor
        value = value.detach().cpu().numpy()
    if type(value).__module__ == "numpy" and hasattr(value, "shape") and hasattr(value, "dtype"):
        import numpy

        name = f"array-{len(arrays)}.npy"
        numpy.save(ROOT / "out" / name, numpy.asarray(value), allow_pickle=False)
        arrays.append(name)
        return {ARRAY_KEY: name}
    if isinstance(value, dict):
        return {str(k): _encode(v, arrays) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return repr(value)


def describe_error(error: BaseException, root: str | None = None) -> str:
    """'Type: message (service/file.py, line N)', naming the innermost line of the learner's files
    (under ``root``, the workspace unless said otherwise)."""
    prefix = (root or workspace()) + os.sep
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith(prefix)]
    where = f" ({frames[-1].filename[len(prefix) :]}, line {frames[-1].lineno})" if frames else ""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text + where


def main(argv: list[str]) -> int:
    global ROOT
    ROOT = Path(argv[1])
    module_name, _, function_name = argv[2].partition(":")
    arguments = json.loads((ROOT / "in" / "args.json").read_text())
    # Our own modules first, imported before the learner's folder is on the path: a learner's
    # module cannot stand in for them.
    probe = getattr(importlib.import_module(f"{__package__}.{module_name}"), function_name)
    sys.path.insert(0, workspace())
    try:
        payload = {"ok": True, "value": probe(**arguments)}
    except BaseException as error:  # the learner's SystemExit and KeyboardInterrupt included
        payload = {"ok": False, "error": describe_error(error)}
    sys.stdout.flush()
    sys.stderr.flush()
    arrays: list[str] = []
    try:
        text = json.dumps(_encode(payload, arrays))
    except (TypeError, ValueError) as error:
        text = json.dumps({"ok": False, "error": f"the probe's result could not be encoded: {error}"})
    partial = ROOT / "out" / "result.json.partial"
    partial.write_text(text)
    partial.replace(ROOT / "out" / "result.json")
    return 0
