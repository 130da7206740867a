"""One table of the facts every artifact must agree on, as each states it, with every disagreement named.

A port, a health path or an upload limit written in six places drifts: the Dockerfile exposes
5000, the manifest probes 8080, and the deployment fails at three in the morning. Each column
is read the way the tool that uses the artifact reads it: the service's configuration as its own
code resolves it (a probe in the sandbox), gunicorn's as ``gunicorn --print-config`` resolves
it (also in the sandbox), the compose file as Compose normalised it, the manifests as kustomize
rendered them. Sources a workspace does not have yet are left out, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from autograder.checks import compose_model, dockerfile, kubernetes
from autograder.checks.context import Context, Unavailable, WorkspaceFileProblem
from autograder.checks.kubernetes import dig, listing, mapping

# The paths the service serves (step 03's contract): liveness, readiness.
HEALTH_PATH, READY_PATH = "/health", "/ready"
SERVED_PATHS = ("/", HEALTH_PATH, READY_PATH, "/predict", "/metrics", "/openapi.json")
# Variables a deployment may set that the service's libraries read, not its own configuration.
LIBRARY_VARIABLES = {
    "PROMETHEUS_MULTIPROC_DIR": "prometheus_client's multiprocess mode",
    "WEB_CONCURRENCY": "gunicorn",
    "GUNICORN_CMD_ARGS": "gunicorn",
    "PYTHONUNBUFFERED": "Python",
    "PYTHONDONTWRITEBYTECODE": "Python",
    "TORCH_HOME": "PyTorch",
    "OMP_NUM_THREADS": "PyTorch",
}
_MEBI = 1024**2


@dataclass
class Fact:
    """One row: what each source says (source -> value as text), and what is wrong with it."""

    name: str
    values: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # The check of the step that grades this fact already (its points are not taken twice).
    graded_by: str = ""

    def statements(self) -> str:
        return " · ".join(f"{source} {value}" for source, value in self.values.items()) or "stated nowhere yet"

    def line(self) -> str:
        """The row as the report shows it: ✗ when the sources disagree, ✓ when several agree."""
        mark = "✗ " if self.problems else "✓ " if len(self.values) > 1 else ""
        return mark + self.statements()


# ---------------------------------------------------------------------------------------------
# What each source says (each returns None where the source does not exist or cannot be read)


def settings_of(ctx: Context, environ: dict[str, str]) -> dict | None:
    """``Settings.from_env(environ)`` as the learner's service/config.py answers it, in the sandbox:
    {"raised", "settings" or "problems", "asked", "listed"}; None when it cannot run."""
    key = "settings:" + repr(sorted(environ.items()))

    def make() -> dict | None:
        answer, _ = ctx.probe(
            "step02_configuration:settings_of", {"environ": environ}, files=("service/config.py",), timeout=60
        )
        return answer if isinstance(answer, dict) else None

    return ctx.once(key, make)


def gunicorn_settings(ctx: Context, environ: dict[str, str]) -> dict | None:
    """gunicorn's settings as it resolves gunicorn.conf.py (learner code: in the sandbox) with
    ``environ``: {"bind", "workers", "threads", "timeout", "graceful_timeout"}; None when it fails."""
    key = "gunicorn:" + repr(sorted(environ.items()))

    def make() -> dict | None:
        answer, _ = ctx.probe(
            "step07_kubernetes:gunicorn_settings", {"environ": environ}, files=("gunicorn.conf.py",), timeout=60
        )
        return answer if isinstance(answer, dict) else None

    return ctx.once(key, make)


def bind_port(gunicorn: dict[str, str] | None) -> int | None:
    ports = re.findall(r":(\d+)'", str((gunicorn or {}).get("bind", "")))
    return int(ports[0]) if ports else None


def manifests_or_none(ctx: Context) -> kubernetes.Manifests | None:
    if not ctx.file("k8s").is_dir():
        return None
    try:
        return ctx.manifests
    except Unavailable:
        return None


def compose_or_none(ctx: Context):
    if not ctx.file("docker-compose.yml").is_file():
        return None
    try:
        return ctx.compose
    except Unavailable:
        return None


def manifest_environment(ctx: Context) -> dict[str, str] | None:
    manifests = manifests_or_none(ctx)
    if manifests is None or manifests.workload() is None:
        return None
    env, _ = kubernetes.environment(manifests, kubernetes.main_container(manifests.workload()))
    return env


def _compose_api(ctx: Context) -> dict | None:
    normalised = compose_or_none(ctx)
    if normalised is None:
        return None
    api, _, _ = compose_model.roles(normalised.model)
    return ((normalised.model.get("services") or {}).get(api) or None) if api else None


def compose_environment(ctx: Context) -> dict[str, str] | None:
    spec = _compose_api(ctx)
    if spec is None:
        return None
    return {str(k): str(v) for k, v in mapping(spec.get("environment")).items() if v is not None}


def deployment_environment(ctx: Context) -> dict[str, str]:
    """The environment the service is deployed with: the manifests', else compose's, else none."""
    for read in (manifest_environment, compose_environment):
        env = read(ctx)
        if env is not None:
            return env
    return {}


def _dockerfile_final(ctx: Context) -> list:
    if not ctx.file("Dockerfile").is_file():
        return []
    try:
        stages = dockerfile.stages(dockerfile.parse(ctx.read_text("Dockerfile")))
    except WorkspaceFileProblem:
        return []
    return stages[-1] if stages else []


def _path_in(text: object) -> str | None:
    found = re.search(r"https?://[^/\s'\"]+(/[A-Za-z0-9_./-]*)", str(text))
    return found.group(1) if found else None


def _mib(number) -> str:
    return f"{float(number) / _MEBI:g} MiB"


def _seconds(text: object) -> float | None:
    """A compose duration ("10s", "1m30s") or a plain number of seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s|ms|us|ns)", str(text or ""))
    if not parts:
        return None
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    return sum(float(n) * scale[u] for n, u in parts)


