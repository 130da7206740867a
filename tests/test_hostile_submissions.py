"""Dishonest and hostile submissions fail closed, each for the reason it exists.

Every fixture is a workspace a learner could hand in, with nothing but files. Each asserts the
verdict and its reason, that nothing of the grader's leaked or changed, and that nothing the
submission started is still running. (Step 04's suites and step 05's images have their own
hostile fixtures next to their other tests.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder import course
from autograder.checks.result import Verdict
from autograder.grading import grade_step
from autograder.settings import current

pytestmark = pytest.mark.slow
REGISTRY = course.REPO_ROOT / "autograder" / "checks" / "registry.py"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def copy_of(tmp_path):
    def make(source: Path, name: str = "submission") -> Path:
        destination = tmp_path / name
        shutil.copytree(source, destination)
        return destination

    return make


# What the old grader's fixed inputs would have produced: answers a learner can prepare in advance.
CANNED = {
    "import_modules": {
        "errors": {},
        "present": {
            "service.imaging": ["to_rgb", "preprocess"],
            "service.weights": ["load_resnet50", "WeightsInfo", "RandomWeightsNotAllowed", "torchvision_cache_file"],
            "service.model": ["load_classifier", "Classifier", "Prediction", "MAX_TOP_K", "MODEL_NAME"],
        },
        "seconds": 0.1,
    },
    "to_rgb_outputs": {
        case: {"type": "Image", "mode": "RGB", "size": [451, 300]}
        for case in ("L", "P", "CMYK", "I;16", "RGBA", "LA", "EXIF-rotated JPEG")
    },
    "preprocess_outputs": [
        {"image": f"{n}-{m}.png", "type": "Tensor", "shape": [3, 224, 224], "dtype": "torch.float32"}
        for n in ("chelsea", "coffee")
        for m in ("RGB", "L", "RGBA")
    ],
    "random_weights": {"refused": "yes", "runs": []},
    "weights_file": {"outputs": None, "is_random": False, "source": "file", "missing_error": "no-such-weights.pt"},
    "top_k": {
        "5": [
            [285, "Egyptian cat", 0.5],
            [281, "tabby", 0.2],
            [282, "tiger cat", 0.1],
            [1, "goldfish", 0.01],
            [2, "great white shark", 0.005],
        ],
        "1": [[285, "Egyptian cat", 0.5]],
    },
    "inference_mode": {
        "training": False,
        "changed": [],
        "grad": False,
        "calls": 2,
        "first": [[1, 0.1]],
        "second": [[1, 0.1]],
    },
    "threads_and_warm_up": {"threads": [1, 2], "warm_up_calls": 1},
}

# A service/__init__.py that answers every probe with a canned result and exits before any real
# code runs: what earned 13/13 on step 01 when probes computed the verdict's inputs themselves.
FORGER = f"""
import json, os, sys
__version__ = "0.1.0"
CANNED = json.loads({json.dumps(json.dumps(CANNED))})
if len(sys.argv) > 2 and ":" in sys.argv[2]:
    root, probe = sys.argv[1], sys.argv[2].split(":", 1)[1]
    with open(os.path.join(root, "out", "result.json"), "w") as out:
        json.dump({{"ok": True, "value": CANNED.get(probe, {{}})}}, out)
    os._exit(0)
"""


def _graded_forgery(workspace: Path, step: str, forger: str) -> list:
    """The results of ``step`` on ``workspace`` with ``forger`` as service/__init__.py, checked to
    earn at most the point of "the files import", the only verdict resting on the learner's word
    (their sources are complete); every other check failed."""
    (workspace / "service" / "__init__.py").write_text(forger)
    results = grade_step(step, workspace).results
    assert sum(r.points for r in results) <= 1, {r.id: r.points for r in results}
    others = [r for r in results if r.id != f"{step}.files-complete"]
    assert all(r.verdict is Verdict.FAILED for r in others), [(r.id, r.message) for r in others]
    return others


def test_a_forged_probe_result_earns_nothing_on_step_01(reference_workspace, copy_of):
    # Every value the verdicts compare is the grader's, drawn for this run.
    _graded_forgery(copy_of(reference_workspace), "01", FORGER)


def _problem(status: int) -> dict:
    document = {"type": "about:blank", "title": "x", "status": status, "detail": "x"}
    return {"status": status, "mimetype": "application/problem+json", "headers": {"allow": "POST"},
            "json": document, "text": json.dumps(document)}  # fmt: skip


# Step 03's answers whose expected value is a constant (a 404 problem, a 405 with Allow...), as
# a forger would write them into the probe's result, with the "serving" fact set and nothing
# listening: what earned 7/20 when the probes sent the requests inside the learner's process.
CANNED_03 = {
    "errors": {},
    "no file (empty multipart)": _problem(400),
    "no body": _problem(400),
    "unknown path": _problem(404),
    "GET /predict": _problem(405),
    "DELETE /health": _problem(405),
    "small raw": {"status": 200},
    **{name: _problem(413) for name in ("large raw", "large multipart", "large chunked")},
}
SERVER_FORGER = f"""
import json, os, sys
__version__ = "0.1.0"
if len(sys.argv) > 2 and ":" in sys.argv[2]:
    out = os.path.join(sys.argv[1], "out")
    with open(os.path.join(out, "result.json"), "w") as result:
        json.dump({{"ok": True, "value": json.loads({json.dumps(json.dumps(CANNED_03))})}}, result)
    with open(os.path.join(out, "facts.json"), "w") as facts:
        json.dump({{"ready": True, "apps": {{"app": {{"routes": []}}}}}}, facts)
    os._exit(0)
