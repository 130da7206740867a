"""The only module that talks to a Docker engine: build, import, run with testcontainers, clean up.

Everything it creates carries the label ``LABEL`` so that an interrupted run's leftovers can be
found and removed by the next run, and so that old images can be pruned to a bounded cache.
testcontainers is imported here and nowhere else.

What a learner's image may do is bounded like everything else of theirs. A build runs under a
memory limit and a deadline, on a network that reaches the course's wheelhouse and nothing else
(``wheelhouse_server``). A graded container runs under ``RunLimits`` on a network of its own with
no way out (Docker's ``internal`` networks have no gateway); the grader reaches it through a relay
container whose port is published on 127.0.0.1. Its logs are capped, and answers are read with
bounds on size and time.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from autograder import interrupts, processes
from autograder.errors import ContainerError, DockerUnavailable
from autograder.settings import Settings, current

# The course's base image: graded builds may start from it (and their own stages) only.
BASE_IMAGE = "python:3.11-slim"
# Step 06's Prometheus (and promtool): pulled, or a stand-in of that name (runners.offline).
PROMETHEUS_IMAGE = "prom/prometheus:v2.42.0"
LABEL = "org.resnet-course.autograder"
STAND_IN_LABEL = "org.resnet-course.stand-in"
RUN_LABEL = "org.resnet-course.run"  # one value per run_service call
OWNER_LABEL = "org.resnet-course.owner-pid"  # the grading process; its containers are swept once it is gone
WORKSPACE_LABEL = "org.resnet-course.workspace"  # which workspace an image was built from (a digest)
IMAGE_CACHE_KEEP = 3  # labelled images kept after a run; their layers are the build cache
API_TIMEOUT_SECONDS = 600  # one call to the engine's API (a build's stream is read with its own deadline)
LOG_TAIL_LINES = 25
# How long requests to a service that answers 503 with Retry-After are retried.
RETRY_AFTER_BUDGET_SECONDS = 20.0
# What the grader reads of one answer of a graded service, and how long it waits for it all.
RESPONSE_LIMIT_BYTES = 2 * 1024**2
REQUEST_DEADLINE_SECONDS = 90.0
# A graded container's logs on the engine's disk.
LOG_OPTIONS = {"max-size": "10m", "max-file": "1"}
RELAY_PORT = 8080
SERVICE_ALIAS = "graded-service"
# The grader's own helper containers (the wheelhouse server, the relay) are confined too.
HELPER_CONFINEMENT = {
    "user": "65534:65534",
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "mem_limit": "256m",
    "pids_limit": 64,
}
# What Python and libc say when a program writes to a read-only root filesystem.
READ_ONLY_ROOT_SIGNS = ("Read-only file system", "EROFS")
READ_ONLY_ROOT_HINT = (
    "the container runs with a read-only root filesystem, as it would under Kubernetes' "
    "readOnlyRootFilesystem: write only to /tmp (a tmpfs here) or to a mounted volume, and set "
    "PYTHONDONTWRITEBYTECODE=1 so Python does not try to write .pyc files"
)

# The reaper image cannot be pulled offline, and this machine runs inside a container of its own:
# clean up with context managers and reach published ports on loopback (see ENVIRONMENT.md).
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")


def client():
    """A Docker SDK client, or DockerUnavailable saying how to get an engine."""
    import docker

    try:
        engine = docker.from_env(timeout=API_TIMEOUT_SECONDS)
        engine.ping()
    except Exception as error:
        raise DockerUnavailable(
            f"no Docker engine answers ({type(error).__name__})",
            hint="start Docker Desktop, or on Linux run `sudo dockerd &` (CI: bash .ci/run installs one); "
            "container checks are reported as skipped until an engine answers",
        ) from error
    return engine


def engine_available() -> tuple[bool, str]:
    try:
        version = client().version().get("Version", "?")
    except DockerUnavailable as error:
        return False, error.message
    return True, f"Docker engine {version}"


def image_exists(reference: str) -> bool:
    import docker

    try:
        client().images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True


def image_labels(reference: str) -> dict[str, str]:
    return client().images.get(reference).labels or {}


def pull_image(reference: str, timeout: float | None = None) -> bool:
    """Pull from a registry; False (never an exception) when none answers within ``timeout``
    (offline, a registry host may not answer at all)."""
    import docker

    timeout = timeout or current().pull_timeout
    client()
    try:
        with docker.from_env(timeout=timeout) as short_lived:
            repository, _, tag = reference.partition(":")
            short_lived.images.pull(repository, tag=tag or "latest")
    except Exception:
        return False
    return image_exists(reference)


def import_rootfs(tarball: Path, reference: str, changes: list[str]) -> None:
    """``docker import`` a root filesystem tarball with Dockerfile-style changes (ENV, CMD...)."""
    engine = client()
    repository, _, tag = reference.partition(":")
    with open(tarball, "rb") as stream:
        engine.api.import_image_from_data(stream.read(), repository=repository, tag=tag or "latest", changes=changes)
    if not image_exists(reference):
        raise ContainerError(f"importing {tarball} as {reference} did not create the image")


STEP_IMAGE = re.compile(r"---> ([0-9a-f]{12})")  # how the legacy builder names each step's image


@dataclass(frozen=True)
class BuildResult:
    tag: str
    image_id: str
    seconds: float
    size_bytes: int
    layers: int
    log_tail: str
    # The short ids of the images each build step made or took from the cache, every stage's
    # included: pruning spares them while they are in use, so the next build finds its cache.
    step_images: tuple[str, ...] = ()


def build_image(
    context: Path,
    tag: str,
    *,
    build_args: dict[str, str] | None = None,
    network_mode: str | None = None,
    labels: dict[str, str] | None = None,
    memory_bytes: int | None = None,
    timeout: float | None = None,
) -> BuildResult:
    """Build ``context`` (a workspace with a Dockerfile) within ``timeout`` seconds, each RUN
    step under ``memory_bytes``; ContainerError with the log tail on failure.

    The build streams in a child process: the engine cancels a build whose client goes away, and
    killing that process (at the deadline, on Ctrl-C) is the one sure way to make it go away
    (closing a connection another thread is reading from does not)."""
    context = Path(context)
    if not (context / "Dockerfile").is_file():
        raise ContainerError(
            f"there is no Dockerfile in {context}", hint="write it with the notebook's %%writefile cell"
        )
    settings = current()
    timeout = timeout or settings.build_timeout
    memory_bytes = memory_bytes or settings.build_memory
    client()  # a clear DockerUnavailable first
    options = {
        "buildargs": build_args or {},
        "network_mode": network_mode,
        "labels": {LABEL: "1", **(labels or {})},
        "container_limits": {"memory": memory_bytes, "memswap": memory_bytes},
    }
    started = time.perf_counter()
    log: collections.deque[str] = collections.deque(maxlen=200)
    step_images: list[str] = []
    image_id = None
    spawn = multiprocessing.get_context("spawn")
    receiver, sender = spawn.Pipe(duplex=False)
    builder = spawn.Process(target=_stream_build, args=(sender, str(context), tag, options), daemon=True)
    builder.start()
    sender.close()
    deadline = time.monotonic() + timeout
    try:
        while True:
            interrupts.raise_if_interrupted()
            if time.monotonic() > deadline:
                raise ContainerError(
                    f"docker build did not finish in {timeout:.0f} s and was stopped",
                    hint="a RUN step that waits for something (the network, input) or does too much work: "
                    "the end of the build log shows which\n" + _tail(log),
                )
            if not receiver.poll(0.5):
                continue
            try:
                kind, payload = receiver.recv()
            except EOFError:
                raise ContainerError("docker build stopped without a result", hint=_tail(log)) from None
            if kind == "stream":
                lines = [line[:500] for line in payload.splitlines() if line.strip()]
                log.extend(lines)
                step_images += [m.group(1) for line in lines if (m := STEP_IMAGE.fullmatch(line.strip()))]
            elif kind == "id":
                image_id = payload
            elif kind == "error":
                raise ContainerError(
                    f"docker build failed: {payload.strip()[:1000]}",
                    hint="read the end of the build log below; fix the Dockerfile step it names\n" + _tail(log),
                )
            elif kind == "failed":
                raise ContainerError(f"docker build could not run: {payload}", hint=_tail(log))
            elif kind == "done":
                break
    finally:
        if builder.is_alive():
            builder.kill()
        builder.join(10)
        receiver.close()
    image = client().images.get(image_id or tag)
    return BuildResult(
        tag=tag,
        image_id=image.id,
        seconds=time.perf_counter() - started,
        size_bytes=int(image.attrs.get("Size", 0)),
        layers=len(image.history()),
        log_tail=_tail(log),
        step_images=tuple(dict.fromkeys(step_images)),
    )


def _stream_build(sender, context: str, tag: str, options: dict) -> None:
    """In the build's child process: stream the engine's build messages to the parent."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides, and kills this process
    try:
        engine = client()
        for chunk in engine.api.build(path=context, tag=tag, rm=True, forcerm=True, decode=True, **options):
            if "stream" in chunk:
                sender.send(("stream", str(chunk["stream"])[:4000]))
            if "error" in chunk:
                sender.send(("error", str(chunk["error"])[:4000]))
                return
            if "aux" in chunk and "ID" in chunk["aux"]:
                sender.send(("id", str(chunk["aux"]["ID"])))
        sender.send(("done", ""))
    except Exception as error:  # engine errors such as an unreadable context
        sender.send(("failed", f"{type(error).__name__}: {error}"[:2000]))
    finally:
        sender.close()


