"""Step 06, compose and monitoring: the learner's stack, read statically, then started for real.

Static checks read the compose model the Compose CLI normalised in the sandbox, the monitoring
files, and what promtool says of them (in the course's Prometheus image). The live checks start
the stack the grader made from the learner's (runners.compose): the service with two workers,
Prometheus scraping it; they send requests, ask Prometheus through its HTTP API, and stop the
service to see the instance-down alert. Without a Docker engine they are skipped, never passed.
"""

from __future__ import annotations

import json
import re
import time

import yaml

from autograder.checks import compose_model, dockerfile, promql
from autograder.checks.context import Context
from autograder.checks.registry import StepChecks
from autograder.checks.result import Outcome
from autograder.checks.samples import photo_jpeg_bytes

STEP = StepChecks("06")
COMPOSE_FILE = "docker-compose.yml"
PROMETHEUS_CONFIG = "monitoring/prometheus.yml"
ALERTS, ALERT_TESTS = "monitoring/alerts.yml", "monitoring/alerts.test.yml"
GRAFANA = "monitoring/grafana"
DATASOURCES, DASHBOARD_PROVIDERS = f"{GRAFANA}/provisioning/datasources", f"{GRAFANA}/provisioning/dashboards"
DASHBOARDS = f"{GRAFANA}/dashboards"
DEFAULT_CONFIG_PATH = "/etc/prometheus/prometheus.yml"
DEFAULT_STORAGE_PATH = "/prometheus"
HEALTHY_CONDITIONS = ("service_healthy", "service_completed_successfully")
LOCAL_ADDRESSES = ("127.0.0.1", "::1", "localhost")
WORK = "/work"  # where promtool sees the monitoring folder
# The grader's own bounds on waiting for Prometheus: a few scrape intervals, never minutes more.
DEFAULT_INTERVAL_SECONDS = 15.0
WAIT_MARGIN_SECONDS = 15.0
MAX_INTERVAL_SECONDS = 60.0


# ---------------------------------------------------------------------------------------------
# Reading the learner's files


# A monitoring file is a few kilobytes. These bounds keep a hostile one from costing the grader
# minutes (pure-Python YAML parses about 100 KB a second) or memory (an alias bomb expands
# exponentially once read): a configuration has no need of aliases.
YAML_LIMIT = 256 * 1024
YAML_EVENTS_LIMIT = 100_000
PROVISIONING_FILES_LIMIT = 10
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> object:
    """YAML without aliases (``*name``) and of a bounded size; yaml.YAMLError or ValueError otherwise."""
    for count, event in enumerate(yaml.parse(text, Loader=_LOADER)):
        if isinstance(event, yaml.AliasEvent):
            raise ValueError("it uses a YAML alias (*name): write the value out")
        if count > YAML_EVENTS_LIMIT:
            raise ValueError(f"it holds more than {YAML_EVENTS_LIMIT} YAML nodes")
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)


def _yaml(ctx: Context, relative: str) -> tuple[object, str]:
    """(document, '') or (None, why not)."""
    if not ctx.file(relative).is_file():
        return None, f"{relative} does not exist in the workspace: run the cell that writes it"
    try:
        return load_yaml(ctx.read_text(relative, limit=YAML_LIMIT)), ""
    except ValueError as error:
        return None, f"{relative} cannot be read: {error}"
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return None, f"{relative} is not valid YAML{where}: {getattr(error, 'problem', None) or error}"


def _services(ctx: Context) -> dict:
    return ctx.compose.model.get("services") or {}


def _roles(ctx: Context) -> tuple[str | None, str | None, str | None]:
    """(service built from the workspace, Prometheus, Grafana) of the normalised model."""
    return compose_model.roles(ctx.compose.model)


def _flag(command: object, name: str) -> str | None:
    """The value of ``--name=value`` (or ``--name value``) in a compose command list."""
    parts = [str(p) for p in command] if isinstance(command, list) else []
    for index, part in enumerate(parts):
        if part.startswith(f"--{name}="):
            return part.split("=", 1)[1]
        if part == f"--{name}" and index + 1 < len(parts):
            return parts[index + 1]
    return None


def _prometheus_mounts(ctx: Context) -> tuple[dict[str, str], str]:
    """(container path -> workspace path, the config file's container path) as the compose file
    mounts Prometheus' files; the monitoring folder at /etc/prometheus when it cannot tell."""
    fallback = {"/etc/prometheus": "monitoring"}, DEFAULT_CONFIG_PATH
    try:
        normalised = ctx.compose
    except Exception:  # compose-valid says why
        return fallback
    _, prometheus, _ = _roles(ctx)
    if prometheus is None:
        return fallback
    spec = _services(ctx)[prometheus]
    mounts = {}
    for volume in spec.get("volumes") or []:
        relative = normalised.relative(str(volume.get("source") or "")) if volume.get("type") == "bind" else None
        if relative is not None and relative != "":
            mounts[str(volume["target"])] = relative
    config = _flag(spec.get("command"), "config.file") or DEFAULT_CONFIG_PATH
    return (mounts or fallback[0]), config


