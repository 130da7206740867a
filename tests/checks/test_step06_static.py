"""Step 06's static checks: the compose file as the Compose CLI normalises it (in the sandbox),
Prometheus' configuration and rules through promtool (in the course's Prometheus image), and
Grafana's provisioning. Each passes on the reference and fails, saying why, on a workspace with
one mistake, and only that check fails."""

from __future__ import annotations

import pytest

from autograder.checks import promql, step06_monitoring
from autograder.checks.result import Verdict
from autograder.grading import grade_step

STEP_ID = "06"
STATIC = sorted(step06_monitoring.STATIC_CHECKS)
COMPOSE, PROMETHEUS = "docker-compose.yml", "monitoring/prometheus.yml"
ALERTS, TESTS = "monitoring/alerts.yml", "monitoring/alerts.test.yml"
DATASOURCE = "monitoring/grafana/provisioning/datasources/prometheus.yml"
DASHBOARD = "monitoring/grafana/dashboards/resnet-service.json"
SERVICE_ENV = "service.env"

# promtool runs in the course's Prometheus image: these need the engine and that image.
pytestmark = pytest.mark.container


def static_results(workspace) -> dict:
    return {r.id.split(".", 1)[1]: r for r in grade_step(STEP_ID, workspace, only=STATIC).results}


def test_every_static_check_passes_on_the_reference(prometheus_image, reference_workspace):
    results = static_results(reference_workspace)
    assert set(results) == set(STATIC)
    failed = {name: r.message for name, r in results.items() if r.verdict is not Verdict.PASSED}
    assert failed == {}


def test_the_blank_release_fails_every_static_check(prometheus_image, blank_workspace):
    results = static_results(blank_workspace)
    assert {name: r.verdict for name, r in results.items()} == {name: Verdict.FAILED for name in STATIC}
    assert all(r.hint for r in results.values())


def test_an_empty_workspace_says_which_file_is_missing(prometheus_image, tmp_path):
    results = static_results(tmp_path)
    assert "docker-compose.yml does not exist" in results["compose-valid"].message
    assert "monitoring/alerts.yml does not exist" in results["alert-rules"].message
    assert all(r.verdict is Verdict.FAILED for r in results.values())


HEALTHCHECK_PROMETHEUS = """    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9090/-/ready"]
      interval: 10s
      timeout: 3s
      start_period: 20s
      retries: 3
"""
DEPENDS_LONG = """    depends_on:
      prometheus:
        condition: service_healthy     # its datasource answers before the dashboards load
"""

MODEL_NOT_READY_FIRES = """      - eval_time: 6m
        alertname: ModelNotReady
        exp_alerts:
          - exp_labels:
              severity: critical
              job: resnet-service
              instance: a:5000
            exp_annotations:
              summary: "a:5000 is up but has served no loaded model for 5 minutes"
"""