@contextlib.contextmanager
def wheelhouse_server(directory: Path, port: int, image: str = BASE_IMAGE) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1:``port`` inside a container with no network but its own
    loopback; yield the ``network_mode`` under which a build's RUN steps share that loopback: they
    reach the wheelhouse and nothing else (no host service, no other address)."""
    engine = client()
    container = engine.containers.run(
        image,
        ["python3", "-u", "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", "/wheelhouse"],
        detach=True,
        network_mode="none",
        volumes={str(directory): {"bind": "/wheelhouse", "mode": "ro"}},
        labels={LABEL: "1", OWNER_LABEL: str(os.getpid())},
        **HELPER_CONFINEMENT,
    )
    try:
        deadline = time.monotonic() + 30
        while b"Serving HTTP" not in container.logs() and time.monotonic() < deadline:
            interrupts.raise_if_interrupted()
            container.reload()
            if container.status not in ("created", "running"):
                raise ContainerError(
                    f"the wheelhouse server stopped: {container.logs(tail=5).decode(errors='replace')}"
                )
            time.sleep(0.1)
        yield f"container:{container.id}"
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


@dataclass(frozen=True)
class RunLimits:
    """The confinement every graded container runs under: what a production platform would
    impose (Kubernetes limits, a restricted security context), so a service that only works with
    more fails here, with a reason, rather than in step 07. Instructors can loosen the sizes."""

    memory_bytes: int = 3 * 1024**3
    cpus: float = 2.0
    pids: int = 256
    tmpfs: str = "/tmp"

    @classmethod
    def from_settings(cls, settings: Settings) -> RunLimits:
        return cls(memory_bytes=settings.container_memory, cpus=settings.container_cpus, pids=settings.container_pids)

    @property
    def memory(self) -> str:
        return f"{self.memory_bytes / 1024**3:g}g" if self.memory_bytes % 1024**2 == 0 else str(self.memory_bytes)

    def run_kwargs(self, engine_cpus: int) -> dict:
        return {
            "mem_limit": self.memory_bytes,
            "memswap_limit": self.memory_bytes,  # no swap on top: the cap is the cap
            "nano_cpus": int(min(self.cpus, engine_cpus) * 1e9),  # the engine refuses more than it has
            "pids_limit": self.pids,
            "read_only": True,
            "tmpfs": {self.tmpfs: "rw,size=256m"},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
        }

    def describe(self, engine_cpus: int) -> str:
        return (
            f"{self.memory} memory, {min(self.cpus, engine_cpus):g} CPUs, {self.pids} processes and threads, "
            f"read-only root with a tmpfs at {self.tmpfs}, no capabilities, no-new-privileges"
        )


@dataclass(frozen=True)
class StopResult:
    seconds: float
    exit_code: int
    oom_killed: bool
    logs: str


def _read_bounded(response, deadline: float) -> None:
    """Read ``response``'s body (streamed) up to the limit and the deadline, whichever comes first."""
    body = bytearray()
    response.truncated = False
    try:
        # read1: whatever has arrived, so the deadline is looked at even while an answer drips in.
        while chunk := response.raw.read1(65536, decode_content=True):
            body += chunk
            if len(body) > RESPONSE_LIMIT_BYTES or time.monotonic() > deadline:
                response.truncated = True
                del body[RESPONSE_LIMIT_BYTES:]
                break
    finally:
        response.close()
    response._content = bytes(body)
    response._content_consumed = True


