"""Step 07, Kubernetes: the learner's k8s/ kustomization, rendered and read as a cluster would.

No API server can run on these machines (nor, offline, on a learner's laptop), so the checks do
what a careful reviewer does before ``kubectl apply``: render with kustomize (in the sandbox),
validate every object against the pinned Kubernetes version's schemas, then read the objects
against each other and against the service they deploy (its port, paths and configuration, as
the service's own code resolves them in the sandbox). One live check runs the image with the
manifests' environment and measures the memory the limits must hold.
"""

from __future__ import annotations

import ast
import re
import time

import kubernetes_validate

from autograder.checks import consistency, kubernetes
from autograder.checks.context import Context, Unavailable
from autograder.checks.kubernetes import dig, listing, mapping
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome
from autograder.checks.samples import photo_jpeg_bytes

STEP = StepChecks("07")
REQUIRED_KINDS = (
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "ConfigMap",
    "Ingress",
    "PodDisruptionBudget",
    "NetworkPolicy",
)
MIN_REPLICAS, MAX_REPLICAS = 3, 10
MODEL_LOAD_SECONDS = 60  # the start-up probe must give a cold start (PyTorch's import) this long
# The Pod Security Standards' "restricted" profile: volume types it allows, capabilities it lets add.
RESTRICTED_VOLUME_TYPES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
ALLOWED_ADDED_CAPABILITIES = ("NET_BIND_SERVICE",)
# Headroom the memory limit keeps over what the grader measured: a burst of large uploads, a
# second copy of a tensor, must not get the pod OOM-killed.
MEMORY_HEADROOM = 1.2
MEMORY_MAX = 256 * 2**30  # larger than any node a course cluster has
SCRAPE_ANNOTATION = "prometheus.io/scrape"


def _workload(ctx: Context) -> tuple[dict, dict]:
    """(the Deployment, its service container); the check fails, saying why, when there is none."""
    workload = ctx.manifests.workload()
    if workload is None:
        raise Unavailable(
            Outcome.fail(
                "the rendered manifests hold no Deployment: write k8s/deployment.yaml and list it in resources:"
            )
        )
    return workload, kubernetes.main_container(workload)


