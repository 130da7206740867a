"""The graded stack the grader makes from a learner's normalised compose model: what it keeps,
what it refuses, the rules it adds. Pure: no engine needed (test_compose.py runs stacks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.runners import compose as compose_runner

MODEL = {
    "services": {
        "api": {
            "build": {"context": "/run/course/workspace", "dockerfile": "Dockerfile"},
            "image": "resnet-service:1",
            "environment": {"WEB_CONCURRENCY": "4", "PORT": "5000"},
            "ports": [{"target": 5000, "published": "5000", "host_ip": "127.0.0.1"}],
            "deploy": {"resources": {"limits": {"memory": str(64 * 1024**3), "cpus": 16}}},
            "healthcheck": {"test": ["CMD", "true"]},
        },
        "prometheus": {
            "image": "prom/prometheus:v2.53.0",
            "volumes": [
                {
                    "type": "bind",
                    "source": "/run/course/workspace/monitoring/prometheus.yml",
                    "target": "/etc/prometheus/prometheus.yml",
                },
                {"type": "volume", "source": "data", "target": "/prometheus"},
            ],
            "depends_on": {"api": {"condition": "service_healthy"}, "exporter": {"condition": "service_started"}},
        },
        "grafana": {"image": "grafana/grafana:10.4.2", "depends_on": {"prometheus": {"condition": "service_healthy"}}},
        "exporter": {"image": "prom/node-exporter:v1"},
    },
    "volumes": {"data": {}},
}


def _plan(model=MODEL, *, images=(), tmp_path=None):
    snapshot = tmp_path
    (snapshot / "monitoring").mkdir(exist_ok=True)
    (snapshot / "monitoring" / "prometheus.yml").write_text("global: {}\n")
    return compose_runner.plan(
        model,
        workspace_inside="/run/course/workspace",
        snapshot=snapshot,
        api_image="resnet-course/graded:abc",
        prometheus_image="prom/prometheus:v2.42.0",
        image_exists=lambda image: image in images,
        api_environment={"WEB_CONCURRENCY": "2", "MODEL_WEIGHTS_PATH": "/run/w.pt"},
        api_files={"/run/w.pt": Path("/cache/w.pt")},
        memory_bytes=3 * 1024**3,
        cpus=2.0,
        pids=256,
        labels={"org.resnet-course.autograder": "1"},
    )


def test_the_plan_keeps_the_stack_and_puts_the_graders_rules_on_it(tmp_path):
    plan = _plan(tmp_path=tmp_path)
    services = plan.model["services"]
    assert set(services) == {"api", "prometheus", "course-relay-api", "course-relay-prometheus"}
    assert any("exporter was not started" in note for note in plan.notes)
    assert any("grafana was not started" in note for note in plan.notes)
    api, prometheus = services["api"], services["prometheus"]
    assert api["image"] == "resnet-course/graded:abc" and "build" not in api and "ports" not in api
    assert api["environment"] == {"WEB_CONCURRENCY": "2", "PORT": "5000", "MODEL_WEIGHTS_PATH": "/run/w.pt"}
    assert api["deploy"]["resources"]["limits"]["memory"] == str(3 * 1024**3)  # capped at the course's
    assert api["deploy"]["resources"]["limits"]["cpus"] == "2.0"
    assert prometheus["image"] == "prom/prometheus:v2.42.0"
    assert prometheus["depends_on"] == {"api": {"condition": "service_healthy"}}  # the dropped exporter is gone
    assert prometheus["volumes"][0] == {
        "type": "bind",
        "source": str(tmp_path / "monitoring" / "prometheus.yml"),
        "target": "/etc/prometheus/prometheus.yml",
        "read_only": True,
    }
    for service in services.values():
        assert service["cap_drop"] == ["ALL"] and service["security_opt"] == ["no-new-privileges:true"]
        assert service["labels"] == {"org.resnet-course.autograder": "1"}
    assert plan.model["networks"][compose_runner.GRADED_NETWORK]["internal"] is True
    assert plan.model["volumes"] == {"data": {"labels": {"org.resnet-course.autograder": "1"}}}
    assert services["course-relay-api"]["ports"] == ["127.0.0.1::8080"]


def test_grafana_runs_where_its_image_exists(tmp_path):
    plan = _plan(images=("grafana/grafana:10.4.2",), tmp_path=tmp_path)
    assert plan.grafana == "grafana" and "grafana" in plan.model["services"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"cap_add": ["SYS_ADMIN"]}, "sets cap_add"),
        ({"pid": "host"}, "pid: host"),
        ({"security_opt": ["seccomp:unconfined"]}, "seccomp:unconfined"),
        ({"volumes": [{"type": "bind", "source": "/", "target": "/host"}]}, "outside the workspace"),
        (
            {"volumes": [{"type": "bind", "source": "/run/course/workspace-other", "target": "/x"}]},
            "outside the workspace",
        ),
        ({"volumes_from": ["api"]}, "volumes_from"),
    ],
)
def test_the_plan_refuses_what_would_widen_rights(change, words, tmp_path):
    model = {**MODEL, "services": {**MODEL["services"], "prometheus": {**MODEL["services"]["prometheus"], **change}}}
    with pytest.raises(compose_runner.StackRefused, match=words.replace("(", r"\(")):
        _plan(model, tmp_path=tmp_path)


def test_the_plan_needs_one_built_service_and_prometheus(tmp_path):
    no_build = {"services": {"api": {"image": "x:1"}, "prometheus": {"image": "prom/prometheus:v2.42.0"}}}
    with pytest.raises(compose_runner.StackRefused, match="exactly one"):
        _plan(no_build, tmp_path=tmp_path)
    no_prometheus = {"services": {"api": MODEL["services"]["api"]}}
    with pytest.raises(compose_runner.StackRefused, match="prom/prometheus"):
        _plan(no_prometheus, tmp_path=tmp_path)
    external = {**MODEL, "volumes": {"data": {"external": True}}}
    with pytest.raises(compose_runner.StackRefused, match="external"):
        _plan(external, tmp_path=tmp_path)


def test_compose_durations():
    assert compose_runner.duration_seconds("1m30s") == 90
    assert compose_runner.duration_seconds("500ms") == 0.5
    assert compose_runner.duration_seconds("soon") is None


def _with_prometheus(**change):
    return {**MODEL, "services": {**MODEL["services"], "prometheus": {**MODEL["services"]["prometheus"], **change}}}


@pytest.mark.parametrize(
    ("model", "words"),
    [
        # Compose leaves a long-syntax absolute source as written: the prefix alone proves nothing.
        (
            _with_prometheus(
                volumes=[
                    {"type": "bind", "source": "/run/course/workspace/../../../root", "target": "/etc/prometheus/x"}
                ]
            ),
            "outside the workspace",
        ),
        (_with_prometheus(entrypoint=["python3", "/opt/fake.py"]), "entrypoint"),
        (_with_prometheus(command=["--web.listen-address=:9091"]), "--web.listen-address"),
        (_with_prometheus(command=["--config.file=/usr/bin/prometheus.yml"]), "/etc/prometheus/"),
        (
            _with_prometheus(
                volumes=[
                    {
                        "type": "bind",
                        "source": "/run/course/workspace/monitoring/prometheus.yml",
                        "target": "/usr/bin/prometheus",
                    }
                ]
            ),
            "under /etc/prometheus",
        ),
        (_with_prometheus(volumes=[{"type": "volume", "source": "data", "target": "/usr/bin"}]), "only its data"),
        (
            {
                **MODEL,
                "services": {
                    **MODEL["services"],
                    "api": {
                        **MODEL["services"]["api"],
                        "volumes": [{"type": "volume", "source": "data", "target": "/d"}],
                    },
                },
            },
            "Prometheus' data volume",
        ),
        ({**MODEL, "services": {**MODEL["services"], "course-relay-api": {"image": "x:1"}}}, "the grader's own"),
    ],
)
def test_prometheus_cannot_be_replaced_and_the_workspace_cannot_be_left(model, words, tmp_path):
    with pytest.raises(compose_runner.StackRefused, match=words.replace("(", r"\(")):
        _plan(model, tmp_path=tmp_path)


def test_prometheus_runs_its_own_entrypoint_with_the_graders_healthcheck(tmp_path):
    model = _with_prometheus(
        entrypoint=["/bin/prometheus"],
        user="0:0",
        environment={"LD_PRELOAD": "/etc/prometheus/evil.so"},
        command=["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"],
        healthcheck={"test": ["CMD", "true"], "interval": "1ms"},
    )
    prometheus = _plan(model, tmp_path=tmp_path).model["services"]["prometheus"]
    assert "entrypoint" not in prometheus and "user" not in prometheus and "environment" not in prometheus
    assert prometheus["healthcheck"] == compose_runner.PROMETHEUS_HEALTHCHECK
    assert prometheus["command"] == ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]


def test_a_learners_healthcheck_polls_at_most_once_a_second(tmp_path):
    model = {
        **MODEL,
        "services": {
            **MODEL["services"],
            "api": {**MODEL["services"]["api"], "healthcheck": {"test": ["CMD", "true"], "interval": "1ms"}},
        },
    }
    assert _plan(model, tmp_path=tmp_path).model["services"]["api"]["healthcheck"]["interval"] == "1s"