@dataclass
class RunningService:
    """A started container, reached through its relay's port on 127.0.0.1."""

    base_url: str
    container_id: str
    relay_id: str = ""
    figures: dict[str, str] = field(default_factory=dict)
    weights_seed: int | None = None  # the seed of the grader's weights file it loads, when one was given
    environment: dict[str, str] = field(default_factory=dict)  # what the grader set, beyond the image's own
    _container: object = None
    _stopped: StopResult | None = None

    def request(self, method: str, path: str, *, session=None, **kwargs):
        """An HTTP request to the service, read with bounds: at most RESPONSE_LIMIT_BYTES of the
        body (the rest is dropped and ``response.truncated`` set) and REQUEST_DEADLINE_SECONDS in
        all. It honours a 503's Retry-After for a little while, as a well-behaved client does:
        with several workers, /ready may speak for one that is done loading while the next request
        reaches one that is not."""
        import requests

        kwargs.setdefault("timeout", (10, 30))
        deadline = time.monotonic() + RETRY_AFTER_BUDGET_SECONDS
        while True:
            response = (session or requests).request(method, self.base_url + path, stream=True, **kwargs)
            _read_bounded(response, time.monotonic() + REQUEST_DEADLINE_SECONDS)
            retry_after = response.headers.get("Retry-After", "")
            if response.status_code != 503 or not retry_after.isdigit() or time.monotonic() > deadline:
                return response
            time.sleep(min(int(retry_after), 2))

    def logs(self, lines: int = LOG_TAIL_LINES) -> str:
        raw = self._container.get_wrapped_container().logs(tail=lines)
        return raw.decode(errors="replace")

    def state(self) -> dict:
        """The engine's view: Status, ExitCode, OOMKilled, Health..."""
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        return wrapped.attrs.get("State", {})

    def running(self) -> bool:
        return self.state().get("Status") == "running"

    def memory_bytes(self) -> int:
        """Memory the container uses now, as the engine counts it for its limit, less the page
        cache the kernel can drop (what `docker stats` shows)."""
        wrapped = self._container.get_wrapped_container()
        stats = wrapped.client.api.stats(wrapped.id, stream=False, one_shot=True).get("memory_stats") or {}
        detail = stats.get("stats") or {}
        cache = detail.get("inactive_file", detail.get("total_inactive_file", 0))
        return max(int(stats.get("usage") or 0) - int(cache or 0), 0)

    def configured_user(self) -> str:
        """USER as the image's configuration says it ('' means root)."""
        return self._container.get_wrapped_container().image.attrs["Config"].get("User") or ""

    def process_uids(self) -> dict[int, tuple[str, str]]:
        """(UID, command) of every process in the container, by PID, read by the engine (docker top)."""
        top = self._container.get_wrapped_container().top(ps_args="-o pid,uid,comm")
        titles = [title.upper() for title in top["Titles"]]
        pid, uid, command = titles.index("PID"), titles.index("UID"), titles.index("COMMAND")
        return {int(row[pid]): (row[uid], row[command]) for row in top["Processes"] or []}

    def read_only_root_trouble(self) -> str:
        """READ_ONLY_ROOT_HINT when the logs show writes to the read-only root, else ''."""
        try:
            line = read_only_root_write(self.logs(lines=200))
        except Exception:
            return ""
        return f"{line}: {READ_ONLY_ROOT_HINT}" if line else ""

    def stop(self, grace: float) -> StopResult:
        """``docker stop``: SIGTERM, then SIGKILL after ``grace`` seconds. Once only; later calls
        return the first result."""
        if self._stopped is None:
            wrapped = self._container.get_wrapped_container()
            started = time.perf_counter()
            wrapped.stop(timeout=int(grace))
            wrapped.wait(timeout=grace + 30)
            seconds = time.perf_counter() - started
            state = self.state()
            self._stopped = StopResult(
                seconds=seconds,
                exit_code=int(state.get("ExitCode", -1)),
                oom_killed=bool(state.get("OOMKilled")),
                logs=self.logs(lines=10),
            )
        return self._stopped