# ---------------------------------------------------------------------------------------------
# The table


def _equal(fact: Fact) -> None:
    distinct = sorted(set(fact.values.values()))
    if len(distinct) > 1:
        fact.problems.append(f"{fact.name} disagrees: " + fact.statements())


def _port(ctx: Context) -> Fact:
    fact = Fact("port", graded_by="service-routing")
    env = deployment_environment(ctx)
    settings = settings_of(ctx, env) if ctx.file("service/config.py").is_file() else None
    if settings and settings.get("raised") is None:
        fact.values["service (PORT)"] = str(settings["settings"].get("port"))
    exposed = [i.arguments.split("/")[0].strip() for i in _dockerfile_final(ctx) if i.keyword == "EXPOSE"]
    if exposed:
        fact.values["Dockerfile EXPOSE"] = exposed[-1].split()[0]
    port = bind_port(gunicorn_settings(ctx, env))
    if port is not None:
        fact.values["gunicorn bind"] = str(port)
    api = _compose_api(ctx)
    if api is not None and (api.get("ports") or api.get("expose")):
        fact.values["compose"] = str(compose_model.service_port(api, default=0))
    manifests = manifests_or_none(ctx)
    if manifests is not None and manifests.workload() is not None:
        ports = kubernetes.container_ports(kubernetes.main_container(manifests.workload()))
        numbers = sorted(set(ports.values()))
        if numbers:
            fact.values["k8s containerPort"] = str(numbers[0])
    _equal(fact)
    return fact


def _probe_paths(ctx: Context) -> tuple[Fact, Fact]:
    health, ready = Fact("liveness path", graded_by="probes"), Fact("readiness path", graded_by="probes")
    checks = [i for i in _dockerfile_final(ctx) if i.keyword == "HEALTHCHECK"]
    if checks and checks[-1].arguments.strip().upper() != "NONE":
        path = _path_in(checks[-1].arguments)
        health.values["Dockerfile HEALTHCHECK"] = path or "no URL"
    api = _compose_api(ctx)
    if api is not None and mapping(api.get("healthcheck")).get("test"):
        ready.values["compose healthcheck"] = _path_in(api["healthcheck"]["test"]) or "no URL"
    manifests = manifests_or_none(ctx)
    if manifests is not None and manifests.workload() is not None:
        container = kubernetes.main_container(manifests.workload())
        for fact, probe in ((health, "livenessProbe"), (ready, "readinessProbe")):
            path = dig(container, probe, "httpGet", "path")
            if path is not None:
                fact.values[f"k8s {probe}"] = str(path)
    for fact in (health, ready):
        unserved = [f"{source} {path}" for source, path in fact.values.items() if path not in SERVED_PATHS]
        if unserved:
            fact.problems.append(f"{fact.name}: the service does not serve " + ", ".join(unserved))
        _equal(fact)
    return health, ready


