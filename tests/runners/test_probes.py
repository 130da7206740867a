"""The probe runner: observations come back from the sandbox (arrays too), bounded, and whatever
the learner's code does the grader gets a result it can judge."""

from __future__ import annotations

import json
import shutil
import time

import numpy
import pytest

from autograder.probes import harness
from autograder.runners import probes, sandbox
from autograder.settings import current


@pytest.fixture
def runner_for(tmp_path):
    def make(module_source: str, name: str = "learner.py") -> probes.ProbeRunner:
        workspace = tmp_path / "workspace"
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_text(module_source)
        settings = current()
        return probes.ProbeRunner(workspace, sandbox.mechanism(settings), settings, tmp_path)

    return make


def test_observations_come_back_with_their_arrays(runner_for):
    runner = runner_for("VALUE = 41\n")
    result = runner("step01_model:import_modules", {"wanted": {"learner": ["VALUE", "MISSING"]}})
    assert result.ok and result.value["present"] == {"learner": ["VALUE"]} and result.value["errors"] == {}


def test_an_exception_names_the_learners_file_and_line(runner_for):
    runner = runner_for("def f():\n    return 1 / 0\n\nf()\n")
    result = runner("step01_model:import_modules", {"wanted": {"learner": []}})
    assert result.ok and result.value["errors"]["learner"] == "ZeroDivisionError: division by zero (learner.py, line 2)"


def test_an_endless_loop_is_stopped_at_the_timeout(runner_for):
    runner = runner_for("while True:\n    pass\n")
    started = time.monotonic()
    result = runner("step01_model:import_modules", {"wanted": {"learner": []}}, timeout=3)
    assert result.timed_out and "did not finish in time" in result.describe_failure()
    assert time.monotonic() - started < 15


def test_a_hard_exit_is_a_crash_not_a_result(runner_for):
    runner = runner_for("import os\nos._exit(3)\n")
    result = runner("step01_model:import_modules", {"wanted": {"learner": []}})
    assert result.crashed and "died" in result.describe_failure()


def _forged(runner_for, text: str, prelude: str = ""):
    """The result of a probe whose learner code writes the result file itself (``text``, a Python
    expression run inside) and exits before the probe can."""
    runner = runner_for(
        "import json, os, sys\n"
        "import numpy\n"
        "out = os.path.join(sys.argv[1], 'out')\n"
        f"{prelude}"
        "with open(os.path.join(out, 'result.json'), 'w') as result:\n"
        f"    result.write({text})\n"
        "os._exit(0)\n"
    )
    return runner("step01_model:import_modules", {"wanted": {"learner": []}})


def test_a_huge_forged_result_is_refused(runner_for):
    result = _forged(runner_for, "'{\"ok\": true, \"value\": \"' + 'x' * (20 * 1024 * 1024) + '\"}'")
    assert result.crashed and "size limit" in result.output_tail


def test_a_forged_array_reference_cannot_reach_outside_the_output_folder(runner_for):
    result = _forged(runner_for, "json.dumps({'ok': True, 'value': {'__npy__': '../../etc/passwd'}})")
    assert result.crashed and "could not be read" in result.output_tail


def test_one_array_named_many_times_is_bounded_in_total(runner_for):
    """Each array file is bounded; so is the sum of every reference (one file named 40 times once
    took the grader to 2.4 GB)."""
    result = _forged(
        runner_for,
        "json.dumps({'ok': True, 'value': [{'__npy__': 'a.npy'}] * 40})",
        prelude="numpy.save(os.path.join(out, 'a.npy'), numpy.zeros(20_000_000, numpy.uint8))\n",
    )
    assert result.crashed and "could not be read (ValueError)" in result.output_tail


def test_a_result_nested_beyond_the_parsers_depth_is_a_crash(runner_for):
    result = _forged(runner_for, "'{\"ok\": true, \"value\": ' + '[' * 200_000 + ']' * 200_000 + '}'")
    assert result.crashed and "could not be read" in result.output_tail


def test_the_harness_writes_arrays_next_to_the_json(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "ROOT", tmp_path)
    (tmp_path / "out").mkdir()
    arrays: list[str] = []
    encoded = harness._encode({"values": numpy.arange(6, dtype=numpy.float32).reshape(2, 3), "n": 1}, arrays)
    assert encoded == {"values": {"__npy__": "array-0.npy"}, "n": 1}
    decoded = probes._decode(json.loads(json.dumps(encoded)), tmp_path / "out")
    assert decoded["values"].shape == (2, 3) and decoded["values"][1, 2] == 5.0


# A serving probe: the learner's app answers the grader's requests from outside its process.


def _health(served) -> dict:
    return {"health": served.client("app").get("/health")}


@pytest.mark.slow
@pytest.mark.parametrize("confined", [True, False], ids=["sandboxed", "unsandboxed"])
def test_a_served_app_answers_requests_sent_from_the_grader(reference_workspace, tmp_path, confined):
    settings = current()
    mechanism = sandbox.mechanism(settings) if confined else sandbox.Mechanism("none", "a test")
    # Deeper than a socket address holds (107 bytes): the server binds, and the client connects,
    # through the folder.
    scratch = tmp_path / ("deep-" * 20)
    scratch.mkdir()
    workspace = shutil.copytree(reference_workspace, tmp_path / "workspace")  # grading reads a copy too
    runner = probes.ProbeRunner(workspace, mechanism, settings, scratch)
    result = runner("step03_api:serve", {"apps": {"app": {}}}, drive=_health)
    assert result.ok, result.describe_failure()
    assert result.value["health"]["status"] == 200 and result.value["health"]["mimetype"] == "application/json"
    assert "log" in result.value