# A service that listens, but not where it should, is told so after this long instead of
# waiting out the start-up timeout (a model may load before the port opens: give it a moment).
WRONG_LISTENER_GRACE_SECONDS = 8.0
SOCKET_LOOK_INTERVAL_SECONDS = 2.0


def listening_sockets(wrapped) -> set[tuple[str, int]]:
    """The (address, port) pairs a container listens on, read from its /proc/net/tcp{,6}."""
    return parse_proc_net_tcp(
        wrapped.exec_run(["cat", "/proc/net/tcp", "/proc/net/tcp6"]).output.decode(errors="replace")
    )


def parse_proc_net_tcp(text: str) -> set[tuple[str, int]]:
    """Listening sockets from the kernel's /proc/net/tcp and tcp6 tables (addresses in hex)."""
    sockets = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != "0A":  # 0A: LISTEN (header lines say "st")
            continue
        address, _, port = fields[1].partition(":")
        if len(address) == 8:  # IPv4, little-endian
            ip = ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
        else:
            ip = "::" if set(address) == {"0"} else ("::1" if address == "0" * 24 + "01000000" else "ipv6")
        sockets.add((ip, int(port, 16)))
    return sockets


# Docker's embedded DNS server, which listens in every container on a user-defined network.
DOCKER_DNS = "127.0.0.11"


def wrong_listener(sockets: set[tuple[str, int]], port: int) -> str:
    """Why a client outside the container cannot reach ``port``, or '' when nothing is wrong."""
    sockets = {(ip, p) for ip, p in sockets if ip != DOCKER_DNS}
    on_port = {ip for ip, p in sockets if p == port}
    if on_port and on_port <= {"127.0.0.1", "::1"}:
        return (
            f"the service listens on {sorted(on_port)[0]}:{port}, the container's own loopback, which "
            f"nothing outside the container can reach: bind 0.0.0.0:{port}"
        )
    if sockets and not on_port:
        elsewhere = ", ".join(f"{ip}:{p}" for ip, p in sorted(sockets))
        return f"the service listens on {elsewhere}, not on port {port}: the course's contract is port {port}"
    return ""


