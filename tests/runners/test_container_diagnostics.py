"""What the autograder tells a learner whose container does not come up: pure functions over what
the engine reports (logs, the kernel's socket table), tested without an engine; and how it talks
to a service that is still warming up. The same paths run for real in test_docker.py's failing
images."""

from __future__ import annotations

import http.server
import threading

import pytest

from autograder.runners import docker as docker_runner
from autograder.runners.docker import (
    RunningService,
    log_excerpt,
    parse_proc_net_tcp,
    read_only_root_write,
    wrong_listener,
)

# cat /proc/net/tcp /proc/net/tcp6 in a container whose gunicorn listens on 0.0.0.0:8000, with
# one established connection (state 01), and an IPv6 listener on [::1]:9000.
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001        0 1 1
   1: 0100007F:1F40 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000 10001        0 2 1
  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000001000000:2328 00000000000000000000000000000000:0000 0A 00000000:0
"""


def test_the_socket_table_is_read_as_addresses_and_ports():
    assert parse_proc_net_tcp(PROC_NET_TCP) == {("0.0.0.0", 8000), ("::1", 9000)}
    assert parse_proc_net_tcp("") == set()


def test_a_listener_on_the_wrong_port_or_on_loopback_is_named():
    assert "listens on 0.0.0.0:8000, not on port 5000" in wrong_listener({("0.0.0.0", 8000)}, 5000)
    assert "own loopback" in wrong_listener({("127.0.0.1", 5000)}, 5000)
    # Docker's own DNS server listens in every container on a user-defined network: not the service.
    assert wrong_listener({("0.0.0.0", 5000), ("127.0.0.11", 41234)}, 5000) == ""
    assert "127.0.0.11" not in wrong_listener({("0.0.0.0", 8000), ("127.0.0.11", 41234)}, 5000)
    assert "bind 0.0.0.0:5000" in wrong_listener({("127.0.0.1", 5000)}, 5000)


def test_a_right_listener_or_none_yet_is_not_a_fault():
    assert wrong_listener({("0.0.0.0", 5000)}, 5000) == ""
    assert wrong_listener({("::", 5000), ("127.0.0.1", 9090)}, 5000) == ""
    assert wrong_listener(set(), 5000) == "", "still starting: nothing listens yet"


GUNICORN_CRASH = """\
[INFO] Starting gunicorn 27.0.1
[INFO] Booting worker with pid: 7
[ERROR] Exception in worker process
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/gunicorn/util.py", line 473, in import_app
    app = app(*args, **kwargs)
  File "/app/service/app.py", line 188, in create_app
    raise RuntimeError('crash on start')
RuntimeError: crash on start
[INFO] Worker exiting (pid: 7)
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/gunicorn/arbiter.py", line 683, in reap_workers
    raise HaltServer(reason, self.WORKER_BOOT_ERROR)
gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>
"""


def test_the_first_traceback_is_shown_not_only_the_masters_noise():
    excerpt = log_excerpt(GUNICORN_CRASH)
    first, _, last = excerpt.partition("its last log lines:")
    assert "RuntimeError: crash on start" in first and "HaltServer" not in first
    assert "HaltServer" in last


def test_logs_without_a_traceback_are_shown_as_their_tail():
    logs = "\n".join(f"line {n}" for n in range(100))
    excerpt = log_excerpt(logs)
    assert excerpt.startswith("its last log lines:") and "line 99" in excerpt and "line 50" not in excerpt


def test_a_write_to_the_read_only_root_is_quoted():
    logs = "starting\nOSError: [Errno 30] Read-only file system: '/app/started'\nbye"
    assert read_only_root_write(logs) == "OSError: [Errno 30] Read-only file system: '/app/started'"
    assert read_only_root_write("all good") == ""


@pytest.fixture
def flaky_server():
    """A local HTTP server answering 503 with Retry-After ``busy`` times, then 200."""
    state = {"busy": 0, "seen": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            state["seen"] += 1
            busy = state["seen"] <= state["busy"]
            self.send_response(503 if busy else 200)
            if busy:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield RunningService(base_url=f"http://127.0.0.1:{server.server_port}", container_id="none"), state
    server.shutdown()
    server.server_close()


def test_requests_honour_retry_after_while_a_worker_is_still_loading(flaky_server):
    service, state = flaky_server
    state["busy"] = 2
    assert service.request("GET", "/predict").status_code == 200
    assert state["seen"] == 3


def test_a_service_that_stays_busy_is_answered_as_it_is(flaky_server, monkeypatch):
    monkeypatch.setattr(docker_runner, "RETRY_AFTER_BUDGET_SECONDS", 1.5)
    service, state = flaky_server
    state["busy"] = 1000
    assert service.request("GET", "/predict").status_code == 503
    assert 2 <= state["seen"] <= 4, "retried for the budget only"


class _Answers(http.server.BaseHTTPRequestHandler):
    """A service that answers too much, or too slowly."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            if self.path == "/huge":
                for _ in range(64):
                    self.wfile.write(b"x" * (1024 * 1024))
            elif self.path == "/drip":
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    threading.Event().wait(0.5)
        except ConnectionError:
            pass  # the client stopped reading at its bound, as it should

    def log_message(self, *args):
        pass


@pytest.fixture
def answers():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_answer_is_read_up_to_its_size_limit(answers):
    response = RunningService(base_url=answers, container_id="none").request("GET", "/huge")
    assert response.truncated and len(response.content) == docker_runner.RESPONSE_LIMIT_BYTES


def test_an_answer_that_drips_is_cut_at_the_deadline(answers, monkeypatch):
    import time

    monkeypatch.setattr(docker_runner, "REQUEST_DEADLINE_SECONDS", 2.0)
    started = time.monotonic()
    response = RunningService(base_url=answers, container_id="none").request("GET", "/drip")
    assert response.truncated and time.monotonic() - started < 10