def _image(ctx: Context) -> Fact:
    fact = Fact("image")
    api = _compose_api(ctx)
    if api is not None and api.get("image"):
        fact.values["compose"] = _name_and_tag(api["image"])
    manifests = manifests_or_none(ctx)
    if manifests is not None and manifests.workload() is not None:
        image = kubernetes.main_container(manifests.workload()).get("image")
        if image:
            fact.values["k8s"] = _name_and_tag(image)
    if any(value.endswith(":latest") for value in fact.values.values()):
        fact.graded_by = "image-pinned"  # an unpinned image disagrees with everything: one mistake
    _equal(fact)
    return fact


def _name_and_tag(image: object) -> str:
    """The image's last path component and tag: a registry prefix differs by platform, by design."""
    repository, tag, digest = kubernetes.image_reference(image)
    return f"{repository.rsplit('/', 1)[-1]}:{tag or 'latest'}" + (f"@{digest[:19]}" if digest else "")


def _environment(ctx: Context) -> Fact:
    """The service's settings as compose's environment and the manifests' each make them: compared
    as the service's own configuration resolves them (a misspelt key leaves a default, which
    config-settings names), and the variables its libraries read, compared as written."""
    fact = Fact("environment")
    envs = {"compose": compose_environment(ctx), "k8s": manifest_environment(ctx)}
    envs = {source: env for source, env in envs.items() if env is not None}
    resolved: dict[str, dict] = {}
    for source, env in envs.items():
        answer = settings_of(ctx, env) if ctx.file("service/config.py").is_file() else None
        if answer and answer.get("raised") is None and isinstance(answer.get("settings"), dict):
            resolved[source] = dict(answer["settings"])
        resolved.setdefault(source, {})
        for name in LIBRARY_VARIABLES:
            if name in env:
                resolved[source][name] = env[name]
        fact.values[source] = f"{len(resolved[source])} settings"
    if len(resolved) == 2:
        compose, manifests = resolved["compose"], resolved["k8s"]
        differing = sorted(k for k in set(compose) | set(manifests) if compose.get(k) != manifests.get(k))
        for name in differing:
            fact.problems.append(
                f"{name} is {compose.get(name, 'unset')!r} in compose, {manifests.get(name, 'unset')!r} in k8s"
            )
        fact.values = {
            source: f"{len(values)} settings" + ("" if not differing else f" ({', '.join(differing)} differ)")
            for source, values in resolved.items()
        }
    return fact


def _upload_limit(ctx: Context) -> Fact:
    fact = Fact("upload limit", graded_by="ingress")
    limit = None
    for source, env in (("compose", compose_environment(ctx)), ("k8s", manifest_environment(ctx))):
        if env is None or not ctx.file("service/config.py").is_file():
            continue
        settings = settings_of(ctx, env)
        if settings and settings.get("raised") is None:
            value = settings["settings"].get("max_upload_bytes")
            if isinstance(value, int):
                fact.values[f"service in {source}"] = _mib(value)
                limit = value if limit is None else max(limit, value)
    _equal(fact)
    manifests = manifests_or_none(ctx)
    ingress = manifests.one("Ingress") if manifests is not None else None
    if ingress is not None:
        body = ingress_body_limit(ingress)
        if body is None:
            fact.values["k8s Ingress body size"] = "controller default (1 MiB for ingress-nginx)"
            body = _MEBI
        else:
            fact.values["k8s Ingress body size"] = "unlimited" if body == 0 else _mib(body)
        if limit is not None and body and body < limit:
            fact.problems.append(
                f"the Ingress accepts bodies up to {_mib(body)}, the service up to {_mib(limit)}: larger uploads "
                "get the controller's 413, not the service's problem document"
            )
    return fact


BODY_SIZE_ANNOTATIONS = ("nginx.ingress.kubernetes.io/proxy-body-size", "nginx.org/client-max-body-size")