# A TCP relay, run in the course's base image: the only way into a graded container. It accepts on
# RELAY_PORT and connects each client to the service on the internal network, both directions,
# half-closes passed on; no connection lives longer than RELAY_CONNECTION_SECONDS (120 s): an answer
# that trickles in a byte at a time would otherwise hold the grader past every read timeout.
RELAY_SCRIPT = """
import asyncio, os
HOST, PORT = os.environ["TARGET_HOST"], int(os.environ["TARGET_PORT"])
LIFETIME = float(os.environ.get("RELAY_CONNECTION_SECONDS", "120"))

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()

async def handle(client_reader, client_writer):
    try:
        service_reader, service_writer = await asyncio.open_connection(HOST, PORT)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.wait_for(
            asyncio.gather(pipe(client_reader, service_writer), pipe(service_reader, client_writer)), LIFETIME
        )
    except asyncio.TimeoutError:
        pass  # an answer that trickles in never holds the grader past its connection's lifetime
    for writer in (client_writer, service_writer):
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", int(os.environ["RELAY_PORT"]))
    print("relaying", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def _wait_until_ready(service, base_url: str, port: int, path: str, timeout: float) -> None:
    """Poll ``path`` until it answers 200; give up at once when the container has exited, soon
    when it listens on the wrong port or address, and at ``timeout`` otherwise (TimeoutError)."""
    import requests

    wrapped = service.get_wrapped_container()
    deadline = time.monotonic() + timeout
    next_socket_look = time.monotonic() + WRONG_LISTENER_GRACE_SECONDS
    while True:
        interrupts.raise_if_interrupted()
        wrapped.reload()
        if wrapped.status in ("exited", "dead"):
            state = wrapped.attrs.get("State", {})
            killed = " (killed: it used more memory than its limit)" if state.get("OOMKilled") else ""
            raise ContainerError(
                f"the container exited with status {state.get('ExitCode')}{killed} before {path} answered",
                hint=log_excerpt(wrapped.logs(tail=400).decode(errors="replace")),
            )
        if time.monotonic() >= next_socket_look:
            # An exec in the container: every few polls, not on each one.
            next_socket_look = time.monotonic() + SOCKET_LOOK_INTERVAL_SECONDS
            try:
                wrong = wrong_listener(listening_sockets(wrapped), port)
            except Exception:  # an image without cat: wait for the time-out instead
                wrong = ""
            if wrong:
                raise ContainerError(
                    f"{path} cannot be reached: {wrong}",
                    hint=f"EXPOSE {port} in the Dockerfile, and bind the server to 0.0.0.0:{port}",
                )
        with contextlib.suppress(requests.RequestException):
            if requests.get(base_url + path, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.25)


@contextlib.contextmanager
def run_service(
    image: str,
    *,
    port: int = 5000,
    env: dict[str, str] | None = None,
    files: dict[str, Path] | None = None,
    ready_path: str = "/health",
    startup_timeout: float | None = None,
    limits: RunLimits | None = None,
    relay_image: str = BASE_IMAGE,
) -> Iterator[RunningService]:
    """Start ``image`` under ``limits`` on a network with no way out, with ``files`` (container
    path -> host file) mounted read-only; wait until ``ready_path`` answers 200 through the relay;
    yield it. The containers and the network are removed whatever happens."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

    engine = client()  # a clear DockerUnavailable before testcontainers' own errors
    settings = current()
    limits = limits or RunLimits.from_settings(settings)
    startup_timeout = startup_timeout or settings.startup_timeout
    engine_cpus = int(engine.info().get("NCPU") or 1)
    run_id = uuid.uuid4().hex
    labels = {LABEL: "1", RUN_LABEL: run_id, OWNER_LABEL: str(os.getpid())}
    confinement = limits.run_kwargs(engine_cpus)
    tmpfs = confinement.pop("tmpfs")  # testcontainers passes its own tmpfs argument
    from docker.types import LogConfig

    network = Network(docker_network_kw={"internal": True, "labels": labels})
    container = (
        DockerContainer(image)
        .with_envs(**(env or {}))
        .with_network(network)
        .with_network_aliases(SERVICE_ALIAS)
        .with_kwargs(labels=labels, log_config=LogConfig(type="json-file", config=LOG_OPTIONS), **confinement)
    )
    for target, source in (files or {}).items():
        container.with_volume_mapping(str(source), target, "ro")
    container.tmpfs = tmpfs
    relay = (
        DockerContainer(relay_image)
        .with_command(["python3", "-c", RELAY_SCRIPT])
        .with_envs(TARGET_HOST=SERVICE_ALIAS, TARGET_PORT=str(port), RELAY_PORT=str(RELAY_PORT))
        .with_kwargs(labels=labels, **HELPER_CONFINEMENT)
    )
    # testcontainers can only publish on every interface; ours go to 127.0.0.1, on a free port.
    relay.ports = {RELAY_PORT: ("127.0.0.1",)}
    started = time.perf_counter()
    try:
        network.create()
        try:
            container.start()
            relay.start()
            network.connect(relay.get_wrapped_container().id)
            base_url = f"http://127.0.0.1:{relay.get_exposed_port(RELAY_PORT)}"
            _wait_until_ready(container, base_url, port, ready_path, startup_timeout)
        except ContainerError as error:
            raise _with_read_only_hint(error, container) from error
        except TimeoutError as error:
            raise _with_read_only_hint(
                ContainerError(
                    f"the container did not answer {ready_path} with 200 within {startup_timeout:.0f} s"
                    + _liveness_note(base_url, ready_path),
                    hint=f"check that the service listens on 0.0.0.0:{port} and that start-up finishes; "
                    + log_excerpt(_container_logs(container, lines=400)),
                ),
                container,
            ) from error
        except (KeyboardInterrupt, DockerUnavailable):
            raise
        except Exception as error:
            raise ContainerError(f"the container could not start: {error}") from error
        service = RunningService(
            base_url=base_url,
            container_id=container.get_wrapped_container().id,
            relay_id=relay.get_wrapped_container().id,
            figures={
                "startup_seconds": f"{time.perf_counter() - started:.1f}",
                "limits": limits.describe(engine_cpus) + "; no network but the grader's relay",
            },
            _container=container,
        )
        yield service
    finally:
        # Runs on success, failure, timeout and KeyboardInterrupt alike. Found by label, in case
        # the interrupt came between the engine creating something and testcontainers noting it.
        remove_labelled(RUN_LABEL, run_id)