"""


def test_a_forged_result_earns_nothing_on_step_03(reference_workspace, copy_of):
    # The verdicts are about answers the grader received over the app's socket: none came.
    failed = _graded_forgery(copy_of(reference_workspace), "03", SERVER_FORGER)
    # (The process dies as the grader connects: whichever it sees first, nothing answered.)
    unanswered = ("died while the grader sent it requests", "a request to your app failed")
    assert all(any(why in r.message for why in unanswered) for r in failed), [r.message for r in failed]


# Step 02's answers forged from the probe's own arguments: Settings frozen, and the startup
# command "exiting 0 with the port it was given" and "2 naming the bad variables". What earned
# 4/10 when the probe ran `python -m service.config` and reported what it saw.
CONFIG_FORGER = """
import json, os, sys
if len(sys.argv) > 2 and ":" in sys.argv[2]:
    args = json.load(open(os.path.join(sys.argv[1], "in", "args.json")))
    environs = args.get("environs", {})
    port = environs.get("good", {}).get("PORT", "8080")
    value = {
        "frozen": True,
        "good": {"status": 0, "stdout": f"port = {port}", "stderr": ""},
        "bad": {"status": 2, "stdout": "", "stderr": " ".join(environs.get("bad", {}))},
    }
    with open(os.path.join(sys.argv[1], "out", "result.json"), "w") as result:
        json.dump({"ok": True, "value": value}, result)
    os._exit(0)
