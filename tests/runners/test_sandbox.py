"""The sandbox holds whatever learner code tries: it sees nothing of the grader's, reaches no
network, cannot outgrow its limits or its deadline, and leaves nothing running."""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from autograder import course
from autograder.runners import sandbox
from autograder.settings import current

REQUIRE = os.environ.get("COURSE_SANDBOX") == "require"


@pytest.fixture(scope="module")
def mechanism():
    found = sandbox.mechanism(dataclasses.replace(current(), sandbox="auto"))
    if not found.sandboxed:
        if REQUIRE:
            pytest.fail(f"COURSE_SANDBOX=require but {found.detail}")
        pytest.skip(f"no sandbox on this machine: {found.detail}")
    return found


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "root"
    sandbox.prepare_root(folder)
    return folder


def run(mechanism, root, code: str, **limits) -> sandbox.Finished:
    return sandbox.run([sys.executable, "-c", code], root=root, mechanism=mechanism, limits=sandbox.Limits(**limits))


def test_code_runs_as_an_unprivileged_user_without_capabilities(mechanism, root):
    done = run(
        mechanism,
        root,
        "import os; s = open('/proc/self/status').read(); "
        "print(os.getuid(), os.geteuid(), s.split('CapEff:')[1].split()[0])",
    )
    uid, euid, capabilities = done.output.split()
    assert uid == euid == str(sandbox.sandbox_uid(root))
    assert uid != "0" and sandbox.is_sandbox_uid(int(uid))
    assert int(capabilities, 16) == 0


def test_nothing_of_the_grader_is_visible(mechanism, root, tmp_path):
    secret = tmp_path / "grader-secret.txt"
    secret.write_text("the grader's")
    paths = [
        str(course.SOLUTIONS_DIR),
        str(course.FAULTY_VARIANTS),
        str(course.REPO_ROOT / "autograder" / "checks" / "registry.py"),
        str(current().cache_dir),
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/etc/shadow",
        str(secret),
        str(Path.home() / ".bash_history"),
    ]
    done = run(mechanism, root, f"import os; print([p for p in {paths!r} if os.path.exists(p)])")
    assert done.output.strip() == "[]", done.output


def test_the_grading_root_is_read_only_but_for_out(mechanism, root):
    (root / "given.txt").write_text("input")
    done = run(
        mechanism,
        root,
        f"open('{sandbox.SANDBOX_ROOT}/out/made', 'w').write('ok')\n"
        "for target in ('given.txt', 'new.txt'):\n"
        "    try:\n"
        f"        open('{sandbox.SANDBOX_ROOT}/' + target, 'w').write('changed')\n"
        "        print('wrote', target)\n"
        "    except OSError as error:\n"
        "        print('refused', target, error.errno)\n",
    )
    assert (root / "out" / "made").read_text() == "ok"
    assert "wrote" not in done.output and done.output.count("refused") == 2
    assert (root / "given.txt").read_text() == "input"


def test_no_network_not_even_the_graders_loopback(mechanism, root):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        done = run(
            mechanism,
            root,
            "import socket\n"
            f"for address in (('127.0.0.1', {port}), ('1.1.1.1', 443)):\n"
            "    try:\n"
            "        socket.create_connection(address, timeout=3)\n"
            "        print('reached', address)\n"
            "    except OSError:\n"
            "        print('unreachable', address)\n",
        )
    finally:
        listener.close()
    assert "reached" not in done.output and done.output.count("unreachable") == 2


def test_memory_is_limited_per_process(mechanism, root):
    done = run(mechanism, root, "block = bytearray(4 * 1024**3)\nprint('allocated')", memory_bytes=1024**3)
    assert "MemoryError" in done.output and "allocated" not in done.output


def test_a_fork_bomb_is_contained_and_ends_at_the_deadline(mechanism, root, orphaned_sandbox_processes):
    started = time.monotonic()
    done = run(
        mechanism,
        root,
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        wall_seconds=4,
    )
    assert done.timed_out and time.monotonic() - started < 30
    assert orphaned_sandbox_processes() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root grader gives each sandbox a UID of its own")