def _liveness_note(base_url: str, ready_path: str) -> str:
    """When the ready path never said 200: is the service alive at all, and what did it say?"""
    import requests

    try:
        health = requests.get(base_url + "/health", timeout=5)
        ready = requests.get(base_url + ready_path, timeout=5)
    except Exception:
        return "; nothing answered on the port at all"
    if health.status_code == 200 and ready_path != "/health":
        return (
            f"; /health answers 200, so the server is up, but {ready_path} still says "
            f"{ready.status_code} {ready.text[:200]}: the model never finished loading"
        )
    return f"; {ready_path} answered {ready.status_code} {ready.text[:200]}"


def read_only_root_write(logs: str) -> str:
    """The log line that shows a write to the read-only root filesystem, or ''."""
    return next((line.strip() for line in logs.splitlines() if any(sign in line for sign in READ_ONLY_ROOT_SIGNS)), "")


def _with_read_only_hint(error: ContainerError, container) -> ContainerError:
    line = read_only_root_write(_container_logs(container, lines=200))
    if not line:
        return error
    return ContainerError(
        f"{error.message}; it tried to write to its read-only root filesystem ({line})",
        hint=READ_ONLY_ROOT_HINT + "\n" + error.hint,
    )


def run_once(image: str, command: list[str] | None = None, *, user: str | None = None) -> tuple[int, str]:
    """Run a container to completion and remove it; return its exit status and output."""
    engine = client()
    container = engine.containers.create(
        image, command=command, user=user, labels={LABEL: "1", OWNER_LABEL: str(os.getpid())}
    )
    try:
        container.start()
        status = container.wait(timeout=300).get("StatusCode", -1)
        return status, container.logs().decode(errors="replace")
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


def run_tool(
    image: str,
    argv: list[str],
    *,
    mounts: dict[str, Path] | None = None,
    entrypoint: str | None = None,
    working_dir: str | None = None,
    timeout: float = 60.0,
    output_limit: int = 64 * 1024,
) -> tuple[int, str]:
    """Run a tool of the course's own (promtool in the Prometheus image) on learner files: the
    files mounted read-only (container path -> host path), no network, the helpers' confinement,
    a deadline. Returns (exit status, the end of its output); the container is removed."""
    engine = client()
    container = engine.containers.create(
        image,
        command=argv,
        entrypoint=entrypoint,
        working_dir=working_dir,
        network_mode="none",
        tmpfs={"/tmp": "rw,size=64m"},  # promtool's rule tests keep a database there
        volumes={str(host): {"bind": inside, "mode": "ro"} for inside, host in (mounts or {}).items()},
        labels={LABEL: "1", OWNER_LABEL: str(os.getpid())},
        log_config={"type": "json-file", "config": LOG_OPTIONS},
        **HELPER_CONFINEMENT,
    )
    try:
        container.start()
        try:
            status = container.wait(timeout=timeout).get("StatusCode", -1)
        except Exception:  # the deadline (requests' ReadTimeout, ConnectionError...)
            return -1, f"did not finish in {timeout:.0f} s"
        output = container.logs().decode(errors="replace")
        return status, output[-output_limit:]
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True, v=True)