def ingress_body_limit(ingress: dict) -> int | None:
    """The Ingress's body size limit in bytes (nginx's units: k, m, g are binary; 0 is none)."""
    annotations = mapping(dig(ingress, "metadata", "annotations"))
    for name in BODY_SIZE_ANNOTATIONS:
        if name in annotations:
            match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)\s*", str(annotations[name]))
            if match:
                scale = {"": 1, "k": 1024, "m": _MEBI, "g": 1024**3}[match.group(2).lower()]
                return int(match.group(1)) * scale
    return None


def _resources(ctx: Context) -> tuple[Fact, Fact]:
    memory, cpu = Fact("memory limit"), Fact("CPU limit")
    api = _compose_api(ctx)
    if api is not None:
        limits = mapping(dig(api, "deploy", "resources", "limits"))
        if limits.get("memory") is not None:
            memory.values["compose"] = _mib(kubernetes.quantity(limits["memory"]) or 0)
        if limits.get("cpus") is not None:
            cpu.values["compose"] = f"{float(kubernetes.quantity(limits['cpus']) or 0):g}"
    manifests = manifests_or_none(ctx)
    if manifests is not None and manifests.workload() is not None:
        limits = mapping(dig(kubernetes.main_container(manifests.workload()), "resources", "limits"))
        if kubernetes.quantity(limits.get("memory")) is not None:
            memory.values["k8s"] = _mib(kubernetes.quantity(limits["memory"]))
        if kubernetes.quantity(limits.get("cpu")) is not None:
            cpu.values["k8s"] = f"{float(kubernetes.quantity(limits['cpu'])):g}"
    _equal(memory)
    _equal(cpu)
    return memory, cpu


def _graceful_timeout(ctx: Context) -> Fact:
    fact = Fact("graceful shutdown", graded_by="rollout-safe")
    gunicorn = gunicorn_settings(ctx, deployment_environment(ctx)) or {}
    try:
        graceful = float(gunicorn.get("graceful_timeout", ""))
    except (TypeError, ValueError):
        graceful = None
    if graceful is not None:
        fact.values["gunicorn graceful_timeout"] = f"{graceful:g} s"
    api = _compose_api(ctx)
    budgets: list[tuple[str, float]] = []
    if api is not None:
        grace = _seconds(api.get("stop_grace_period")) or 10.0
        fact.values["compose stop_grace_period"] = f"{grace:g} s"
        budgets.append(("compose stop_grace_period", grace))
    manifests = manifests_or_none(ctx)
    if manifests is not None and manifests.workload() is not None:
        pod = kubernetes.pod_spec(manifests.workload())
        grace = pod.get("terminationGracePeriodSeconds", 30)
        pause = pre_stop_seconds(kubernetes.main_container(manifests.workload()))
        if isinstance(grace, int | float):
            fact.values["k8s terminationGracePeriodSeconds"] = f"{grace:g} s" + (
                f" (preStop {pause:g} s)" if pause else ""
            )
            budgets.append(("k8s terminationGracePeriodSeconds minus preStop", grace - pause))
    if graceful is not None:
        for source, budget in budgets:
            if graceful >= budget:
                fact.problems.append(
                    f"gunicorn's graceful_timeout ({graceful:g} s) does not fit in {source} ({budget:g} s): "
                    "requests in flight are killed"
                )
    return fact


def pre_stop_seconds(container: dict) -> float:
    """The preStop pause of a container: a sleep action, or an exec of sleep N; 0 when none."""
    pre_stop = mapping(dig(container, "lifecycle", "preStop"))
    seconds = dig(pre_stop, "sleep", "seconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        return float(seconds)
    command = " ".join(str(part) for part in listing(dig(pre_stop, "exec", "command")))
    match = re.search(r"\bsleep\s+(\d+(?:\.\d+)?)", command)
    return float(match.group(1)) if match else 0.0


ROWS: tuple[Callable[[Context], Fact | tuple[Fact, ...]], ...] = (
    _port,
    _probe_paths,
    _image,
    _upload_limit,
    _resources,
    _environment,
    _graceful_timeout,
)


def table(ctx: Context) -> list[Fact]:
    """Every row of the report, in order."""
    facts: list[Fact] = []
    for row in ROWS:
        made = row(ctx)
        facts.extend(made if isinstance(made, tuple) else (made,))
    return facts


def table_row(ctx: Context, name: str) -> Fact:
    """One row of the table (computed once per grading run)."""
    facts = ctx.once("consistency-table", lambda: table(ctx))
    return next(fact for fact in facts if fact.name == name)