def test_a_forged_result_cannot_stand_in_for_a_server(runner_for):
    """Code that writes an all-good result and the ready fact, then exits, answered nothing."""
    runner = runner_for(
        "import json, os, sys\n"
        "out = os.path.join(sys.argv[1], 'out')\n"
        "json.dump({'ok': True, 'value': {'health': {'status': 200}}}, open(os.path.join(out, 'result.json'), 'w'))\n"
        "json.dump({'ready': True}, open(os.path.join(out, 'facts.json'), 'w'))\n"
        "os._exit(0)\n",
        name="service/__init__.py",
    )
    result = runner("step03_api:serve", {"apps": {"app": {}}}, drive=_health)
    assert not result.ok and "died while the grader sent it requests" in result.describe_failure(), result


def test_a_server_that_never_answers_is_stopped_at_the_deadline(runner_for):
    runner = runner_for(
        "import json, os, socket, sys, time\n"
        "out = os.path.join(sys.argv[1], 'out')\n"
        "listener = socket.socket(socket.AF_UNIX)\n"
        "listener.bind(os.path.join(out, 'app.sock'))\n"
        "listener.listen()\n"
        "json.dump({'ready': True}, open(os.path.join(out, 'facts.json'), 'w'))\n"
        "held = [listener.accept() for _ in range(3)]\n"
        "time.sleep(3600)\n",
        name="service/__init__.py",
    )
    started = time.monotonic()
    result = runner("step03_api:serve", {"apps": {"app": {}}}, drive=_health, timeout=3)
    assert result.timed_out, result
    assert time.monotonic() - started < 15


# A command run in the workspace: its exit status and streams, seen from outside.


def test_a_command_reports_its_status_and_both_streams_apart(runner_for):
    runner = runner_for("import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\nsys.exit(3)\n", "tool.py")
    result = runner.command(["python", "tool.py"], env={"EXTRA": "1"})
    assert result.ok and result.value["status"] == 3, result
    assert result.value["stdout"].strip() == "to stdout" and result.value["stderr"].strip() == "to stderr"


def test_a_commands_stderr_swapped_for_a_link_is_not_followed(runner_for):
    runner = runner_for(
        "import os, sys\npath = os.readlink('/proc/self/fd/2')\nos.unlink(path)\nos.symlink('/etc/passwd', path)\n",
        "tool.py",
    )
    result = runner.command(["python", "tool.py"])
    assert result.ok and result.value["status"] == 0 and result.value["stderr"] == "", result


def test_a_fifo_in_place_of_the_facts_file_does_not_hang_the_grader(runner_for):
    runner = runner_for(
        "import os, sys, time\nos.mkfifo(os.path.join(sys.argv[1], 'out', 'facts.json'))\ntime.sleep(3600)\n",
        name="service/__init__.py",
    )
    started = time.monotonic()
    result = runner("step03_api:serve", {"apps": {"app": {}}}, drive=_health, timeout=4)
    assert result.timed_out and time.monotonic() - started < 20


def test_a_link_in_place_of_the_apps_socket_is_never_followed(runner_for, tmp_path):
    """The learner's code swaps its socket for a link to another one (the Docker daemon's, say)."""
    import socket

    elsewhere = tmp_path / "elsewhere.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(elsewhere))
    listener.listen()
    listener.setblocking(False)
    runner = runner_for(
        "import json, os, sys, time\n"
        "out = os.path.join(sys.argv[1], 'out')\n"
        f"os.symlink({str(elsewhere)!r}, os.path.join(out, 'app.sock'))\n"
        "json.dump({'ready': True}, open(os.path.join(out, 'facts.json'), 'w'))\n"
        "time.sleep(3600)\n",
        name="service/__init__.py",
    )
    result = runner("step03_api:serve", {"apps": {"app": {}}}, drive=_health, timeout=30)
    assert not result.ok and "not a socket" in result.describe_failure(), result
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody knocked
    listener.close()


def test_output_files_are_read_only_when_regular_and_bounded(tmp_path):
    import os

    (tmp_path / "plain").write_bytes(b"12345")
    assert sandbox.read_output(tmp_path / "plain", 5) == b"12345"
    with pytest.raises(ValueError):
        sandbox.read_output(tmp_path / "plain", 4)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "plain")
    for refused in ("fifo", "link"):
        with pytest.raises(OSError):
            sandbox.read_output(tmp_path / refused, 100)


def test_an_answer_nested_too_deep_is_no_json_not_a_crash():
    from autograder.runners import unix_http

    body = b"[" * 200_000 + b"]" * 200_000
    assert unix_http.answer(200, [("Content-Type", "application/json")], body)["json"] is None


def test_once_a_probe_hangs_the_others_get_less_time(runner_for):
    runner = runner_for("while True:\n    pass\n")
    assert runner("step01_model:import_modules", {"wanted": {"learner": []}}, timeout=3).timed_out
    assert runner._after_a_hang(120) == probes.AFTER_A_HANG and runner._after_a_hang(10) == 10


@pytest.mark.parametrize("o_path", [True, False], ids=["linux", "without-O_PATH"])
def test_the_socket_client_answers_and_refuses_links(tmp_path, monkeypatch, o_path):
    import os
    import socket
    import threading

    from autograder.runners import unix_http

    if not o_path:
        monkeypatch.delattr(os, "O_PATH", raising=False)
    path = tmp_path / "app.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen()

    def serve_once():
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        connection.close()

    threading.Thread(target=serve_once, daemon=True).start()
    answer = unix_http.Client(path, timeout=10).get("/health")
    assert answer["status"] == 200 and answer["json"] == {} and answer["mimetype"] == "application/json"
    (tmp_path / "link.sock").symlink_to(path)
    with pytest.raises(ConnectionRefusedError, match="not a socket"):
        unix_http.Client(tmp_path / "link.sock", timeout=10).get("/health")
    listener.close()