def engine_cpus() -> int:
    return int(client().info().get("NCPU") or 1)


@dataclass(frozen=True)
class ContainerState:
    """One container as the engine lists it: read in one call, so a container removed meanwhile
    is simply absent (never an error half-way)."""

    id: str
    labels: dict
    state: str  # created, running, exited, dead...
    health: str  # healthy, unhealthy, starting, or '' without a healthcheck
    exit_code: int | None
    published: dict[int, tuple[str, int]]  # container port -> (host address, host port)


_EXITED = re.compile(r"Exited \((-?\d+)\)")


def labelled_states(label: str, value: str) -> list[ContainerState]:
    """Every container labelled ``label=value`` (a compose project's), as the engine lists them."""
    found = []
    for row in client().api.containers(all=True, filters={"label": f"{label}={value}"}):
        status = str(row.get("Status") or "")
        health = next(
            (
                word
                for word in ("unhealthy", "healthy", "starting")
                if f"({word}" in status or f"health: {word}" in status
            ),
            "",
        )
        exited = _EXITED.search(status)
        published = {
            int(port["PrivatePort"]): (str(port.get("IP") or ""), int(port["PublicPort"]))
            for port in row.get("Ports") or []
            if port.get("PublicPort")
        }
        found.append(
            ContainerState(
                id=row["Id"],
                labels=row.get("Labels") or {},
                state=str(row.get("State") or ""),
                health=health,
                exit_code=int(exited.group(1)) if exited else None,
                published=published,
            )
        )
    return found


def container_logs(container_id: str, lines: int = LOG_TAIL_LINES) -> str:
    """The end of a container's logs ('' when it is gone)."""
    try:
        return client().api.logs(container_id, tail=lines).decode(errors="replace")
    except Exception:
        return ""


def container_commands(container_id: str) -> list[str]:
    """The command line of every process in a container (docker top; [] when it is gone)."""
    try:
        top = client().api.top(container_id, ps_args="-o pid,args")
    except Exception:
        return []
    titles = [title.upper() for title in top.get("Titles") or []]
    column = titles.index("COMMAND") if "COMMAND" in titles else len(titles) - 1
    return [row[column] for row in top.get("Processes") or []]


def remove_labelled(label: str, value: str) -> None:
    """Remove the containers, then the networks and volumes, labelled ``label=value``."""
    engine = client()
    for row in engine.api.containers(all=True, filters={"label": f"{label}={value}"}):
        with contextlib.suppress(Exception):
            engine.api.remove_container(row["Id"], force=True, v=True)
    for network in engine.networks.list(filters={"label": f"{label}={value}"}):
        with contextlib.suppress(Exception):
            network.remove()
    for volume in engine.volumes.list(filters={"label": f"{label}={value}"}):
        with contextlib.suppress(Exception):
            volume.remove(force=True)


def published_host_ips(container_id: str) -> set[str]:
    """The host addresses a container's ports are published on (the course uses 127.0.0.1 only)."""
    ports = client().api.inspect_container(container_id)["NetworkSettings"]["Ports"] or {}
    return {binding["HostIp"] for bindings in ports.values() if bindings for binding in bindings}


def log_excerpt(logs: str, tail: int = 5) -> str:
    """What a person needs from a failed container's logs: the first Python traceback (the cause;
    with several gunicorn workers, the master's own traceback and shutdown noise follow it) and
    the last lines."""
    lines = logs.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")), None)
    if start is None:
        return "its last log lines:\n" + "\n".join(lines[-LOG_TAIL_LINES:])
    end = next((i for i in range(start + 1, len(lines)) if lines[i][:1] not in (" ", "")), len(lines) - 1)
    first_error = lines[start : end + 1]
    if len(first_error) > 14:  # the innermost frames and the exception say the most
        first_error = [first_error[0], "  ..."] + first_error[-12:]
    return (
        "the first error in its logs:\n" + "\n".join(first_error) + "\nits last log lines:\n" + "\n".join(lines[-tail:])
    )