"""


def test_a_forged_result_earns_nothing_on_step_02(blank_workspace, copy_of):
    # config.py left as handed out: the command's exit status and output are seen from outside,
    # the environments drawn for this run.
    failed = _graded_forgery(copy_of(blank_workspace), "02", CONFIG_FORGER)
    assert "NotImplementedError" in next(r.message for r in failed if r.id == "02.startup-command")


# Finds the grader and the reference through /proc and the file system, and runs the reference's
# config.py as its own: what earned full points on steps 02 and 03.
EXFILTRATOR = """
import os
found = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            found.append(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            pass
places = set(found) | {"/", "/work", "/root", "/home", "/tmp", "/srv", "REPO_ROOT"}
candidates = []
for place in places:
    for _ in range(6):  # the folder itself and its parents
        path = os.path.join(place, "solutions", "resnet-service", "workspace", "service", "config.py")
        if os.path.exists(path):
            candidates.append(path)
        place = os.path.dirname(place)
if not candidates:
    raise ImportError(f"found no reference; cwds seen: {sorted(set(found))}")
exec(compile(open(candidates[0]).read(), candidates[0], "exec"))
""".replace("REPO_ROOT", str(course.REPO_ROOT))


def test_code_that_hunts_for_the_reference_finds_nothing(blank_workspace, copy_of):
    workspace = copy_of(blank_workspace)
    (workspace / "service" / "config.py").write_text(EXFILTRATOR)
    report = grade_step("02", workspace)
    assert report.points == 0
    failures = [r.message for r in report.results if "found no reference" in r.message]
    assert failures, [r.message for r in report.results]
    assert "solutions" not in failures[0] and str(course.REPO_ROOT) not in failures[0]


def test_a_daemon_cannot_rewrite_the_results_or_hold_the_grader(
    reference_workspace, copy_of, tmp_path, orphaned_sandbox_processes
):
    """A double-forked process that outlives the grading to rewrite --json, edit the grader's
    source and forge the progress history, and keeps the grader's stdout open."""
    results = tmp_path / "results.json"
    registry_before = _digest(REGISTRY)
    cache = tmp_path / "cache"
    workspace = copy_of(reference_workspace)
    targets = [str(results), str(REGISTRY), str(cache / "results")]
    (workspace / "service" / "__init__.py").write_text(
        f'__version__ = "0.1.0"\n'
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(4)\n"
        f"        for target in {targets!r}:\n"
        "            try:\n"
        "                os.makedirs(os.path.dirname(target), exist_ok=True)\n"
        "                open(target, 'a').write('{\"score\": 999}')\n"
        "            except OSError:\n"
        "                pass\n"
        "        time.sleep(600)\n"
        "    os._exit(0)\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "check", "02", "--workspace", str(workspace), "--json", str(results)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=course.REPO_ROOT,
        env={**os.environ, "COURSE_CACHE_DIR": str(cache)},
    )
    # The daemon also holds the pipes of `python -m service.config`, which the learner's own
    # startup-command check then loses: their code, their points. The grader is not held.
    assert done.returncode in (0, 1) and "total" in done.stdout, done.stdout + done.stderr
    assert time.monotonic() - started < 150, "a daemon holding stdout must not hold the grader"
    written = results.read_text()
    time.sleep(6)  # the daemon's writes would have landed by now
    assert results.read_text() == written
    assert f"{json.loads(written)['score']:g}/10  total" in done.stdout
    assert _digest(REGISTRY) == registry_before
    assert orphaned_sandbox_processes() == []


def test_a_fork_bomb_at_import_fails_the_check_and_leaves_nothing(
    blank_workspace, copy_of, monkeypatch, orphaned_sandbox_processes
):
    monkeypatch.setenv("COURSE_PROBE_TIMEOUT", "10")
    workspace = copy_of(blank_workspace)
    (workspace / "service" / "config.py").write_text(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    [result] = grade_step("02", workspace, only=["parsers"]).results
    assert result.verdict is Verdict.FAILED and "did not finish in time" in result.message
    assert orphaned_sandbox_processes() == []


def test_a_process_that_kills_itself_is_a_crash_with_a_reason(blank_workspace, copy_of):
    workspace = copy_of(blank_workspace)
    (workspace / "service" / "config.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    [result] = grade_step("02", workspace, only=["parsers"]).results
    assert result.verdict is Verdict.FAILED and "the Python process running your code died" in result.message


def _grade_measuring_the_grader(*args: str) -> tuple[str, int, int]:
    """Run the CLI; return its output, exit status and the grader process's own peak memory in
    KB (its VmHWM, read while it runs: the learner's processes under it are not counted)."""
    import threading

    process = subprocess.Popen(
        [sys.executable, "-m", "autograder", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        cwd=course.REPO_ROOT,
    )
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(process.stdout.read()))
    reader.start()
    peak = 0
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak = max(peak, int(status.split("VmHWM:")[1].split()[0]))
        except (OSError, IndexError, ValueError):
            pass
        time.sleep(0.05)
    reader.join()
    return "".join(chunks), process.returncode, peak


def test_a_flood_of_output_costs_the_grader_no_memory(reference_workspace, copy_of):
    workspace = copy_of(reference_workspace)
    config = workspace / "service" / "config.py"
    config.write_text(config.read_text() + "\nimport sys\nsys.stdout.write('x' * 100_000_000)\n")
    output, status, peak = _grade_measuring_the_grader("check", "02", "--workspace", str(workspace))
    assert status == 0, output[-2000:]
    assert len(output) < 50_000
    assert peak < 400_000, f"the grader peaked at {peak / 1000:.0f} MB"


def test_hostile_workspace_files_are_refused_and_escaped(blank_workspace, copy_of):
    """requirements.txt linked to /etc/passwd, a 1 GB sparse pyproject.toml, and terminal escape
    codes that would erase the FAIL row and draw a PASS one."""
    workspace = copy_of(blank_workspace)
    (workspace / "requirements.txt").unlink()
    (workspace / "requirements.txt").symlink_to("/etc/passwd")
    (workspace / "pyproject.toml").unlink()
    with open(workspace / "pyproject.toml", "wb") as sparse:
        sparse.truncate(1024**3)
    (workspace / ".gitignore").write_text("\x1b[1A\x1b[2K\r  PASS    2/2  00.gitignore-hygiene  all good\u202e\n*\n")
    output, status, peak = _grade_measuring_the_grader("check", "00", "--workspace", str(workspace))
    assert status == 1
    assert "root:x:0:0" not in output
    assert "requirements.txt: refused: a symbolic link to a path outside the workspace" in output
    assert "\x1b" not in output and "\u202e" not in output
    assert peak < 400_000, f"the grader peaked at {peak / 1000:.0f} MB"
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith(("PASS", "FAIL"))]
    assert len(lines) == 3 and all(line.startswith("FAIL") for line in lines), output


def test_a_forged_progress_history_is_not_believed(tmp_path, monkeypatch):
    from autograder import progress

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    history = progress._history_file(workspace)
    history.parent.mkdir(parents=True)
    forged = {
        step.id: {"time": time.time(), "checks": {c.id: {"passed": True, "points": c.max_points} for c in checks}}
        for step in course.STEPS
        for checks in [__import__("autograder.checks", fromlist=["for_step"]).for_step(step.id).checks]
    }
    history.write_text(json.dumps(forged))
    states = {s.step.id: s for s in progress.progress(workspace)}
    assert all(s.state != "done" for s in states.values())
    assert f"{len(course.STEPS)} history entries ignored" in states["00"].detail
    assert current().cache_dir == tmp_path / "cache"