def _share(problems: list[str], rules: int, success: str) -> Outcome:
    if not problems:
        return Outcome.ok(success)
    return Outcome.partial(max(0.0, 1 - len(problems) / rules), "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# Rendering and schemas


@STEP.check(
    "kustomize-renders",
    "kubectl kustomize k8s renders a Deployment, Service, HPA, ConfigMap, Ingress, PodDisruptionBudget and NetworkPolicy",
    points=2,
    hint="k8s/kustomization.yaml lists every file under resources: (and the ConfigMap under configMapGenerator: "
    "or resources:). Run `kubectl kustomize k8s` in the workspace: it names the first error.",
    needs=("manifests",),
)
def kustomize_renders(ctx: Context) -> Outcome:
    kinds = ctx.manifests.kinds
    missing = [kind for kind in REQUIRED_KINDS if kind not in kinds]
    if missing:
        return Outcome.fail(f"rendered {', '.join(kinds) or 'nothing'}; missing: {', '.join(missing)}")
    # An object with no spec (a ConfigMap with no data) is a skeleton: the API server refuses most.
    empty = [
        kubernetes.describe(o)
        for o in ctx.manifests.of_kind(*REQUIRED_KINDS)
        if not mapping(o.get("data" if o.get("kind") == "ConfigMap" else "spec"))
    ]
    if empty:
        return Outcome.fail(f"rendered, but {', '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty (no spec)")
    return Outcome.ok(f"{len(ctx.manifests.objects)} objects: {', '.join(kinds)}")


@STEP.check(
    "schemas-valid",
    f"every object is valid for Kubernetes {kubernetes.KUBERNETES_VERSION[:-2]} (strict: no unknown fields)",
    points=2,
    hint=f"Run `kubernetes-validate --strict -k {kubernetes.KUBERNETES_VERSION} <(kubectl kustomize k8s)`: a "
    "misspelt field (readinessprobe, containerport) is silently dropped by a lenient apply, and the pod "
    "runs without it.",
    needs=("manifests",),
)
def schemas_valid(ctx: Context) -> Outcome:
    problems, custom = [], []
    for obj in ctx.manifests.objects:
        try:
            kubernetes_validate.validate(obj, kubernetes.KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            custom.append(kubernetes.describe(obj))
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path) or "the object"
            problems.append(f"{kubernetes.describe(obj)}: {where}: {error.message[:200]}")
        except kubernetes_validate.InvalidSchemaError as error:
            problems.append(f"{kubernetes.describe(obj)}: {error}")
    if problems:
        return Outcome.fail(f"{len(problems)} invalid: " + "; ".join(problems[:4]))
    note = f" (no schema for {', '.join(custom)}: a custom resource, not checked)" if custom else ""
    return Outcome.ok(f"{len(ctx.manifests.objects) - len(custom)} objects valid{note}")


# ---------------------------------------------------------------------------------------------
# The Deployment


@STEP.check(
    "rollout-safe",
    "3 replicas, RollingUpdate with maxUnavailable 0, spread over nodes, a preStop pause and a grace period "
    "longer than gunicorn's",
    points=2,
    hint="strategy.rollingUpdate.maxUnavailable: 0 (a rollout never drops below the wanted pods); "
    "topologySpreadConstraints on kubernetes.io/hostname; lifecycle.preStop.sleep.seconds: 5 (the "
    "endpoints drop the pod before gunicorn stops accepting); terminationGracePeriodSeconds above the "
    "pause plus gunicorn's graceful_timeout.",
    needs=("manifests",),
)
def rollout_safe(ctx: Context) -> Outcome:
    workload, container = _workload(ctx)
    spec, pod = mapping(workload.get("spec")), kubernetes.pod_spec(workload)
    problems = []
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < MIN_REPLICAS:
        problems.append(f"replicas is {replicas}, not at least {MIN_REPLICAS}")
    strategy = mapping(spec.get("strategy"))
    unavailable = dig(strategy, "rollingUpdate", "maxUnavailable")
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or str(unavailable) not in ("0", "0%"):
        problems.append(
            f"rollingUpdate.maxUnavailable is {unavailable if unavailable is not None else '25% (default)'}, not 0"
        )
    spreads = [mapping(c) for c in listing(pod.get("topologySpreadConstraints")) if mapping(c).get("topologyKey")]
    labels = kubernetes.pod_labels(workload)
    if not spreads:
        problems.append("no topologySpreadConstraints: all replicas may land on one node")
    elif not any(kubernetes.selects(c.get("labelSelector"), labels) for c in spreads):
        problems.append(
            "the topologySpreadConstraints' labelSelector does not select the pods: the constraint counts no pod "
            "and spreads nothing"
        )
    pause = consistency.pre_stop_seconds(container)
    if pause <= 0:
        pre_stop = dig(container, "lifecycle", "preStop")
        problems.append(
            f"a preStop hook is there ({pre_stop}) but pauses for no time: write sleep: {{seconds: 5}}"
            if pre_stop
            else "no preStop pause: the pod stops accepting while endpoints still send it requests"
        )
    grace = pod.get("terminationGracePeriodSeconds", 30)
    graceful = _graceful_timeout(ctx)
    note = ""
    if graceful is None:
        unreadable = _gunicorn_unreadable(ctx)
        if unreadable:
            problems.append(unreadable)
        else:  # the service rejects the manifests' settings: config-settings says why
            note = "; gunicorn's graceful_timeout unknown (the service rejects the manifests' settings)"
    elif not isinstance(grace, int | float) or grace <= graceful + pause:
        problems.append(
            f"terminationGracePeriodSeconds is {grace}, not above the preStop pause ({pause:g} s) plus gunicorn's "
            f"graceful_timeout ({graceful:g} s)"
        )
    return _share(
        problems, 5, f"{replicas} replicas, maxUnavailable 0, spread, preStop {pause:g} s, grace {grace} s{note}"
    )


def _gunicorn_unreadable(ctx: Context) -> str:
    """Why gunicorn's settings are unknown, as a problem of the check asking; '' when the reason
    is the service's configuration rejecting the manifests' settings (config-settings grades that)."""
    if not ctx.file("gunicorn.conf.py").is_file():
        return "gunicorn.conf.py does not exist in the workspace (step 05 writes it)"
    answer = consistency.settings_of(ctx, consistency.deployment_environment(ctx))
    if answer and answer.get("raised"):
        return ""
    return (
        "gunicorn.conf.py failed, hung or exited when gunicorn's own reader ran it (in the sandbox, with the "
        "manifests' settings): its values are unknown"
    )


def _graceful_timeout(ctx: Context) -> float | None:
    resolved = consistency.gunicorn_settings(ctx, consistency.deployment_environment(ctx)) or {}
    try:
        return float(resolved["graceful_timeout"])
    except (KeyError, TypeError, ValueError):
        return None


@STEP.check(
    "probes",
    "startup, readiness (/ready) and liveness (/health) probes on the container's port",
    points=2,
    hint="readinessProbe.httpGet.path: /ready (traffic only once the model is loaded); livenessProbe on "
    "/health (never /ready: a slow model load would restart the pod forever); a startupProbe whose "
    f"failureThreshold x periodSeconds covers a cold start (about {MODEL_LOAD_SECONDS} s: PyTorch's import "
    "on a busy node); port: http, the container port's name.",
    needs=("manifests",),
)
def probes(ctx: Context) -> Outcome:
    workload, container = _workload(ctx)
    ports = set(kubernetes.container_ports(container).values())
    expected = {
        "startupProbe": (consistency.HEALTH_PATH, consistency.READY_PATH),
        "readinessProbe": (consistency.READY_PATH,),
        "livenessProbe": (consistency.HEALTH_PATH,),
    }
    problems, seen = [], []
    for name, paths in expected.items():
        probe = mapping(container.get(name))
        get = mapping(probe.get("httpGet"))
        if not get:
            problems.append(f"no {name} with httpGet")
            continue
        path, port = get.get("path", "/"), kubernetes.resolve_port(container, get.get("port"))
        if path not in paths:
            problems.append(f"{name} asks {path}, not {' or '.join(paths)}")
        if port is None or port not in ports:
            problems.append(
                f"{name} asks port {get.get('port')}, which is not the container's ({', '.join(map(str, sorted(ports))) or 'none declared'})"
            )
        seen.append(f"{name} {path}")
    if problems:  # a probe that asks the wrong thing restarts pods or sends traffic to none: no points
        return Outcome.fail("; ".join(problems))
    startup = mapping(container.get("startupProbe"))
    threshold, period = startup.get("failureThreshold", 3), startup.get("periodSeconds", 10)
    budget = (
        threshold * period if all(isinstance(v, int) and not isinstance(v, bool) for v in (threshold, period)) else 0
    )
    if budget < MODEL_LOAD_SECONDS:
        return Outcome.partial(
            0.5,
            f"the startupProbe gives up after {budget} s (failureThreshold x periodSeconds): a cold start may "
            f"take {MODEL_LOAD_SECONDS} s, and the pod would be restarted before it serves",
        )
    return Outcome.ok(", ".join(seen))


@STEP.check(
    "resources",
    "every container requests and limits CPU and memory, limits at least the requests",
    points=1,
    hint="resources.requests (what the scheduler reserves) and resources.limits (where the container is "
    "throttled, or OOM-killed) for cpu and memory; the HPA's utilisation is a share of the CPU request.",
    needs=("manifests",),
)
def resources(ctx: Context) -> Outcome:
    workload, _ = _workload(ctx)
    problems = []
    for container in kubernetes.containers(workload):
        name = container.get("name", "?")
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if kubernetes.quantity(dig(container, "resources", kind, resource)) is None:
                    problems.append(f"{name} has no {resource} {kind[:-1]}")
        for resource in ("cpu", "memory"):
            request = kubernetes.quantity(dig(container, "resources", "requests", resource))
            limit = kubernetes.quantity(dig(container, "resources", "limits", resource))
            if request is not None and limit is not None and limit < request:
                problems.append(f"{name}'s {resource} limit is below its request")
    if problems:
        return Outcome.fail("; ".join(problems))
    main = kubernetes.main_container(workload)
    return Outcome.ok(
        f"requests {dig(main, 'resources', 'requests', 'cpu')} CPU / {dig(main, 'resources', 'requests', 'memory')}, "
        f"limits {dig(main, 'resources', 'limits', 'cpu')} CPU / {dig(main, 'resources', 'limits', 'memory')}"
    )


def _restricted_problems(pod: dict, containers: list[dict]) -> tuple[list[str], int]:
    """What breaks the Pod Security Standards' restricted profile, rule by rule; (problems, rules)."""
    problems = []
    security = mapping(pod.get("securityContext"))
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field) is True:
            problems.append(f"{field}: true")
    for volume in listing(pod.get("volumes")):
        kinds = [k for k in mapping(volume) if k != "name"]
        foreign = [k for k in kinds if k not in RESTRICTED_VOLUME_TYPES]
        if foreign:
            problems.append(f"volume {mapping(volume).get('name')} is a {foreign[0]} (not allowed)")
    for container in containers:
        name = container.get("name", "?")
        context = mapping(container.get("securityContext"))
        if context.get("privileged") is True:
            problems.append(f"{name} is privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name} does not set allowPrivilegeEscalation: false")
        non_root = context.get("runAsNonRoot", security.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{name} does not set runAsNonRoot: true")
        if context.get("runAsUser", security.get("runAsUser")) == 0:
            problems.append(f"{name} runs as UID 0")
        seccomp = dig(context, "seccompProfile", "type") or dig(security, "seccompProfile", "type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name} has no seccompProfile RuntimeDefault")
        capabilities = mapping(context.get("capabilities"))
        if "ALL" not in [str(c) for c in listing(capabilities.get("drop"))]:
            problems.append(f"{name} does not drop ALL capabilities")
        added = [str(c) for c in listing(capabilities.get("add")) if str(c) not in ALLOWED_ADDED_CAPABILITIES]
        if added:
            problems.append(f"{name} adds capabilities {', '.join(added)}")
        if any(mapping(p).get("hostPort") for p in listing(container.get("ports"))):
            problems.append(f"{name} uses a hostPort")
    return problems, 4 + 8 * max(len(containers), 1)


@STEP.check(
    "pod-security-restricted",
    "the pod meets the Pod Security Standards' restricted profile, with a read-only root filesystem and "
    "an emptyDir at /tmp",
    points=3,
    hint="Pod: securityContext runAsNonRoot: true, runAsUser: 10001 (the image's user), seccompProfile: "
    "{type: RuntimeDefault}. Container: allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, "
    "readOnlyRootFilesystem: true, and an emptyDir volume mounted at /tmp (the service's only writable "
    "place). Label the namespace pod-security.kubernetes.io/enforce: restricted and the cluster refuses "
    "pods that break it (warn: restricted also flags the Deployment when it is applied).",
    needs=("manifests",),
)
def pod_security_restricted(ctx: Context) -> Outcome:
    workload, container = _workload(ctx)
    pod = kubernetes.pod_spec(workload)
    every = kubernetes.containers(workload) + [c for c in listing(pod.get("initContainers")) if isinstance(c, dict)]
    problems, rules = _restricted_problems(pod, every)
    if dig(container, "securityContext", "readOnlyRootFilesystem") is not True:
        problems.append("the root filesystem is writable (readOnlyRootFilesystem: true)")
    empty_dirs = {mapping(v).get("name") for v in listing(pod.get("volumes")) if "emptyDir" in mapping(v)}
    tmp = [
        m for m in listing(container.get("volumeMounts")) if str(mapping(m).get("mountPath", "")).rstrip("/") == "/tmp"
    ]
    if not tmp or mapping(tmp[0]).get("name") not in empty_dirs:
        # Not a matter of degree: the service cannot start (gunicorn's and the metrics' files).
        return Outcome.fail(
            "no emptyDir is mounted at /tmp: with a read-only root, the service has nowhere to write and does not "
            "start" + (f"; also: {'; '.join(problems)}" if problems else "")
        )
    return _share(
        problems,
        rules + 2,
        "restricted: non-root, no escalation, no capabilities, seccomp, read-only root, /tmp on an emptyDir",
    )


# ---------------------------------------------------------------------------------------------
# Scaling, routing, configuration


@STEP.check(
    "autoscaling",
    f"an autoscaling/v2 HPA scales the Deployment between {MIN_REPLICAS} and {MAX_REPLICAS} on CPU, with a "
    "scale-down stabilisation window",
    points=2,
    hint="scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: <the Deployment's>}; metrics: a "
    "Resource metric on cpu with target type Utilization; behavior.scaleDown.stabilizationWindowSeconds "
    "(300 is the default worth writing down). The container needs a CPU request.",
    needs=("manifests",),
)
def autoscaling(ctx: Context) -> Outcome:
    workload, container = _workload(ctx)
    hpas = ctx.manifests.of_kind("HorizontalPodAutoscaler")
    if not hpas:
        return Outcome.fail("no HorizontalPodAutoscaler")
    hpa = hpas[0]
    spec, problems = mapping(hpa.get("spec")), []
    if hpa.get("apiVersion") != "autoscaling/v2":
        problems.append(f"apiVersion is {hpa.get('apiVersion')}, not autoscaling/v2")
    target = mapping(spec.get("scaleTargetRef"))
    if (target.get("kind"), target.get("name")) != (workload.get("kind"), dig(workload, "metadata", "name")):
        problems.append(f"it scales {target.get('kind')}/{target.get('name')}, not {kubernetes.describe(workload)}")
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
    if not isinstance(low, int) or low < MIN_REPLICAS:
        problems.append(f"minReplicas is {low}, not at least {MIN_REPLICAS}")
    if not isinstance(high, int) or high < MAX_REPLICAS:
        problems.append(f"maxReplicas is {high}, not at least {MAX_REPLICAS}")
    cpu = [
        m for m in listing(spec.get("metrics"))
        if mapping(m).get("type") == "Resource" and dig(m, "resource", "name") == "cpu"
    ]  # fmt: skip
    if not cpu:
        problems.append("no CPU metric")
    window = dig(spec, "behavior", "scaleDown", "stabilizationWindowSeconds")
    if not isinstance(window, int) or window <= 0:
        problems.append("no behavior.scaleDown.stabilizationWindowSeconds")
    if kubernetes.quantity(dig(container, "resources", "requests", "cpu")) is None:
        problems.append("the container has no CPU request, so CPU utilisation is undefined")
    return _share(
        problems, 7, f"{low}-{high} replicas of {kubernetes.describe(workload)} on CPU, scale-down window {window} s"
    )


@STEP.check(
    "service-routing",
    "the Service selects the pods and targets the container port, which is gunicorn's bind port and the "
    "Dockerfile's EXPOSE",
    points=2,
    hint="The Service's selector must equal labels of the pod template (not the Deployment's own labels); "
    "targetPort: http names the containerPort, which must be the port gunicorn binds with the manifests' "
    "environment (PORT) and the one the Dockerfile EXPOSEs.",
    needs=("manifests",),
)
def service_routing(ctx: Context) -> Outcome:
    workload, container = _workload(ctx)
    labels, problems = kubernetes.pod_labels(workload), []
    if not kubernetes.selects(dig(workload, "spec", "selector"), labels):
        problems.append(f"{kubernetes.describe(workload)}'s selector does not match its own pod template's labels")
    services = [
        s
        for s in ctx.manifests.of_kind("Service")
        if kubernetes.selects(dig(s, "spec", "selector"), labels, plain=True)
    ]
    if not services:
        selectors = [f"{kubernetes.describe(s)} {dig(s, 'spec', 'selector')}" for s in ctx.manifests.of_kind("Service")]
        return Outcome.fail(f"no Service selects the pods (labels {labels}); " + ("; ".join(selectors) or "no Service"))
    service = services[0]
    container_ports = set(kubernetes.container_ports(container).values())
    for port in listing(dig(service, "spec", "ports")):
        target = mapping(port).get("targetPort", mapping(port).get("port"))
        if kubernetes.resolve_port(container, target) not in container_ports:
            problems.append(
                f"{kubernetes.describe(service)} sends port {mapping(port).get('port')} to {target}, not a container port"
            )
    port_fact = consistency.table_row(ctx, "port")
    problems += port_fact.problems
    if "gunicorn bind" not in port_fact.values and (unreadable := _gunicorn_unreadable(ctx)):
        problems.append(unreadable)
    if problems:  # traffic reaches no pod, or the wrong port: no points
        return Outcome.fail("; ".join(problems))
    return Outcome.ok(f"{kubernetes.describe(service)} -> pods; port: {port_fact.line()}")


@STEP.check(
    "config-settings",
    "the container reads its settings from a ConfigMap, every key a variable the service reads, every value valid",
    points=2,
    hint="envFrom: [{configMapRef: {name: ...}}]; the keys are step 02's variables (PORT, LOG_LEVEL, "
    "MAX_UPLOAD_BYTES, ...), each with a value its validation accepts. A misspelt key (PROT) is read by "
    "nothing, and the service silently runs on its default.",
    needs=("manifests", "probe"),
)
def config_settings(ctx: Context) -> Outcome:
    workload, container = _workload(ctx)
    used = kubernetes.config_maps_used(ctx.manifests, container)
    env, missing = kubernetes.environment(ctx.manifests, container)
    if missing:
        return Outcome.fail(f"the container names ConfigMap {missing[0]}, which the manifests do not define")
    if not used:
        return Outcome.fail("the container reads no ConfigMap (envFrom: configMapRef)")
    answer = consistency.settings_of(ctx, env)
    if answer is None:
        return Outcome.fail("service/config.py could not be run with the ConfigMap's values (see step 02)")
    if answer.get("raised"):
        problems = answer.get("problems") or [answer.get("message", "")]
        return Outcome.fail(f"the service rejects the ConfigMap's settings: {'; '.join(problems)[:400]}")
    # A configuration that copies or walks the whole environment asks for nothing in particular:
    # what its code names is what it reads.
    read = set(answer.get("asked") or ())
    read |= _named_in_code(ctx) | set(consistency.LIBRARY_VARIABLES)
    keys = sorted({k for c in used for k in mapping(c.get("data"))})
    unread = [k for k in keys if k not in read]
    if unread:
        return Outcome.fail(f"nothing in the service reads {', '.join(unread)}: a misspelt or stale setting")
    return Outcome.ok(f"{len(keys)} settings from {', '.join(kubernetes.describe(c) for c in used)}, all valid")


def _named_in_code(ctx: Context) -> set[str]:
    """Upper-case names the service's Python code passes to a call or a subscript (environ.get("PORT"),
    parse_int(environ, "PORT", ...), os.environ["PORT"]): variables it may read itself. Comments
    and docstrings do not count."""
    names: set[str] = set()
    sources = [p for p in sorted(ctx.file("service").glob("*.py")) if p.is_file()][:50]
    if ctx.file("gunicorn.conf.py").is_file():
        sources.append(ctx.file("gunicorn.conf.py"))
    for path in sources:
        try:
            tree = ast.parse(path.read_bytes()[:1_000_000])
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            candidates = [*node.args, *(k.value for k in node.keywords)] if isinstance(node, ast.Call) else []
            if isinstance(node, ast.Subscript):
                candidates = [node.slice]
            if isinstance(node, ast.Compare) and any(isinstance(o, ast.In | ast.NotIn) for o in node.ops):
                candidates = [node.left]
            for candidate in candidates:
                if isinstance(candidate, ast.Constant) and isinstance(candidate.value, str):
                    if re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", candidate.value):
                        names.add(candidate.value)
    return names


@STEP.check(
    "ingress",
    "an Ingress with TLS sends the host to the Service, and lets uploads up to the service's limit through",
    points=1,
    hint="spec.tls with hosts and a secretName; the backend's service name and port are the Service's; "
    "nginx.ingress.kubernetes.io/proxy-body-size above MAX_UPLOAD_BYTES (ingress-nginx's default is 1m: "
    "a 5 MB photo would get the controller's 413, never the service's answer).",
    needs=("manifests", "probe"),
)
def ingress(ctx: Context) -> Outcome:
    found = ctx.manifests.of_kind("Ingress")
    if not found:
        return Outcome.fail("no Ingress")
    rule, problems = found[0], []
    if not [t for t in listing(dig(rule, "spec", "tls")) if mapping(t).get("secretName")]:
        problems.append("no TLS (spec.tls with a secretName)")
    backends = [
        mapping(dig(p, "backend", "service"))
        for r in listing(dig(rule, "spec", "rules"))
        for p in listing(dig(r, "http", "paths"))
    ]
    services = {dig(s, "metadata", "name"): s for s in ctx.manifests.of_kind("Service")}
    for backend in backends:
        service = services.get(backend.get("name"))
        if service is None:
            problems.append(f"a path goes to Service {backend.get('name')}, which the manifests do not define")
            continue
        port = mapping(backend.get("port"))
        known = [mapping(p) for p in listing(dig(service, "spec", "ports"))]
        if not any(
            port.get("name") == p.get("name") and port.get("name") or port.get("number") == p.get("port") for p in known
        ):
            problems.append(f"a path goes to port {port} of {backend.get('name')}, which it does not have")
    if not backends:
        problems.append("no rule sends a path to a Service")
    upload = consistency.table_row(ctx, "upload limit")
    problems += upload.problems
    if consistency.ingress_body_limit(rule) == 0:
        problems.append("the body size is unlimited (0): anyone may stream gigabytes at the pods")
    if problems:
        return Outcome.fail("; ".join(problems))
    return Outcome.ok(f"TLS; upload limit: {upload.line()}")


@STEP.check(
    "disruption-and-network",
    "a PodDisruptionBudget keeps pods up through node drains; a NetworkPolicy admits only the ingress "
    "controller and Prometheus, on the service's port",
    points=2,
    hint="PodDisruptionBudget (policy/v1): maxUnavailable: 1 with the pods' labels as its selector. "
    "NetworkPolicy: podSelector the pods, policyTypes [Ingress], one rule whose from: names the ingress "
    "controller's namespace and Prometheus (namespaceSelector, podSelector), ports: the container port.",
    needs=("manifests",),
)
def disruption_and_network(ctx: Context) -> Outcome:
    workload, container = _workload(ctx)
    labels, problems = kubernetes.pod_labels(workload), []
    budgets = [
        b
        for b in ctx.manifests.of_kind("PodDisruptionBudget")
        if kubernetes.selects(dig(b, "spec", "selector"), labels)
    ]
    if not budgets:
        problems.append("no PodDisruptionBudget selects the pods")
    else:
        spec = mapping(budgets[0].get("spec"))
        replicas = dig(workload, "spec", "replicas")
        if (
            "minAvailable" in spec
            and isinstance(replicas, int)
            and str(spec["minAvailable"]) in (str(replicas), "100%")
        ):
            problems.append("minAvailable equals the replicas: no node can ever be drained")
        if str(spec.get("maxUnavailable")) in ("0", "0%"):
            problems.append("maxUnavailable 0: no node can ever be drained")
    policies = [
        p for p in ctx.manifests.of_kind("NetworkPolicy") if kubernetes.selects(dig(p, "spec", "podSelector"), labels)
    ]
    if not policies:
        problems.append("no NetworkPolicy selects the pods: every pod of the cluster can reach them")
    else:
        spec = mapping(policies[0].get("spec"))
        if "Ingress" not in listing(spec.get("policyTypes")) and "ingress" not in spec:
            problems.append("the NetworkPolicy does not restrict Ingress")
        rules = [mapping(r) for r in listing(spec.get("ingress"))]
        if any(not listing(r.get("from")) for r in rules):
            problems.append("an ingress rule has no from: it admits every source")
        ports = set(kubernetes.container_ports(container).values())
        for rule in rules:
            allowed = [kubernetes.resolve_port(container, mapping(p).get("port")) for p in listing(rule.get("ports"))]
            if not allowed or any(port not in ports for port in allowed):
                problems.append("an ingress rule is not limited to the container's port")
                break
        if not rules:
            problems.append("no ingress rule: nothing, not even the ingress controller, can reach the pods")
    return _share(problems, 6, "PodDisruptionBudget and NetworkPolicy in place")


@STEP.check(
    "metrics-scraped",
    "Prometheus finds the pods: a ServiceMonitor on the Service's port, or scrape annotations, at /metrics",
    points=1,
    hint="With the Prometheus Operator: a ServiceMonitor (monitoring.coreos.com/v1) whose selector matches "
    "the Service's labels, endpoints: [{port: http, path: /metrics}]. Without it: pod annotations "
    "prometheus.io/scrape: 'true', prometheus.io/port and prometheus.io/path.",
    needs=("manifests",),
)
def metrics_scraped(ctx: Context) -> Outcome:
    workload, container = _workload(ctx)
    ports = kubernetes.container_ports(container)
    for monitor in ctx.manifests.of_kind("ServiceMonitor"):
        for service in ctx.manifests.of_kind("Service"):
            service_labels = mapping(dig(service, "metadata", "labels"))
            if not kubernetes.selects(dig(monitor, "spec", "selector"), service_labels):
                continue
            names = {mapping(p).get("name") for p in listing(dig(service, "spec", "ports"))}
            for endpoint in listing(dig(monitor, "spec", "endpoints")):
                endpoint = mapping(endpoint)
                if endpoint.get("port") in names and endpoint.get("path", "/metrics") == "/metrics":
                    return Outcome.ok(
                        f"{kubernetes.describe(monitor)} scrapes {kubernetes.describe(service)}:{endpoint['port']}/metrics"
                    )
    annotations = mapping(dig(workload, "spec", "template", "metadata", "annotations"))
    if str(annotations.get(SCRAPE_ANNOTATION)).lower() == "true":
        port = annotations.get("prometheus.io/port")
        path = annotations.get("prometheus.io/path", "/metrics")
        if str(port) in {str(p) for p in ports.values()} and path == "/metrics":
            return Outcome.ok(f"scrape annotations: port {port}, {path}")
        return Outcome.fail(
            f"scrape annotations name port {port} and path {path}: the service serves /metrics on {sorted(set(ports.values()))}"
        )
    return Outcome.fail(
        "no ServiceMonitor selects the Service's labels with its port and /metrics, and the pods have no scrape annotations"
    )


@STEP.check(
    "image-pinned",
    "every container's image is pinned by a tag (never latest) or a digest",
    points=1,
    hint="images: in kustomization.yaml (newTag: the version step 05 built) or the tag in the Deployment. "
    "latest, or no tag, means whatever was pushed last: two pods of one Deployment may run different code.",
    needs=("manifests",),
)
def image_pinned(ctx: Context) -> Outcome:
    workload, _ = _workload(ctx)
    problems, images = [], []
    for container in kubernetes.containers(workload):
        _, tag, digest = kubernetes.image_reference(container.get("image"))
        images.append(str(container.get("image")))
        if not digest and tag in ("", "latest"):
            problems.append(
                f"{container.get('name')} runs {container.get('image')}"
                + (" (no tag means latest)" if not tag else "")
                + ": whatever was pushed last"
            )
    if problems:
        return Outcome.fail("; ".join(problems))
    return Outcome.ok(", ".join(images))


# checkov's Kubernetes policies the course accepts breaking, and why (each is a choice it teaches).
ACCEPTED_POLICIES = {
    "CKV_K8S_43": "the image is pinned by an immutable tag; a digest pins tighter (notebook 07, images:)",
    "CKV_K8S_15": "IfNotPresent is right for a pinned, immutable tag; Always re-pulls on every start",
}


# checkov's policies that a check of this step grades already: named, never taken twice.
GRADED_ELSEWHERE = {
    "CKV_K8S_14": "image-pinned",
    **dict.fromkeys(("CKV_K8S_8", "CKV_K8S_9"), "probes"),
    **dict.fromkeys(("CKV_K8S_10", "CKV_K8S_11", "CKV_K8S_12", "CKV_K8S_13"), "resources"),
    **dict.fromkeys(
        [f"CKV_K8S_{n}" for n in (16, 17, 18, 19, 20, 22, 23, 25, 26, 28, 29, 30, 31, 37, 39)],
        "pod-security-restricted",
    ),
}


@STEP.check(
    "policy-scan",
    "checkov's Kubernetes policies pass on the rendered objects (but two the course accepts, by ID)",
    points=2,
    hint="Each finding names checkov's policy ID (CKV_K8S_...): look it up in checkov's policy index and fix "
    "the field it names. Annotations that skip a policy (checkov.io/skip1) are removed before grading. "
    f"Accepted: {', '.join(ACCEPTED_POLICIES)} (a pinned tag, and IfNotPresent).",
    needs=("manifests", "policies"),
)
def policy_scan(ctx: Context) -> Outcome:
    findings = ctx.policy_findings
    broken = [f for f in findings if f.check_id not in ACCEPTED_POLICIES and f.check_id not in GRADED_ELSEWHERE]
    accepted = sorted({f.check_id for f in findings if f.check_id in ACCEPTED_POLICIES})
    elsewhere = sorted(
        {f"{f.check_id} (graded by {GRADED_ELSEWHERE[f.check_id]})" for f in findings if f.check_id in GRADED_ELSEWHERE}
    )
    figures = {"accepted": ", ".join(accepted) or "none"}
    if elsewhere:
        figures["graded_elsewhere"] = ", ".join(elsewhere)
    if broken:
        shown = "; ".join(f"{f.check_id} {f.title} ({f.resource})" for f in broken[:6])
        more = f" and {len(broken) - 6} more" if len(broken) > 6 else ""
        return Outcome(
            False,
            f"{len(broken)} polic{'y' if len(broken) == 1 else 'ies'} broken: {shown}{more}",
            tuple(figures.items()),
        )
    return Outcome.ok(
        "every Kubernetes policy of checkov passes" + (f" but the accepted {', '.join(accepted)}" if accepted else ""),
        **figures,
    )


# ---------------------------------------------------------------------------------------------
# The consistency report


@STEP.check(
    "consistency",
    "the artifacts agree: one table of port, paths, image, upload limit, memory, CPU, environment and "
    "graceful shutdown as each file states them (image, limits and environment are graded here)",
    points=2,
    hint="The table (this check's figures, one row per fact, ✗ where they disagree) says what each file states; change the ones that disagree. Usually: one port "
    "everywhere, /health for liveness and /ready for readiness, the same image tag, the same settings in "
    "service.env and the ConfigMap, the same limits in compose and the Deployment.",
    needs=("manifests", "probe"),
)
def consistency_report(ctx: Context) -> Outcome:
    facts = ctx.once("consistency-table", lambda: consistency.table(ctx))
    figures = tuple((fact.name.replace(" ", "_"), fact.line()) for fact in facts)
    own = [problem for fact in facts if not fact.graded_by for problem in fact.problems]
    elsewhere = [
        f"{problem} (graded by {fact.graded_by})" for fact in facts if fact.graded_by for problem in fact.problems
    ]
    if own:
        return Outcome(False, f"{len(own)} disagreement(s): " + "; ".join(own + elsewhere), figures)
    message = f"{len(facts)} facts agree across every artifact" if not elsewhere else "; ".join(elsewhere)
    return Outcome(True, message, figures)


# ---------------------------------------------------------------------------------------------
# Live: the memory the limits must hold


PREDICTIONS = 12


def _configured_workers(ctx: Context, environment: dict[str, str]) -> int | None:
    """The gunicorn workers the deployment's settings configure, as gunicorn resolves them."""
    resolved = consistency.gunicorn_settings(ctx, environment) or {}
    workers = resolved.get("workers")
    return workers if isinstance(workers, int) and not isinstance(workers, bool) and workers > 0 else None


@STEP.check(
    "memory-fits-limits",
    f"the image, run with the manifests' settings, uses less memory than the request, and the limit keeps "
    f"{MEMORY_HEADROOM:g}x headroom",
    points=2,
    hint="Measure it yourself: docker run with the ConfigMap's environment, send a few predictions, then "
    "docker stats --no-stream. Each gunicorn worker holds a copy of the model: WEB_CONCURRENCY=2 uses "
    "about twice what one does. The request is what the scheduler reserves, the limit where the kernel "
    "kills the pod.",
    needs=("manifests", "pod"),
    last=True,
)
def memory_fits_limits(ctx: Context) -> Outcome:
    workload, container = _workload(ctx)
    request = kubernetes.quantity(dig(container, "resources", "requests", "memory"))
    limit = kubernetes.quantity(dig(container, "resources", "limits", "memory"))
    if request is None or limit is None:
        return Outcome.fail("the container has no memory request or limit (see resources)")
    pod = ctx.pod
    peak = pod.memory_bytes()
    jpeg = photo_jpeg_bytes()
    started = time.monotonic()
    for _ in range(PREDICTIONS):
        response = pod.request("POST", "/predict", files={"file": ("photo.jpg", jpeg, "image/jpeg")})
        if response.status_code != 200:
            return Outcome.fail(f"POST /predict answered {response.status_code} with the manifests' settings")
        peak = max(peak, pod.memory_bytes())
    expected = _configured_workers(ctx, pod.environment)
    running = sum(1 for _, command in pod.process_uids().values() if "gunicorn" in command) - 1  # less the master
    if expected is not None and running < expected:
        return Outcome.fail(
            f"the pod ran {max(running, 0)} gunicorn worker(s), where the manifests' settings configure {expected}: "
            "memory measured for fewer workers than production runs says nothing about its limits"
        )
    figures = {
        "measured_peak": f"{peak / 2**20:.0f} MiB",
        "request": f"{float(request) / 2**20:.0f} MiB",
        "limit": f"{float(limit) / 2**20:.0f} MiB",
        "workers": str(running),
        "seconds": f"{time.monotonic() - started:.1f}",
    }
    problems = []
    if max(request, limit) > MEMORY_MAX:
        problems.append(
            f"{max(request, limit) / 2**30:.0f} GiB is more than any node has: the pod would never be scheduled"
        )
    if request < peak:
        problems.append(
            f"the request ({figures['request']}) is below the {figures['measured_peak']} the pod uses: the "
            "scheduler packs more pods on a node than it can hold"
        )
    if limit < peak * MEMORY_HEADROOM:
        problems.append(
            f"the limit ({figures['limit']}) leaves less than {MEMORY_HEADROOM:g}x the measured "
            f"{figures['measured_peak']}: a burst of uploads gets the pod OOM-killed"
        )
    if problems:
        return Outcome(False, "; ".join(problems), tuple(figures.items()))
    return Outcome.ok(
        f"peak {figures['measured_peak']} after {PREDICTIONS} predictions, within the request and limit", **figures
    )