def _container_logs(container, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return container.get_wrapped_container().logs(tail=lines).decode(errors="replace")
    except Exception:
        return "(no logs)"


def _owner_alive(labels: dict[str, str]) -> bool:
    owner = labels.get(OWNER_LABEL, "")
    return owner.isdigit() and processes.alive(int(owner))


def remove_leftover_containers() -> list[str]:
    """Remove containers (and networks) that earlier, killed runs left behind, found by their
    owner label; never one whose grading process is still running: two gradings may share a
    machine. Containers without an owner (a build's intermediate containers, which inherit the
    base image's label) belong to the engine's build, which removes them itself."""
    engine = client()
    removed = []
    # The low-level listing names every container with its labels in one call: the high-level
    # one inspects each in turn and fails on one that another grading removed meanwhile.
    for row in engine.api.containers(all=True, filters={"label": OWNER_LABEL}):
        if _owner_alive(row.get("Labels") or {}):
            continue
        with contextlib.suppress(Exception):
            engine.api.remove_container(row["Id"], force=True, v=True)
            removed.append(row["Id"][:12])
    for network in engine.networks.list(filters={"label": OWNER_LABEL}):
        if not _owner_alive(network.attrs.get("Labels") or {}):
            with contextlib.suppress(Exception):
                network.remove()
    for volume in engine.volumes.list(filters={"label": OWNER_LABEL}):  # a compose stack's (step 06)
        if not _owner_alive(volume.attrs.get("Labels") or {}):
            with contextlib.suppress(Exception):
                volume.remove(force=True)
    return removed


def labelled_containers(owner_pid: int | None = None) -> list[str]:
    """Containers the autograder made (all of them, or those of one grading process)."""
    label = f"{OWNER_LABEL}={owner_pid}" if owner_pid is not None else LABEL
    return [row["Id"][:12] for row in client().api.containers(all=True, filters={"label": label})]


GRADED_REPOSITORY = "resnet-course/graded"


def prune_images(
    keep: int = IMAGE_CACHE_KEEP, protect: set[str] = frozenset(), last_used: dict[str, float] | None = None
) -> list[str]:
    """Remove all but the ``keep`` most recently used images the autograder built, and all but the
    ``keep`` newest build stages they left (stand-in base images excepted), never those in
    ``protect``. An image's recency is when it was built or, if later, ``last_used[id]``.

    The low-level listing is used on purpose: it names every image in one call, where the
    high-level one inspects each in turn and fails on one that another grading removed meanwhile."""
    api = client().api
    last_used = last_used or {}

    def recency(image: dict) -> float:
        used = last_used.get(image["Id"]) or last_used.get(image["Id"].removeprefix("sha256:")[:12]) or 0
        return max(float(image.get("Created") or 0), float(used))

    # Builds inherit their base image's labels, the stand-in's included: tell the base image
    # apart by its tag, and prune only what grading built.
    graded = [
        image
        for image in api.images(filters={"label": LABEL})
        if any(tag.startswith(GRADED_REPOSITORY + ":") for tag in image.get("RepoTags") or [])
    ]
    # The build stages of multi-stage Dockerfiles stay behind untagged (the legacy builder keeps
    # them as cache): each is gigabytes, so they get the same bound.
    stages = api.images(filters={"label": LABEL, "dangling": True})
    removed = []
    for image in sorted(stages, key=recency, reverse=True)[keep:]:
        if image["Id"] not in protect:
            with contextlib.suppress(Exception):
                api.remove_image(image["Id"])
                removed.append(image["Id"][7:19])
    for image in sorted(graded, key=recency, reverse=True)[keep:]:
        if image["Id"] in protect:
            continue
        # Untag rather than delete by id: an image that is the parent of a newer build (a
        # variant that adds a layer) cannot be deleted by id, even forced; once untagged, the
        # engine drops its layers as soon as no image needs them.
        for reference in image.get("RepoTags") or [image["Id"]]:
            with contextlib.suppress(Exception):
                api.remove_image(reference, force=True)
                removed.append(reference)
    return removed


def image_id(reference: str) -> str:
    """The engine's id of ``reference``, or '' when there is no such image."""
    import docker

    try:
        return client().images.get(reference).id
    except docker.errors.ImageNotFound:
        return ""


def image_by_id(identifier: str) -> BuildResult | None:
    """A graded image the engine still has, described like a build that took no time; or None."""
    import docker

    if not identifier:
        return None
    try:
        image = client().images.get(identifier)
    except docker.errors.ImageNotFound:
        return None
    tags = [tag for tag in image.tags if tag.startswith(GRADED_REPOSITORY + ":")]
    if not tags:
        return None
    return BuildResult(
        tag=tags[0],
        image_id=image.id,
        seconds=0.0,
        size_bytes=int(image.attrs.get("Size", 0)),
        layers=len(image.history()),
        log_tail="unchanged since its last build: the image of that build is used",
    )


def image_history(identifier: str) -> tuple[str, int, list[dict]] | None:
    """(tag, size in bytes, `docker history` rows) of a graded image the engine still has, or None."""
    import docker

    try:
        image = client().images.get(identifier) if identifier else None
        if image is None:
            return None
        return next(iter(image.tags), image.short_id), int(image.attrs.get("Size", 0)), image.history()
    except docker.errors.NotFound:
        return None


def remove_image(reference: str) -> None:
    with contextlib.suppress(Exception):
        client().images.remove(reference, force=True)


def _tail(lines, count: int = LOG_TAIL_LINES) -> str:
    return "\n".join(list(lines)[-count:])
