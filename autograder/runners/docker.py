"""The only module that talks to a Docker engine: build, import, run with testcontainers, clean up.

Everything it creates carries the label ``LABEL`` so that an interrupted run's leftovers can be
found and removed by the next run, and so that old images can be pruned to a bounded cache.
testcontainers is imported here and nowhere else.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from autograder.errors import ContainerError, DockerUnavailable

LABEL = "org.resnet-course.autograder"
STAND_IN_LABEL = "org.resnet-course.stand-in"
RUN_LABEL = "org.resnet-course.run"  # one value per run_service call
OWNER_LABEL = "org.resnet-course.owner-pid"  # the grading process; its containers are swept once it is gone
IMAGE_CACHE_KEEP = 3  # labelled images kept after a run; their layers are the build cache
BUILD_TIMEOUT_SECONDS = 3600
LOG_TAIL_LINES = 25
# Offline, a registry host may not answer at all: give up on a pull after this long.
PULL_TIMEOUT_SECONDS = float(os.environ.get("COURSE_PULL_TIMEOUT", "45"))
# How long a container may take to answer its ready path (loading and warming up the model).
STARTUP_TIMEOUT_SECONDS = float(os.environ.get("COURSE_STARTUP_TIMEOUT", "180"))
# How long requests to a service that answers 503 with Retry-After are retried.
RETRY_AFTER_BUDGET_SECONDS = 20.0
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
        engine = docker.from_env(timeout=BUILD_TIMEOUT_SECONDS)
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


def pull_image(reference: str, timeout: float = PULL_TIMEOUT_SECONDS) -> bool:
    """Pull from a registry; False (never an exception) when none answers within ``timeout``."""
    import docker

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


@dataclass(frozen=True)
class BuildResult:
    tag: str
    image_id: str
    seconds: float
    size_bytes: int
    layers: int
    log_tail: str


def build_image(
    context: Path,
    tag: str,
    *,
    build_args: dict[str, str] | None = None,
    network_mode: str | None = None,
    labels: dict[str, str] | None = None,
) -> BuildResult:
    """Build ``context`` (a workspace with a Dockerfile); ContainerError with the log tail on failure."""
    context = Path(context)
    if not (context / "Dockerfile").is_file():
        raise ContainerError(
            f"there is no Dockerfile in {context}", hint="write it with the notebook's %%writefile cell"
        )
    engine = client()
    started = time.perf_counter()
    log: list[str] = []
    image_id = None
    try:
        for chunk in engine.api.build(
            path=str(context),
            tag=tag,
            rm=True,
            forcerm=True,  # remove intermediate containers even when a step fails
            decode=True,
            buildargs=build_args or {},
            network_mode=network_mode,
            labels={LABEL: "1", **(labels or {})},
        ):
            if "stream" in chunk:
                log.extend(line for line in chunk["stream"].splitlines() if line.strip())
            if "error" in chunk:
                raise ContainerError(
                    f"docker build failed: {chunk['error'].strip()}",
                    hint="read the end of the build log below; fix the Dockerfile step it names\n" + _tail(log),
                )
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    except ContainerError:
        raise
    except Exception as error:  # engine errors such as an unreadable context
        raise ContainerError(f"docker build could not run: {error}", hint=_tail(log)) from error
    image = engine.images.get(image_id or tag)
    return BuildResult(
        tag=tag,
        image_id=image.id,
        seconds=time.perf_counter() - started,
        size_bytes=int(image.attrs.get("Size", 0)),
        layers=len(image.history()),
        log_tail=_tail(log),
    )


@dataclass(frozen=True)
class RunLimits:
    """The confinement every graded container runs under: what a production platform would
    impose (Kubernetes limits, a restricted security context), so a service that only works with
    more fails here, with a reason, rather than in step 07. Instructors can loosen the sizes."""

    memory: str = os.environ.get("COURSE_CONTAINER_MEMORY", "3g")
    cpus: float = float(os.environ.get("COURSE_CONTAINER_CPUS", "2"))
    pids: int = int(os.environ.get("COURSE_CONTAINER_PIDS", "256"))
    tmpfs: str = "/tmp"

    def run_kwargs(self, engine_cpus: int) -> dict:
        return {
            "mem_limit": self.memory,
            "memswap_limit": self.memory,  # no swap on top: the cap is the cap
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


@dataclass
class RunningService:
    """A started container with its port published on 127.0.0.1."""

    base_url: str
    container_id: str
    figures: dict[str, str] = field(default_factory=dict)
    _container: object = None
    _stopped: StopResult | None = None

    def request(self, method: str, path: str, **kwargs):
        """An HTTP request to the service that honours a 503's Retry-After for a little while, as a
        well-behaved client does: with several workers, /ready may speak for one that is done
        loading while the next request reaches one that is not."""
        import requests

        kwargs.setdefault("timeout", 60)
        deadline = time.monotonic() + RETRY_AFTER_BUDGET_SECONDS
        while True:
            response = requests.request(method, self.base_url + path, **kwargs)
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


def wrong_listener(sockets: set[tuple[str, int]], port: int) -> str:
    """Why a client outside the container cannot reach ``port``, or '' when nothing is wrong."""
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


def _ready_or_exited_strategy(port: int, path: str, timeout: float):
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    class ReadyOrExited(HttpWaitStrategy):
        """HttpWaitStrategy that gives up at once when the container has exited, and soon when
        it listens on the wrong port or address."""

        def wait_until_ready(self, container):
            self._target = container
            self._next_socket_look = time.monotonic() + WRONG_LISTENER_GRACE_SECONDS
            return super().wait_until_ready(container)

        def _try_http_request(self, url, headers, ssl_context):
            wrapped = self._target.get_wrapped_container()
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                state = wrapped.attrs.get("State", {})
                killed = " (killed: it used more memory than its limit)" if state.get("OOMKilled") else ""
                raise ContainerError(
                    f"the container exited with status {state.get('ExitCode')}{killed} before {path} answered",
                    hint=log_excerpt(wrapped.logs(tail=400).decode(errors="replace")),
                )
            if time.monotonic() >= self._next_socket_look:
                # An exec in the container: every few polls, not on each one.
                self._next_socket_look = time.monotonic() + SOCKET_LOOK_INTERVAL_SECONDS
                try:
                    wrong = wrong_listener(listening_sockets(wrapped), port)
                except Exception:  # an image without cat: wait for the time-out instead
                    wrong = ""
                if wrong:
                    raise ContainerError(
                        f"{path} cannot be reached: {wrong}",
                        hint=f"EXPOSE {port} in the Dockerfile, and bind the server to 0.0.0.0:{port}",
                    )
            return super()._try_http_request(url, headers, ssl_context)

    return ReadyOrExited(port, path).for_status_code(200).with_startup_timeout(timeout).with_poll_interval(0.5)


@contextlib.contextmanager
def run_service(
    image: str,
    *,
    port: int = 5000,
    env: dict[str, str] | None = None,
    ready_path: str = "/health",
    startup_timeout: float | None = None,
    limits: RunLimits | None = None,
) -> Iterator[RunningService]:
    """Start ``image`` under ``limits``, wait until ``ready_path`` answers 200, yield it; always
    remove the container."""
    from testcontainers.core.container import DockerContainer

    engine = client()  # a clear DockerUnavailable before testcontainers' own errors
    limits = limits or RunLimits()
    startup_timeout = startup_timeout or STARTUP_TIMEOUT_SECONDS
    engine_cpus = int(engine.info().get("NCPU") or 1)
    run_id = uuid.uuid4().hex
    confinement = limits.run_kwargs(engine_cpus)
    tmpfs = confinement.pop("tmpfs")  # testcontainers passes its own tmpfs argument
    container = (
        DockerContainer(image)
        .with_envs(**(env or {}))
        .with_kwargs(labels={LABEL: "1", RUN_LABEL: run_id, OWNER_LABEL: str(os.getpid())}, **confinement)
        .waiting_for(_ready_or_exited_strategy(port, ready_path, startup_timeout))
    )
    container.tmpfs = tmpfs
    # testcontainers can only publish on every interface; ours go to 127.0.0.1, on a free port.
    container.ports = {port: ("127.0.0.1",)}
    started = time.perf_counter()
    try:
        try:
            container.start()
        except ContainerError as error:
            raise _with_read_only_hint(error, container) from error
        except TimeoutError as error:
            raise _with_read_only_hint(
                ContainerError(
                    f"the container did not answer {ready_path} with 200 within {startup_timeout:.0f} s"
                    + _liveness_note(container, port, ready_path),
                    hint=f"check that the service listens on 0.0.0.0:{port} and that start-up finishes; "
                    + log_excerpt(_container_logs(container, lines=400)),
                ),
                container,
            ) from error
        except Exception as error:
            raise ContainerError(f"the container could not start: {error}") from error
        host_port = container.get_exposed_port(port)
        service = RunningService(
            base_url=f"http://127.0.0.1:{host_port}",
            container_id=container.get_wrapped_container().id,
            figures={
                "startup_seconds": f"{time.perf_counter() - started:.1f}",
                "limits": limits.describe(engine_cpus),
            },
            _container=container,
        )
        yield service
    finally:
        # Runs on success, failure, timeout and KeyboardInterrupt alike. Found by label too, in case
        # the interrupt came between the engine creating the container and testcontainers noting it.
        with contextlib.suppress(Exception):
            container.stop(force=True, delete_volume=True)
        for leftover in engine.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}):
            with contextlib.suppress(Exception):
                leftover.remove(force=True, v=True)


def _liveness_note(container, port: int, ready_path: str) -> str:
    """When the ready path never said 200: is the service alive at all, and what did it say?"""
    import requests

    try:
        base = f"http://127.0.0.1:{container.get_exposed_port(port)}"
        health = requests.get(base + "/health", timeout=5)
        ready = requests.get(base + ready_path, timeout=5)
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
    container = engine.containers.create(image, command=command, user=user, labels={LABEL: "1"})
    try:
        container.start()
        status = container.wait(timeout=300).get("StatusCode", -1)
        return status, container.logs().decode(errors="replace")
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


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
    try:
        pid = int(labels.get(OWNER_LABEL, ""))
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return pid != 0


def remove_leftover_containers() -> list[str]:
    """Remove containers that earlier, killed runs left behind (found by label), but never one whose
    grading process is still running: two gradings may share a machine."""
    removed = []
    for container in client().containers.list(all=True, filters={"label": LABEL}):
        if _owner_alive(container.labels or {}):
            continue
        with contextlib.suppress(Exception):
            container.remove(force=True, v=True)
            removed.append(container.short_id)
    return removed


def labelled_containers() -> list[str]:
    return [c.short_id for c in client().containers.list(all=True, filters={"label": LABEL})]


GRADED_REPOSITORY = "resnet-course/graded"


def prune_images(keep: int = IMAGE_CACHE_KEEP) -> list[str]:
    """Remove all but the ``keep`` newest images the autograder built, and all but the ``keep``
    newest build stages they left (stand-in base images excepted)."""
    engine = client()
    # Builds inherit their base image's labels, the stand-in's included: tell the base image
    # apart by its tag, and prune only what grading built.
    images = [
        image
        for image in engine.images.list(all=False, filters={"label": LABEL})
        if any(tag.startswith(GRADED_REPOSITORY + ":") for tag in image.tags)
    ]
    # The build stages of multi-stage Dockerfiles stay behind untagged (the legacy builder keeps
    # them as cache): each is gigabytes, so they get the same bound.
    stages = engine.images.list(filters={"label": LABEL, "dangling": True})
    newest_first = lambda group: sorted(group, key=lambda image: image.attrs.get("Created", ""), reverse=True)  # noqa: E731
    removed = []
    for image in newest_first(stages)[keep:]:
        with contextlib.suppress(Exception):
            engine.images.remove(image.id)
            removed.append(image.short_id)
    for image in newest_first(images)[keep:]:
        # Untag rather than delete by id: an image that is the parent of a newer build (a
        # variant that adds a layer) cannot be deleted by id, even forced; once untagged, the
        # engine drops its layers as soon as no image needs them.
        for reference in image.tags or [image.id]:
            with contextlib.suppress(Exception):
                engine.images.remove(reference, force=True)
                removed.append(reference)
    return removed


def remove_image(reference: str) -> None:
    with contextlib.suppress(Exception):
        client().images.remove(reference, force=True)


def _tail(lines: list[str], count: int = LOG_TAIL_LINES) -> str:
    return "\n".join(lines[-count:])