def _rules(document: object) -> list[dict]:
    groups = document.get("groups") if isinstance(document, dict) else None
    return [
        rule
        for group in (groups if isinstance(groups, list) else [])
        if isinstance(group, dict)
        for rule in (group.get("rules") or [])
        if isinstance(rule, dict)
    ]


def _promtool_said(output: str, lines: int = 6, *, first_failure: bool = False) -> str:
    """promtool's words: its last lines, or (``first_failure``) the lines from its first FAILED on,
    where a failing unit test names the test, the time and what was expected."""
    kept = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if first_failure:
        start = next((i for i, line in enumerate(kept) if "FAILED" in line), max(len(kept) - lines, 0))
        return " | ".join(kept[start : start + lines]) or "no output"
    return " | ".join(kept[-lines:]) or "no output"


# ---------------------------------------------------------------------------------------------
# The compose file


@STEP.check(
    "compose-valid",
    "docker compose config accepts docker-compose.yml: the service built from the workspace, Prometheus and Grafana",
    points=2,
    hint="Run `docker compose config` in the workspace: it names the first error. One service has "
    "build: . (step 05's Dockerfile), one runs prom/prometheus:v2.42.0, one grafana/grafana.",
    needs=("compose",),
)
def compose_valid(ctx: Context) -> Outcome:
    services = _services(ctx)
    built = [name for name, spec in services.items() if spec.get("build")]
    if len(built) != 1:
        return Outcome.fail(
            f"{len(built)} services are built from a Dockerfile ({', '.join(built) or 'none'}): exactly one, the "
            "service, has build: ."
        )
    context = str((services[built[0]].get("build") or {}).get("context", ""))
    if ctx.compose.relative(context) != "":
        return Outcome.fail(f"{built[0]} is built from {context}, not from the workspace (build: .)")
    api, prometheus, grafana = _roles(ctx)
    missing = [what for what, name in (("prom/prometheus", prometheus), ("grafana/grafana", grafana)) if name is None]
    if missing:
        return Outcome.fail(f"no service runs {' or '.join(missing)}; services: {', '.join(services)}")
    return Outcome.ok(
        f"services: {api} (built from the workspace), {prometheus} ({services[prometheus]['image']}), "
        f"{grafana} ({services[grafana]['image']})"
    )


@STEP.check(
    "compose-healthchecks",
    "every service has a healthcheck; the service's asks its own /ready or /health",
    points=1,
    hint="healthcheck: test: [CMD, ...] with interval, timeout, retries and a start_period long enough "
    "for the model to load. The Prometheus image has wget: http://127.0.0.1:9090/-/ready.",
    needs=("compose",),
)
def compose_healthchecks(ctx: Context) -> Outcome:
    api, _, _ = _roles(ctx)
    image_has_one = _dockerfile_healthcheck(ctx)
    missing, wrong = [], []
    for name, spec in _services(ctx).items():
        check = spec.get("healthcheck") or {}
        test = check.get("test")
        disabled = check.get("disable") or (isinstance(test, list) and test[:1] == ["NONE"])
        if not test or disabled:
            if name == api and image_has_one and not disabled:
                continue  # the image's own HEALTHCHECK (step 05) applies
            missing.append(name)
        elif name == api and not re.search(r"/(ready|health)\b", json.dumps(test)):
            wrong.append(name)
    if missing:
        return Outcome.fail(
            f"no healthcheck for {', '.join(missing)}: without one, Compose calls a service ready as soon as its "
            "process starts, and depends_on: condition: service_healthy cannot wait for it"
        )
    if wrong:
        return Outcome.fail(f"{wrong[0]}'s healthcheck asks neither /ready nor /health")
    return Outcome.ok("every service has a healthcheck")


def _dockerfile_healthcheck(ctx: Context) -> bool:
    if not ctx.file("Dockerfile").is_file():
        return False
    final = dockerfile.stages(dockerfile.parse(ctx.read_text("Dockerfile")))[-1:]
    checks = [i for stage in final for i in stage if i.keyword == "HEALTHCHECK"]
    return bool(checks) and checks[-1].arguments.strip().upper() != "NONE"


@STEP.check(
    "compose-startup-order",
    "depends_on waits for health (condition: service_healthy), never for a container that merely started",
    points=1,
    hint="depends_on: {prometheus: {condition: service_healthy}}. The short form (depends_on: [prometheus]) "
    "only waits until the container starts, seconds before it answers.",
    needs=("compose",),
)
def compose_startup_order(ctx: Context) -> Outcome:
    waits, loose = [], []
    for name, spec in _services(ctx).items():
        for other, condition in (spec.get("depends_on") or {}).items():
            kind = (condition or {}).get("condition", "service_started")
            (waits if kind in HEALTHY_CONDITIONS else loose).append(f"{name} -> {other} ({kind})")
    if loose:
        return Outcome.fail(f"depends_on without a health condition: {', '.join(loose)}")
    if not waits:
        return Outcome.fail(
            "no service waits for another: Grafana should wait for a healthy Prometheus (depends_on with "
            "condition: service_healthy)"
        )
    return Outcome.ok("start-up order: " + ", ".join(waits))


