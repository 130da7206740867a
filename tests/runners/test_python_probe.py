"""The probe runner survives whatever the learner's code does."""

from __future__ import annotations

import time

from autograder.runners.python_probe import run_probe


def _workspace(tmp_path, module_source: str):
    (tmp_path / "learner.py").write_text(module_source)
    return tmp_path


def test_returns_the_probe_value_and_ignores_the_learners_prints(tmp_path):
    workspace = _workspace(tmp_path, "print('hello from import')\nVALUE = 41\n")
    result = run_probe(
        workspace, "import learner\ndef probe():\n    print('noise')\n    return {'v': learner.VALUE + 1}\n"
    )
    assert result.ok and result.value == {"v": 42}


def test_an_exception_is_reported_with_the_learners_file_and_line(tmp_path):
    workspace = _workspace(tmp_path, "def f():\n    return 1 / 0\n")
    result = run_probe(workspace, "import learner\ndef probe():\n    return learner.f()\n")
    assert not result.ok
    assert result.error == "ZeroDivisionError: division by zero (learner.py, line 2)"


def test_an_endless_loop_is_killed_at_the_timeout(tmp_path):
    workspace = _workspace(tmp_path, "while True:\n    pass\n")
    started = time.monotonic()
    result = run_probe(workspace, "def probe():\n    import learner\n", timeout=2)
    assert result.timed_out and not result.ok
    assert time.monotonic() - started < 10
    assert "did not finish in time" in result.describe_failure()


def test_a_hard_exit_is_a_crash_not_a_hang(tmp_path):
    workspace = _workspace(tmp_path, "import os\nos._exit(3)\n")
    result = run_probe(workspace, "def probe():\n    import learner\n")
    assert result.crashed and not result.ok
    assert "died" in result.describe_failure()


def test_system_exit_in_learner_code_is_an_error_not_a_crash(tmp_path):
    workspace = _workspace(tmp_path, "raise SystemExit('bye')\n")
    result = run_probe(workspace, "def probe():\n    import learner\n")
    assert not result.ok and result.error.startswith("SystemExit: bye")


def test_child_processes_die_with_the_probe(tmp_path):
    workspace = _workspace(
        tmp_path,
        "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\nwhile True:\n    pass\n",
    )
    result = run_probe(workspace, "def probe():\n    import learner\n", timeout=3)
    assert result.timed_out
    import subprocess

    leftovers = subprocess.run(["pgrep", "-f", "time.sleep\\(300\\)"], capture_output=True, text=True).stdout.split()
    assert leftovers == []


def test_the_workspace_gets_no_bytecode_cache(tmp_path):
    workspace = _workspace(tmp_path, "X = 1\n")
    assert run_probe(workspace, "import learner\ndef probe():\n    return learner.X\n").ok
    assert not (workspace / "__pycache__").exists()
