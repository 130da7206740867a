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


@dataclass
class RunningService:
    """A started container with its port published on 127.0.0.1."""

    base_url: str
    container_id: str
    figures: dict[str, str] = field(default_factory=dict)
    _container: object = None

    def request(self, method: str, path: str, **kwargs):
        import requests

        kwargs.setdefault("timeout", 60)
        return requests.request(method, self.base_url + path, **kwargs)

    def logs(self, lines: int = LOG_TAIL_LINES) -> str:
        raw = self._container.get_wrapped_container().logs(tail=lines)
        return raw.decode(errors="replace")


def _ready_or_exited_strategy(port: int, path: str, timeout: float):
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    class ReadyOrExited(HttpWaitStrategy):
        """HttpWaitStrategy that gives up at once when the container has exited."""

        def wait_until_ready(self, container):
            self._target = container
            return super().wait_until_ready(container)

        def _try_http_request(self, url, headers, ssl_context):
            wrapped = self._target.get_wrapped_container()
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                code = wrapped.attrs.get("State", {}).get("ExitCode")
                raise ContainerError(
                    f"the container exited with status {code} before {path} answered",
                    hint="its last log lines:\n" + wrapped.logs(tail=LOG_TAIL_LINES).decode(errors="replace"),
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
    startup_timeout: float = 180,
) -> Iterator[RunningService]:
    """Start ``image``, wait until ``ready_path`` answers 200, yield it; always remove the container."""
    from testcontainers.core.container import DockerContainer

    engine = client()  # a clear DockerUnavailable before testcontainers' own errors
    run_id = uuid.uuid4().hex
    container = (
        DockerContainer(image)
        .with_envs(**(env or {}))
        .with_kwargs(labels={LABEL: "1", RUN_LABEL: run_id, OWNER_LABEL: str(os.getpid())})
        .waiting_for(_ready_or_exited_strategy(port, ready_path, startup_timeout))
    )
    # testcontainers can only publish on every interface; ours go to 127.0.0.1, on a free port.
    container.ports = {port: ("127.0.0.1",)}
    started = time.perf_counter()
    try:
        try:
            container.start()
        except ContainerError:
            raise
        except TimeoutError as error:
            raise ContainerError(
                f"the container did not answer {ready_path} with 200 within {startup_timeout:.0f} s",
                hint=f"check that the service listens on 0.0.0.0:{port} and that start-up finishes; last logs:\n"
                + _container_logs(container),
            ) from error
        except Exception as error:
            raise ContainerError(f"the container could not start: {error}") from error
        host_port = container.get_exposed_port(port)
        service = RunningService(
            base_url=f"http://127.0.0.1:{host_port}",
            container_id=container.get_wrapped_container().id,
            figures={"startup_seconds": f"{time.perf_counter() - started:.1f}"},
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


def _container_logs(container) -> str:
    try:
        return container.get_wrapped_container().logs(tail=LOG_TAIL_LINES).decode(errors="replace")
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