@STEP.check(
    "compose-limits-and-ports",
    "limits, a restart policy, ports on 127.0.0.1 only, Prometheus' data on a named volume, settings from an env file",
    points=2,
    hint="deploy.resources.limits (cpus, memory) and restart: unless-stopped on each service; ports as "
    '"127.0.0.1:5000:5000" (a bare "5000:5000" opens the port to the whole network); a named volume at '
    "Prometheus' --storage.tsdb.path; env_file: for the service's settings.",
    needs=("compose",),
)
def compose_limits_and_ports(ctx: Context) -> Outcome:
    api, prometheus, _ = _roles(ctx)
    problems = []
    services = _services(ctx)
    for name, spec in services.items():
        limits = ((spec.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        memory = limits.get("memory") or spec.get("mem_limit")
        cpus = limits.get("cpus") or spec.get("cpus")
        if not memory or not cpus:
            problems.append(f"{name} has no {'memory' if not memory else 'CPU'} limit")
        if str(spec.get("restart") or "no") == "no":
            problems.append(f"{name} has no restart policy")
        for port in spec.get("ports") or []:
            if port.get("published") and str(port.get("host_ip") or "") not in LOCAL_ADDRESSES:
                problems.append(
                    f"{name} publishes port {port.get('published')} on every interface (write 127.0.0.1:{port.get('published')}:...)"
                )
    if prometheus is not None:
        storage = _flag(services[prometheus].get("command"), "storage.tsdb.path") or DEFAULT_STORAGE_PATH
        named = [v for v in services[prometheus].get("volumes") or [] if v.get("type") == "volume" and v.get("source")]
        if not any(str(v.get("target")).rstrip("/") == storage.rstrip("/") for v in named):
            problems.append(f"Prometheus' data ({storage}) is not on a named volume: it is lost with the container")
    raw, _ = _yaml(ctx, COMPOSE_FILE)
    raw_api = ((raw or {}).get("services") or {}).get(api) if isinstance(raw, dict) and api else None
    if api and not (isinstance(raw_api, dict) and raw_api.get("env_file")):
        problems.append(f"{api} does not read its settings from an env file (env_file:)")
    if problems:
        rules = 3 * len(services) + 2
        return Outcome.partial(1 - len(problems) / rules, "; ".join(problems))
    return Outcome.ok("limits and restart policies everywhere, ports on 127.0.0.1, named volumes, env file")


# ---------------------------------------------------------------------------------------------
# Prometheus' configuration and rules, through promtool


@STEP.check(
    "prometheus-config",
    "promtool check config accepts Prometheus' configuration, with its rule files, as the compose file mounts them",
    points=1,
    hint="Mount monitoring/prometheus.yml at /etc/prometheus/prometheus.yml and the rule files beside it; "
    "rule_files paths are relative to the configuration file. Run promtool yourself: notebook 06 shows how.",
    needs=("promtool",),
)
def prometheus_config(ctx: Context) -> Outcome:
    if not ctx.file(PROMETHEUS_CONFIG).is_file():
        return Outcome.fail(f"{PROMETHEUS_CONFIG} does not exist in the workspace: run the cell that writes it")
    mounts, config = _prometheus_mounts(ctx)
    status, output = ctx.promtool.run(["check", "config", config], mounts=mounts)
    if status != 0:
        return Outcome.fail(f"promtool check config {config}: {_promtool_said(output)}")
    document, _ = _yaml(ctx, PROMETHEUS_CONFIG)
    rule_files = (document or {}).get("rule_files") if isinstance(document, dict) else None
    if not rule_files:
        return Outcome.fail("the configuration loads no rule files (rule_files:): no alert can ever fire")
    return Outcome.ok(f"valid, with {len(rule_files)} rule file(s)")


ALERT_KINDS = {
    "an instance that stops answering (up == 0)": lambda expr, recorded: bool(
        re.search(r"\bup\b", expr) and re.search(r"(==\s*0|<\s*1|!=\s*1)(?![.\d])", expr)
    ),
    "the ratio of 5xx answers": lambda expr, recorded: "http_requests_total" in expr and "5" in expr,
    "p95 latency of the histogram": lambda expr, recorded: _is_p95(expr) or any(name in expr for name in recorded),
    "a model that is not ready": lambda expr, recorded: "model_info" in expr or "ready" in expr.lower(),
}


def _is_p95(expression: str) -> bool:
    return bool(re.search(r"histogram_quantile\s*\(\s*0?\.95\b", expression))


@STEP.check(
    "alert-rules",
    "alert rules for instance down, error ratio, p95 latency and model not ready, and a recording rule for the p95",
    points=2,
    hint="Each alert: expr, for:, labels.severity and annotations.summary. Record the p95 once "
    "(record: job:http_request_duration_seconds:p95_5m, histogram_quantile(0.95, sum by (job, le) (rate(..._bucket[5m])))) "
    "and alert on the recorded series.",
    needs=("promtool",),
)
def alert_rules(ctx: Context) -> Outcome:
    document, failed = _yaml(ctx, ALERTS)
    if failed:
        return Outcome.fail(failed)
    status, output = ctx.promtool.run(["check", "rules", f"{WORK}/alerts.yml"], mounts={f"{WORK}/alerts.yml": ALERTS})
    if status != 0:
        return Outcome.fail(f"promtool check rules: {_promtool_said(output)}")
    rules = _rules(document)
    alerts = [r for r in rules if r.get("alert")]
    recording = [r for r in rules if r.get("record")]
    p95_recorded = {str(r["record"]) for r in recording if _is_p95(str(r.get("expr", "")))}
    problems = []
    if not p95_recorded:
        problems.append("no recording rule computes the p95 (histogram_quantile(0.95, ...))")
    for kind, matches in ALERT_KINDS.items():
        if not any(matches(str(a.get("expr", "")), p95_recorded if "p95" in kind else set()) for a in alerts):
            problems.append(f"no alert on {kind}")
    for alert in alerts:
        name = alert["alert"]
        if not alert.get("for"):
            problems.append(f"{name} has no for: (one bad scrape would page someone)")
        if not (alert.get("labels") or {}).get("severity"):
            problems.append(f"{name} has no severity label")
        if not (alert.get("annotations") or {}).get("summary") and not (alert.get("annotations") or {}).get(
            "description"
        ):
            problems.append(f"{name} has no summary annotation")
    if problems:
        return Outcome.partial(max(0.0, 1 - len(problems) / 6), "; ".join(problems))
    return Outcome.ok(
        f"{len(alerts)} alerts, {len(recording)} recording rule(s): " + ", ".join(a["alert"] for a in alerts)
    )


@STEP.check(
    "alert-rules-tested",
    "promtool test rules passes, and every alert has a unit test in which it fires",
    points=2,
    hint="alerts.test.yml: rule_files: [alerts.yml], then tests with input_series and alert_rule_test; for each "
    "alert one eval_time at which exp_alerts lists it (and, better, one before its for: where it does not).",
    needs=("promtool",),
)
def alert_rules_tested(ctx: Context) -> Outcome:
    tests, failed = _yaml(ctx, ALERT_TESTS)
    if failed:
        return Outcome.fail(failed)
    rules, failed = _yaml(ctx, ALERTS)
    if failed:
        return Outcome.fail(failed)
    status, output = ctx.promtool.run(
        ["test", "rules", "alerts.test.yml"], mounts={WORK: "monitoring"}, working_dir=WORK
    )
    if status != 0:
        return Outcome.fail(f"promtool test rules: {_promtool_said(output, 16, first_failure=True)}")
    fired = set()
    for test in (tests or {}).get("tests") or [] if isinstance(tests, dict) else []:
        for case in (test or {}).get("alert_rule_test") or []:
            if isinstance(case, dict) and case.get("exp_alerts"):
                fired.add(str(case.get("alertname")))
    alerts = [str(r["alert"]) for r in _rules(rules) if r.get("alert")]
    untested = [name for name in alerts if name not in fired]
    if not alerts:
        return Outcome.fail(f"{ALERTS} has no alerts to test")
    if untested:
        return Outcome.partial(
            1 - len(untested) / len(alerts), f"no test in which these alerts fire: {', '.join(untested)}"
        )
    return Outcome.ok(f"promtool's unit tests pass; each of the {len(alerts)} alerts fires in one")


# ---------------------------------------------------------------------------------------------
# Grafana, statically (no Grafana server can run offline)

DASHBOARD_NEEDS = {
    "request rate": lambda e: "http_requests_total" in e and "rate(" in e,
    "error ratio": lambda e: "http_requests_total" in e and "5" in e and "/" in e,
    "p50 latency": lambda e: bool(re.search(r"histogram_quantile\s*\(\s*0?\.5\b", e)),
    "p95 latency": lambda e: _is_p95(e) or "p95" in e,
    "p99 latency": lambda e: bool(re.search(r"histogram_quantile\s*\(\s*0?\.99\b", e)),
    "predictions": lambda e: "predictions_total" in e,
    "ready state": lambda e: "model_info" in e or "ready" in e.lower() or bool(re.search(r"\bup\b", e)),
}


def _dashboards(ctx: Context) -> tuple[list[tuple[str, object]], str]:
    folder = ctx.file(DASHBOARDS)
    files = (
        sorted(p for p in folder.glob("*.json") if p.is_file())[:PROVISIONING_FILES_LIMIT] if folder.is_dir() else []
    )
    if not files:
        return [], f"no dashboard JSON in {DASHBOARDS}/"
    documents = []
    for path in files:
        relative = f"{DASHBOARDS}/{path.name}"
        try:
            documents.append((relative, json.loads(ctx.read_text(relative))))
        except json.JSONDecodeError as error:
            return [], f"{relative} is not valid JSON (line {error.lineno}): {error.msg}"
    return documents, ""


def _provisioning(ctx: Context, folder: str) -> list[dict]:
    documents = []
    directory = ctx.file(folder)
    for path in sorted(directory.glob("*.y*ml"))[:PROVISIONING_FILES_LIMIT] if directory.is_dir() else []:
        document, _ = _yaml(ctx, f"{folder}/{path.name}")
        if isinstance(document, dict):
            documents.append(document)
    return documents


@STEP.check(
    "grafana-provisioning",
    "Grafana is provisioned: a Prometheus datasource at the stack's Prometheus, a dashboard provider where the "
    "dashboards are mounted, and a dashboard with the service's key panels",
    points=1,
    hint="datasources: url http://<prometheus service>:9090 (the compose name, not localhost: inside Grafana's "
    "container localhost is Grafana); providers: options.path = where compose mounts monitoring/grafana/dashboards; "
    "panels for request rate, error ratio, p50/p95/p99 latency, predictions and ready state.",
)
def grafana_provisioning(ctx: Context) -> Outcome:
    problems = []
    prometheus_host, dashboards_path = "prometheus:9090", None
    try:
        _, prometheus, grafana = _roles(ctx)
        services = _services(ctx)
        if prometheus:
            prometheus_host = f"{prometheus}:{compose_model.service_port(services[prometheus], 9090)}"
        if grafana:
            for volume in services[grafana].get("volumes") or []:
                if volume.get("type") == "bind" and ctx.compose.relative(str(volume.get("source"))) == DASHBOARDS:
                    dashboards_path = str(volume.get("target"))
    except Exception:  # no compose model: compose-valid says why; the files are still read
        pass
    sources = [s for d in _provisioning(ctx, DATASOURCES) for s in d.get("datasources") or [] if isinstance(s, dict)]
    prometheus_sources = [s for s in sources if s.get("type") == "prometheus"]
    if not prometheus_sources:
        problems.append(f"no datasource of type prometheus in {DATASOURCES}/")
    elif not any(prometheus_host in str(s.get("url", "")) for s in prometheus_sources):
        urls = ", ".join(str(s.get("url")) for s in prometheus_sources)
        problems.append(f"the Prometheus datasource points at {urls}, not at http://{prometheus_host}")
    providers = [
        p for d in _provisioning(ctx, DASHBOARD_PROVIDERS) for p in d.get("providers") or [] if isinstance(p, dict)
    ]
    paths = [str((p.get("options") or {}).get("path", "")) for p in providers]
    if not providers:
        problems.append(f"no dashboard provider in {DASHBOARD_PROVIDERS}/")
    elif dashboards_path and not any(path.rstrip("/") == dashboards_path.rstrip("/") for path in paths):
        problems.append(
            f"the dashboard provider reads {', '.join(paths)}, but compose mounts the dashboards at {dashboards_path}"
        )
    documents, failed = _dashboards(ctx)
    if failed:
        problems.append(failed)
    expressions = [e for _, document in documents for _, e in promql.dashboard_queries(document)]
    lacking = [need for need, matches in DASHBOARD_NEEDS.items() if not any(matches(e) for e in expressions)]
    if documents and lacking:
        problems.append(f"no panel shows {', '.join(lacking)}")
    if problems:
        return Outcome.partial(max(0.0, 1 - len(problems) / 4), "; ".join(problems))
    return Outcome.ok(f"datasource at {prometheus_host}, {len(expressions)} queries in {len(documents)} dashboard(s)")


@STEP.check(
    "dashboard-queries",
    "every query of the dashboards is valid PromQL (promtool parses each one)",
    points=1,
    hint="Paste the query into Prometheus' expression browser (http://127.0.0.1:9090/graph) to see the parse "
    "error; Grafana variables ($__rate_interval, $job) are replaced by sample values here.",
    needs=("promtool",),
)
def dashboard_queries(ctx: Context) -> Outcome:
    documents, failed = _dashboards(ctx)
    if failed:
        return Outcome.fail(failed)
    queries = [
        (f"{path}: {title}", e) for path, document in documents for title, e in promql.dashboard_queries(document)
    ]
    if not queries:
        return Outcome.fail("the dashboards hold no Prometheus query (panels[].targets[].expr)")
    rules = promql.as_recording_rules(queries)
    status, output = ctx.promtool.run(["check", "rules", f"{WORK}/queries.yml"], texts={f"{WORK}/queries.yml": rules})
    if status != 0:
        broken = sorted({int(i) for i in re.findall(r"dashboard:query_(\d+)", output)})
        if broken:
            named = "; ".join(f"{queries[i][0]}: {queries[i][1]}" for i in broken[:3] if i < len(queries))
            return Outcome.fail(f"{len(broken)} queries do not parse: {named} ({_promtool_said(output, 2)})")
        return Outcome.fail(f"promtool could not check the queries: {_promtool_said(output)}")
    return Outcome.ok(f"{len(queries)} queries parse")


# ---------------------------------------------------------------------------------------------
# The stack, live


@STEP.check(
    "stack-healthy",
    "the grader's start of the stack (docker compose up, two workers) gets every service healthy",
    points=2,
    hint="The message quotes the first failing service's logs. Run `docker compose up -d --wait` and "
    "`docker compose ps` yourself; the service loads the model before /ready answers 200.",
    needs=("stack",),
)
def stack_healthy(ctx: Context) -> Outcome:
    stack = ctx.stack
    states = ", ".join(f"{name} {state}" for name, state in stack.health().items())
    notes = "; ".join(stack.plan.notes)
    return Outcome.ok(f"{states}" + (f" ({notes})" if notes else ""), **stack.figures)


def _api_target(ctx: Context) -> tuple[dict | None, list[dict]]:
    plan = ctx.stack.plan
    targets = (ctx.stack.prometheus_api("/api/v1/targets", state="active") or {}).get("activeTargets") or []
    wanted = f"{plan.api}:{plan.api_port}"
    for target in targets:
        if (target.get("discoveredLabels") or {}).get("__address__") == wanted or (target.get("labels") or {}).get(
            "instance"
        ) == wanted:
            return target, targets
    return None, targets


def _interval(target: dict | None) -> float:
    seconds = promql_duration((target or {}).get("scrapeInterval")) or DEFAULT_INTERVAL_SECONDS
    return min(seconds, MAX_INTERVAL_SECONDS)


def promql_duration(text: object) -> float | None:
    """Prometheus' durations ('15s', '1m', '1m30s') in seconds; None when absent or unreadable."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", str(text or ""))
    if not parts:
        return None
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return float(sum(int(amount) * unit[u] for amount, u in parts))


@STEP.check(
    "target-up",
    "Prometheus scrapes the service (target up), at the interval its configuration sets",
    points=2,
    hint="scrape_configs: targets: ['<service name>:<port>'] (the compose name and the port gunicorn binds, "
    "not localhost: inside Prometheus' container localhost is Prometheus), metrics_path: /metrics.",
    needs=("stack",),
)
def target_up(ctx: Context) -> Outcome:
    plan = ctx.stack.plan
    started = time.monotonic()
    down_since = None
    while True:
        target, targets = _api_target(ctx)
        interval = _interval(target or (targets[0] if targets else None))
        if target is not None and target.get("health") == "up":
            break
        now = time.monotonic()
        if (
            target is None
            and (targets or now - started > 3 * interval)
            and now - started > interval + WAIT_MARGIN_SECONDS / 3
        ):
            # Prometheus has loaded its configuration (its targets are there), and none is the service.
            urls = ", ".join(str(t.get("scrapeUrl")) for t in targets) or "none"
            return Outcome.fail(
                f"Prometheus has no target for the service at {plan.api}:{plan.api_port}; it scrapes: {urls}"
            )
        if target is not None and target.get("health") == "down":
            down_since = down_since or now
            if now - down_since > interval + 2:  # down on two scrapes in a row: it will not come up
                return Outcome.fail(
                    f"Prometheus reports {target.get('scrapeUrl')} down: {target.get('lastError') or 'no error given'}"
                )
        if now - started > 3 * interval + WAIT_MARGIN_SECONDS:
            return Outcome.fail(f"Prometheus did not scrape {plan.api}:{plan.api_port} within {now - started:.0f} s")
        time.sleep(1)
    job = (target.get("labels") or {}).get("job", "?")
    measured = _measured_interval(ctx, target, interval)
    return Outcome.ok(
        f"{target.get('scrapeUrl')} is up (job {job})",
        scrape_interval=f"{interval:g} s",
        measured_interval=f"{measured:.1f} s" if measured is not None else "not seen",
        last_scrape_seconds=f"{float(target.get('lastScrapeDuration') or 0):.3f}",
    )


def _scrape_time(target: dict | None) -> float | None:
    """When Prometheus last scraped ``target`` (its RFC 3339 lastScrape), in seconds since the epoch."""
    import datetime

    text = str((target or {}).get("lastScrape") or "")
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not match or text.startswith("0001-"):
        return None
    stamp = datetime.datetime.fromisoformat(match.group(1) + (match.group(3).replace("Z", "+00:00")))
    return stamp.timestamp() + float(match.group(2) or 0)


def _measured_interval(ctx: Context, target: dict, interval: float) -> float | None:
    """Seconds between two of Prometheus' scrapes of the service, as it reports them."""
    first = _scrape_time(target)
    deadline = time.monotonic() + 2 * interval + 2
    while first is not None and time.monotonic() < deadline:
        time.sleep(0.5)
        later = _scrape_time(_api_target(ctx)[0])
        if later is not None and later > first:
            return later - first
    return None


def _expressions(ctx: Context) -> tuple[list[tuple[str, str]], set[str]]:
    """(where, expression) of every alert/recording rule and dashboard query, and the recorded names."""
    found, recorded = [], set()
    rules, _ = _yaml(ctx, ALERTS) if ctx.file(ALERTS).is_file() else (None, "")
    for rule in _rules(rules):
        found.append((f"{ALERTS} {rule.get('alert') or rule.get('record')}", str(rule.get("expr", ""))))
        if rule.get("record"):
            recorded.add(str(rule["record"]))
    documents, _ = _dashboards(ctx)
    for path, document in documents:
        found += [(f"{path} {title}", e) for title, e in promql.dashboard_queries(document)]
    return found, recorded


def _exported(ctx: Context) -> set[str]:
    """Sample and family names the service's /metrics exports, after traffic of every kind."""
    from prometheus_client.parser import text_string_to_metric_families

    api = ctx.stack.api
    api.request("POST", "/predict?top_k=1", files={"file": ("cat.jpg", photo_jpeg_bytes(), "image/jpeg")}, timeout=60)
    api.request("POST", "/predict", data=b"not an image", headers={"Content-Type": "text/plain"})
    api.request("GET", f"/not-here-{ctx.rng.randint(100, 999)}")
    names = set()
    for _ in range(3):  # with per-worker metrics, each scrape reaches one worker
        response = api.request("GET", "/metrics", timeout=30)
        if response.status_code != 200:
            continue
        for family in text_string_to_metric_families(response.text):
            names.add(family.name)
            names |= {sample.name for sample in family.samples}
    return names


@STEP.check(
    "metrics-exported",
    "every metric the alert rules and dashboards use is one the service exports (read from its live /metrics)",
    points=1,
    hint="A rule on a metric nobody exports never fires, and a panel on one stays empty, silently. Compare "
    "with `curl 127.0.0.1:5000/metrics`: counters end in _total, histograms have _bucket, _sum and _count.",
    needs=("stack",),
)
def metrics_exported(ctx: Context) -> Outcome:
    expressions, recorded = _expressions(ctx)
    if not expressions:
        return Outcome.fail("no alert rules or dashboard queries to compare with the service's metrics")
    exported = _exported(ctx)
    if not exported:
        return Outcome.fail("the service's /metrics answered nothing readable")
    unknown = {}
    for where, expression in expressions:
        for name in promql.used_metrics([expression], recorded):
            if name not in exported:
                unknown.setdefault(name, where)
    if unknown:
        listed = "; ".join(f"{name} (in {where})" for name, where in sorted(unknown.items())[:5])
        return Outcome.fail(f"used but not exported by the service: {listed}")
    used = promql.used_metrics([e for _, e in expressions], recorded)
    return Outcome.ok(f"all {len(used)} metrics used are exported: {', '.join(sorted(used))}")


def _query_value(ctx: Context, expression: str) -> float | None:
    data = ctx.stack.prometheus_api("/api/v1/query", query=expression) or {}
    result = data.get("result") or []
    if not result:
        return None
    try:
        return float(result[0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


@STEP.check(
    "requests-counted",
    "requests to the service, spread over two workers, are all counted in Prometheus (predictions_total)",
    points=2,
    hint="With several gunicorn workers, set PROMETHEUS_MULTIPROC_DIR (a folder on a tmpfs, emptied at start) "
    "so every worker writes its metrics there, serve /metrics from a MultiProcessCollector, and call "
    "multiprocess.mark_process_dead in gunicorn's child_exit.",
    needs=("stack",),
)
def requests_counted(ctx: Context) -> Outcome:
    import concurrent.futures

    import requests

    stack = ctx.stack
    target, _ = _api_target(ctx)
    if target is None or target.get("health") != "up":
        return Outcome.fail("Prometheus does not scrape the service (see target-up)")
    workers = [c for c in stack.process_commands(stack.plan.api) if "gunicorn" in c]
    if len(workers) < 3:
        return Outcome.fail(
            f"the service runs {max(len(workers) - 1, 0)} gunicorn worker(s) with WEB_CONCURRENCY=2: gunicorn.conf.py "
            "must read the number of workers from it (step 02)"
        )
    job = (target.get("labels") or {}).get("job", "")
    query = f'sum(predictions_total{{job="{job}"}}) or vector(0)'
    interval = _interval(target)
    before = _wait_for_fresh_value(ctx, query, interval)
    sent = ctx.rng.randint(8, 14)
    upload = photo_jpeg_bytes()

    def predict(_: int) -> int:
        with requests.Session() as session:  # a new connection each: the workers share them out
            response = stack.api.request(
                "POST",
                "/predict?top_k=1",
                session=session,
                files={"file": ("cat.jpg", upload, "image/jpeg")},
                timeout=60,
            )
            return response.status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(predict, range(sent)))
    answered = sum(1 for status in statuses if status == 200)
    if answered != sent:
        return Outcome.fail(f"only {answered} of {sent} predictions answered 200 ({sorted(set(statuses))})")
    expected = (before or 0) + sent
    deadline = time.monotonic() + 2 * interval + WAIT_MARGIN_SECONDS / 3  # two scrapes after the last answer
    seen: list[float] = []
    while time.monotonic() < deadline:
        value = _query_value(ctx, query)
        if value is not None:
            seen.append(value)
            if abs(value - expected) < 0.5:
                return Outcome.ok(
                    f"sum(predictions_total) in Prometheus rose by exactly the {sent} predictions the grader sent, "
                    f"answered by 2 workers",
                    workers=str(len(workers) - 1),
                )
        time.sleep(1)
    counted = [f"{value - (before or 0):g}" for value in dict.fromkeys(seen)]
    return Outcome.fail(
        f"after the grader's {sent} predictions, Prometheus' sum(predictions_total) rose by "
        f"{' or '.join(counted[-4:]) or 'nothing'} (from one scrape to the next), not by {sent}: each scrape "
        f"sees one worker's counters" + _multiprocess_note(ctx)
    )


def _multiprocess_note(ctx: Context) -> str:
    """Where PROMETHEUS_MULTIPROC_DIR is missing, say so (compose environment, env files, Dockerfile)."""
    api, _, _ = _roles(ctx)
    environment = (_services(ctx).get(api) or {}).get("environment") or {} if api else {}
    in_dockerfile = ctx.file("Dockerfile").is_file() and "PROMETHEUS_MULTIPROC_DIR" in ctx.read_text("Dockerfile")
    if "PROMETHEUS_MULTIPROC_DIR" in environment or in_dockerfile:
        return ""
    return f"; {api}'s environment (compose file and env files) and the Dockerfile set no PROMETHEUS_MULTIPROC_DIR"


def _wait_for_fresh_value(ctx: Context, query: str, interval: float) -> float | None:
    """The query's value once a scrape has happened since now (so it counts all that went before)."""
    time.sleep(min(interval, MAX_INTERVAL_SECONDS) + 1)
    return _query_value(ctx, query)


# Runs last (last=True): it stops the service, so every other live check must have run before it.
@STEP.check(
    "instance-down-alert",
    "when the service stops, an alert about it goes pending (or firing) within a scrape and an evaluation",
    points=1,
    hint='alert: InstanceDown, expr: up{job="<your job>"} == 0, for: 30s (or 1m). The alert is pending '
    "from the first evaluation after a failed scrape, firing once for: has passed.",
    needs=("stack",),
    last=True,
)
def instance_down_alert(ctx: Context) -> Outcome:
    stack = ctx.stack
    target, _ = _api_target(ctx)
    if target is None:
        return Outcome.fail("Prometheus does not scrape the service (see target-up): no alert could know it stopped")
    labels = target.get("labels") or {}
    groups = (stack.prometheus_api("/api/v1/rules", type="alert") or {}).get("groups") or []
    rules = [rule for group in groups for rule in group.get("rules") or []]
    names = [rule.get("name") for rule in rules]
    if not names:
        return Outcome.fail("Prometheus loaded no alert rules (rule_files in its configuration, mounted beside it)")
    # The instance-down alert is one on `up`: another (latency under the grader's load) may go
    # pending at the same moment for reasons of its own.
    on_up = {str(rule.get("name")) for rule in rules if re.search(r"\bup\b", str(rule.get("query", "")))}
    if not on_up:
        return Outcome.fail(
            f"no alert rule Prometheus loaded is on up (the alerts: {', '.join(map(str, names))}): "
            "only up == 0 says that Prometheus cannot scrape the service"
        )
    evaluation = max((promql_duration(g.get("interval")) or DEFAULT_INTERVAL_SECONDS for g in groups), default=15.0)
    # An alert about the service already pending while it answers says nothing about it stopping.
    already = {
        str(alert.get("labels", {}).get("alertname"))
        for alert in (stack.prometheus_api("/api/v1/alerts") or {}).get("alerts") or []
        if _about(alert.get("labels") or {}, labels)
    }
    stack.stop(stack.plan.api)
    stopped = time.monotonic()
    # Pending comes at the first evaluation after a failed scrape: one interval of each, twice over.
    wait = 2 * (_interval(target) + min(evaluation, MAX_INTERVAL_SECONDS)) + WAIT_MARGIN_SECONDS / 3
    while time.monotonic() - stopped < wait:
        alerts = (stack.prometheus_api("/api/v1/alerts") or {}).get("alerts") or []
        for alert in alerts:
            alert_labels = alert.get("labels") or {}
            if alert_labels.get("alertname") in already or alert_labels.get("alertname") not in on_up:
                continue
            if _about(alert_labels, labels) and alert.get("state") in ("pending", "firing"):
                latency = time.monotonic() - stopped
                return Outcome.ok(
                    f"{alert_labels.get('alertname')} went {alert['state']} {latency:.0f} s after the service stopped",
                    alert_latency_seconds=f"{latency:.1f}",
                )
        time.sleep(1)
    before = f" ({', '.join(sorted(already))} pending or firing before it stopped: not counted)" if already else ""
    return Outcome.fail(
        f"no alert on up about {labels.get('instance')} went pending within {wait:.0f} s of the service "
        f"stopping{before}; the alerts on up: {', '.join(sorted(on_up))}"
    )


def _about(alert_labels: dict, target_labels: dict) -> bool:
    """Whether an alert concerns the scraped service: its instance, or its job when it has no instance."""
    if "instance" in alert_labels:
        return alert_labels["instance"] == target_labels.get("instance")
    return alert_labels.get("job") == target_labels.get("job")


# What grading can do without a Docker engine: the compose file's own checks and Grafana's files.
STATIC_CHECKS = frozenset(c.id.split(".", 1)[1] for c in STEP.checks if not {"stack"} & set(c.needs))