# name: (edits, the checks that must fail (all others pass), words the first one's message holds)
VARIANTS = {
    "compose-unknown-key": (
        [(COMPOSE, "    image: prom/prometheus:v2.42.0\n", "    image: prom/prometheus:v2.42.0\n    colour: blue\n")],
        {"compose-valid", "compose-healthchecks", "compose-startup-order", "compose-limits-and-ports"},
        "docker compose config rejects",
    ),
    "no-grafana": (
        [(COMPOSE, "image: grafana/grafana:10.4.2", "image: example/dashboards:1.0")],
        {"compose-valid"},
        "grafana/grafana",
    ),
    "prometheus-without-healthcheck": (
        [(COMPOSE, HEALTHCHECK_PROMETHEUS, "")],
        {"compose-healthchecks"},
        "no healthcheck for prometheus",
    ),
    "depends-on-without-condition": (
        [(COMPOSE, DEPENDS_LONG, "    depends_on: [prometheus]\n")],
        {"compose-startup-order"},
        "service_started",
    ),
    "port-on-every-interface": (
        [(COMPOSE, '"127.0.0.1:9090:9090"', '"9090:9090"')],
        {"compose-limits-and-ports"},
        "every interface",
    ),
    "no-env-file": (
        [
            (
                COMPOSE,
                "    env_file: service.env ",
                "    environment: {PORT: '5000', MODEL_ALLOW_RANDOM_WEIGHTS: 'true'} ",
            )
        ],
        {"compose-limits-and-ports"},
        "env file",
    ),
    "invalid-scrape-interval": (
        [(PROMETHEUS, "scrape_interval: 5s ", "scrape_interval: 5 seconds ")],
        {"prometheus-config"},
        "promtool check config",
    ),
    "no-rule-files": (
        [(PROMETHEUS, "rule_files:\n  - alerts.yml", "rule_files: []\n  # - alerts.yml")],
        {"prometheus-config"},
        "no rule files",
    ),
    "broken-alert-expression": (
        [(ALERTS, 'expr: up{job="resnet-service"} == 0', 'expr: up{job="resnet-service" == 0')],
        {"prometheus-config", "alert-rules", "alert-rules-tested"},  # the configuration loads the rules too
        "promtool check rules",
    ),
    "alert-without-for": (
        [
            (
                ALERTS,
                '        for: 5m\n        labels:\n          severity: critical\n        annotations:\n          summary: "More',
                '        labels:\n          severity: critical\n        annotations:\n          summary: "More',
            )
        ],
        {"alert-rules"},
        "HighErrorRatio has no for:",
    ),
    "instance-down-always-true": (
        [(ALERTS, 'expr: up{job="resnet-service"} == 0', 'expr: up{job="resnet-service"} >= 0')],
        {"alert-rules", "alert-rules-tested"},  # its unit test sees it fire before the service stops
        "no alert on an instance that stops answering",
    ),
    "yaml-alias": (
        [(ALERTS, "groups:\n", "x-bomb: &bomb [1, 2]\nx-more: [*bomb, *bomb]\ngroups:\n")],
        {"prometheus-config", "alert-rules", "alert-rules-tested"},
        "YAML alias",
    ),
    "failing-unit-test": (
        [(TESTS, 'summary: "api:5000 has not answered', 'summary: "api:5000 has not replied')],
        {"alert-rules-tested"},
        "promtool test rules",
    ),
    "untested-alert": (
        [
            (
                TESTS,
                MODEL_NOT_READY_FIRES,
                "      - eval_time: 3m\n        alertname: ModelNotReady\n        exp_alerts: []\n",
            )
        ],
        {"alert-rules-tested"},
        "ModelNotReady",
    ),
    "datasource-on-localhost": (
        [(DATASOURCE, "url: http://prometheus:9090", "url: http://localhost:9090")],
        {"grafana-provisioning"},
        "localhost:9090",
    ),
    "broken-dashboard-query": (
        [(DASHBOARD, "histogram_quantile(0.99, sum by (le)", "histogram_quantile(0.99, sum by (le")],
        {"dashboard-queries"},
        "do not parse",
    ),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_mistake_fails_exactly_its_check(variant, prometheus_image, make_workspace):
    edits, expected, words = VARIANTS[variant]
    results = static_results(make_workspace(*edits, name=variant))
    failed = {name for name, r in results.items() if r.verdict is not Verdict.PASSED}
    assert failed == expected, {name: results[name].message for name in failed | expected}
    first = results[sorted(expected)[0]] if len(expected) > 1 else results[next(iter(expected))]
    assert any(words in results[name].message for name in expected), first.message
    assert all(results[name].hint for name in expected)


def test_compose_config_sees_no_variable_of_the_graders(prometheus_image, make_workspace, monkeypatch):
    monkeypatch.setenv("COURSE_TEST_SECRET", "grader-only-value")
    workspace = make_workspace(
        (COMPOSE, "    image: resnet-service:0.6.0\n", "    image: resnet-service:${COURSE_TEST_SECRET:-unset}\n"),
        name="interpolation",
    )
    results = static_results(workspace)
    assert results["compose-valid"].verdict is Verdict.PASSED
    assert "grader-only-value" not in results["compose-valid"].message


def test_metric_names_of_promql_expressions():
    expression = (
        'sum by (job) (rate(http_requests_total{job="x", status=~"5.."}[5m])) / '
        "sum(rate(http_requests_total[5m])) > 0.05 unless on (instance) up == 0"
    )
    assert promql.metric_names(expression) == {"http_requests_total", "up"}
    assert promql.metric_names('histogram_quantile(0.95, sum by (le) (rate(a_bucket{le!="x"}[$__rate_interval])))') == {
        "a_bucket"
    }
    assert promql.used_metrics(
        ["job:p95 > 1", "up == 0", 'ALERTS{alertname="x"}', "b_total offset 5m"], {"job:p95"}
    ) == {"b_total"}


def test_dashboard_queries_include_nested_rows_and_replace_variables():
    document = {
        "templating": {"list": [{"name": "job", "current": {"value": "resnet-service"}}]},
        "panels": [
            {"title": "a", "targets": [{"expr": 'rate(x_total{job="$job"}[$__rate_interval])'}]},
            {"type": "row", "panels": [{"title": "b", "targets": [{"expr": "y"}, {"expr": ""}]}]},
        ],
    }
    assert promql.dashboard_queries(document) == [
        ("a", 'rate(x_total{job="resnet-service"}[1m])'),
        ("b", "y"),
    ]