def test_sandboxes_side_by_side_do_not_share_their_task_limit(mechanism, tmp_path):
    """RLIMIT_NPROC counts every process of a UID: with one UID for all sandboxes, one that uses
    most of its tasks would leave none to another running beside it (or to a test's own forks)."""
    import threading

    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        sandbox.prepare_root(folder)
    holds = (
        "import subprocess, time, os\n"
        "children = [subprocess.Popen(['sleep', '600']) for _ in range(14)]\n"
        "open('/run/course/out/ready', 'w').close()\n"
        "while not os.path.exists('/run/course/out/stop'):\n"
        "    time.sleep(0.05)\n"
    )
    holding = threading.Thread(target=run, args=(mechanism, first, holds), kwargs={"tasks": 20, "wall_seconds": 120})
    holding.start()
    try:
        deadline = time.monotonic() + 60
        while not (first / "out" / "ready").exists():
            assert holding.is_alive() and time.monotonic() < deadline, "the first sandbox never got its processes"
            time.sleep(0.05)
        forks = (
            "import subprocess\n"
            "children = [subprocess.Popen(['sleep', '600']) for _ in range(10)]\n"
            "[child.kill() for child in children]\n"
            "print('forked')"
        )
        done = run(mechanism, second, forks, tasks=20)
        assert done.output.strip() == "forked", done.output
        assert sandbox.sandbox_uid(first) != sandbox.sandbox_uid(second)
    finally:
        (first / "out" / "stop").touch()
        holding.join(120)


def test_written_files_are_limited_in_size(mechanism, root):
    done = run(
        mechanism,
        root,
        "open('/tmp/big', 'wb').write(b'0' * 64 * 1024**2)",
        file_bytes=16 * 1024**2,
    )
    assert "File too large" in done.output


def test_a_flood_of_output_reaches_the_grader_bounded(mechanism, root):
    done = run(mechanism, root, "import sys\nsys.stdout.write('x' * 100_000_000)\nprint('THE END')")
    assert done.output_bytes > 100_000_000
    assert len(done.output) < 3 * sandbox.Limits().output_bytes
    assert done.output_truncated and done.output.rstrip().endswith("THE END")


def test_a_double_forked_process_does_not_outlive_the_run(mechanism, root, orphaned_sandbox_processes):
    done = run(
        mechanism,
        root,
        "import os, time  # double-fork-test\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(3)\n"
        f"        open('{sandbox.SANDBOX_ROOT}/out/late', 'w').write('too late')\n"
        "    os._exit(0)\n"
        "print('parent done')\n",
    )
    assert done.output.strip() == "parent done"
    time.sleep(4)  # the daemon's write would have happened by now
    assert not (root / "out" / "late").exists()
    assert orphaned_sandbox_processes() == []


def test_a_process_holding_the_output_pipe_open_does_not_hang_the_grader(mechanism, root, orphaned_sandbox_processes):
    started = time.monotonic()
    done = run(
        mechanism,
        root,
        "import os, subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # pipe-holder'], start_new_session=True)\n"
        "print('left a child holding stdout')\n",
        wall_seconds=60,
    )
    assert "left a child" in done.output and not done.timed_out
    assert time.monotonic() - started < 20
    assert orphaned_sandbox_processes() == []


def test_an_endless_loop_is_killed_at_the_deadline(mechanism, root):
    started = time.monotonic()
    done = run(mechanism, root, "while True:\n    pass", wall_seconds=2)
    assert done.timed_out and done.returncode < 0
    assert time.monotonic() - started < 10


def test_without_bubblewrap_the_run_is_labelled_unsandboxed(root, monkeypatch):
    monkeypatch.setenv("COURSE_SANDBOX", "off")
    found = sandbox.mechanism(current())
    assert not found.sandboxed and found.describe().startswith("UNSANDBOXED")
    done = run(found, root, "print('hello')")
    assert done.output.strip() == "hello" and not done.sandboxed


def test_require_refuses_a_machine_without_the_sandbox(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap anywhere
    sandbox._bubblewrap_works.cache_clear()
    try:
        monkeypatch.setenv("COURSE_SANDBOX", "require")
        with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap"):
            sandbox.mechanism(current())
        monkeypatch.setenv("COURSE_SANDBOX", "auto")
        assert not sandbox.mechanism(current()).sandboxed
    finally:
        sandbox._bubblewrap_works.cache_clear()
