"""Step 07's checks: the kustomization rendered in the sandbox, validated against the pinned
Kubernetes schemas, and read against the service. Each passes on the reference and fails,
saying why, on a workspace with one mistake, and only that check fails. The live memory check
runs the image with the manifests' environment (container tests, at the end)."""

from __future__ import annotations

import pytest

from autograder.checks import kubernetes, step07_kubernetes
from autograder.checks.result import Verdict
from autograder.grading import grade_step

STEP_ID = "07"
LIVE, SCAN = "memory-fits-limits", "policy-scan"
# checkov takes seconds a grading: the policy scan has tests of its own, below.
STATIC = sorted(
    c.id.split(".", 1)[1] for c in step07_kubernetes.STEP.checks if c.id.split(".", 1)[1] not in (LIVE, SCAN)
)
DEPLOYMENT, SERVICE, KUSTOMIZATION = "k8s/deployment.yaml", "k8s/service.yaml", "k8s/kustomization.yaml"
HPA, PDB, INGRESS, POLICY = "k8s/hpa.yaml", "k8s/pdb.yaml", "k8s/ingress.yaml", "k8s/networkpolicy.yaml"
MONITOR, K8S_ENV, COMPOSE = "k8s/servicemonitor.yaml", "k8s/service.env", "docker-compose.yml"

pytestmark = pytest.mark.slow  # each grading runs kustomize, Compose and the configuration in sandboxes


def static_results(workspace) -> dict:
    return {r.id.split(".", 1)[1]: r for r in grade_step(STEP_ID, workspace, only=STATIC).results}


@pytest.fixture(scope="module")
def reference_results(reference_workspace):
    return static_results(reference_workspace)


def test_every_static_check_passes_on_the_reference(reference_results):
    assert set(reference_results) == set(STATIC)
    failed = {name: r.message for name, r in reference_results.items() if r.verdict is not Verdict.PASSED}
    assert failed == {}


def test_the_consistency_table_names_every_source(reference_results):
    figures = dict(reference_results["consistency"].figures)
    assert figures["port"] == (
        "✓ service (PORT) 5000 · Dockerfile EXPOSE 5000 · gunicorn bind 5000 · compose 5000 · k8s containerPort 5000"
    )
    assert figures["liveness_path"] == "✓ Dockerfile HEALTHCHECK /health · k8s livenessProbe /health"
    assert figures["image"] == "✓ compose resnet-service:0.6.0 · k8s resnet-service:0.6.0"
    assert figures["environment"] == "✓ compose 13 settings · k8s 13 settings"
    assert "gunicorn graceful_timeout 8 s" in figures["graceful_shutdown"]
    assert set(figures) >= {"readiness_path", "upload_limit", "memory_limit", "CPU_limit", "environment"}


def test_the_blank_release_fails_every_static_check(blank_workspace):
    results = static_results(blank_workspace)
    assert {name: r.verdict for name, r in results.items()} == {name: Verdict.FAILED for name in STATIC}
    assert "renders no object" in results["kustomize-renders"].message


def test_skeleton_objects_earn_nothing_for_rendering(make_workspace):
    workspace = make_workspace((HPA, "spec:\n", "spec: {}\nunused:\n"), name="skeleton")
    results = static_results(workspace)
    assert results["kustomize-renders"].verdict is Verdict.FAILED
    assert "HorizontalPodAutoscaler/resnet-service is empty" in results["kustomize-renders"].message


def test_an_empty_workspace_fails_every_check_and_says_what_to_write(tmp_path):
    results = static_results(tmp_path)
    assert all(r.verdict is Verdict.FAILED for r in results.values()), {n: r.message for n, r in results.items()}
    assert "k8s/kustomization.yaml does not exist" in results["kustomize-renders"].message
    assert all(r.hint for r in results.values())


def test_a_kustomization_that_does_not_render_says_what_kustomize_said(make_workspace):
    workspace = make_workspace((KUSTOMIZATION, "  - pdb.yaml\n", "  - pdb.yaml\n  - missing.yaml\n"), name="broken")
    results = static_results(workspace)
    assert all(r.verdict is Verdict.FAILED for r in results.values())
    assert "kubectl kustomize k8s fails" in results["kustomize-renders"].message
    assert "missing.yaml" in results["kustomize-renders"].message
    assert "see kustomize-renders" in results["probes"].message


LIMITS = """            limits:
              cpu: "2"
              memory: 3Gi          # the measured peak plus headroom, as in compose: over it, OOM-killed
"""
TMP_MOUNT = """          volumeMounts:
            - name: tmp
              mountPath: /tmp      # the only writable place: PROMETHEUS_MULTIPROC_DIR lives here
"""
PRE_STOP = """          lifecycle:
            preStop:               # let the endpoints drop this pod before gunicorn stops accepting
              sleep:
                seconds: 5
"""
POLICY_FROM = """    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: ingress-nginx
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: monitoring
          podSelector:
            matchLabels:
              app.kubernetes.io/name: prometheus
      ports:
"""

# name: (edits, the checks that must fail (all others pass), words a failing message holds)
VARIANTS = {
    "misspelt-field": (
        [(DEPLOYMENT, "  revisionHistoryLimit: 5\n", "  revisionHistorylimit: 5\n")],
        {"schemas-valid"},
        "revisionHistorylimit",
    ),
    "probe-on-a-wrong-path": (
        [(DEPLOYMENT, "              path: /ready\n", "              path: /healthz\n")],
        {"probes"},
        "readinessProbe asks /healthz",
    ),
    "liveness-on-ready": (
        [
            (
                DEPLOYMENT,
                "          livenessProbe:           # restart a process that stopped answering at all\n            httpGet:\n              path: /health\n",
                "          livenessProbe:           # restart a process that stopped answering at all\n            httpGet:\n              path: /ready\n",
            )
        ],  # fmt: skip
        {"probes"},
        "livenessProbe asks /ready",
    ),
    "target-port-mismatch": (
        [(SERVICE, "      targetPort: http ", "      targetPort: 8080 ")],
        {"service-routing"},
        "to 8080, not a container port",
    ),
    "selector-misses-the-pods": (
        [
            (
                SERVICE,
                "  selector:\n    app.kubernetes.io/name: resnet-service\n    app.kubernetes.io/component: api\n",
                "  selector:\n    app.kubernetes.io/name: resnet-service\n    app.kubernetes.io/component: web\n",
            )
        ],  # fmt: skip
        {"service-routing"},
        "no Service selects the pods",
    ),
    "no-limits": (
        [(DEPLOYMENT, LIMITS, "")],
        {"resources"},
        "no cpu limit",
    ),
    "root-user": (
        [
            (
                DEPLOYMENT,
                "        runAsUser: 10001           # the image's own user (step 05)\n",
                "        runAsUser: 0\n",
            )
        ],
        {"pod-security-restricted"},
        "runs as UID 0",
    ),
    "no-tmp-volume": (
        [(DEPLOYMENT, TMP_MOUNT, "")],
        {"pod-security-restricted"},
        "no emptyDir is mounted at /tmp",
    ),
    "latest-tag": (
        [
            (KUSTOMIZATION, 'newTag: "0.6.0"', "newTag: latest"),
            (COMPOSE, "resnet-service:0.6.0", "resnet-service:latest"),
        ],
        {"image-pinned"},
        "latest",
    ),
    "config-key-the-service-never-reads": (
        [
            (K8S_ENV, "LOG_LEVEL=INFO\n", "LOG_LEVEL=INFO\nLOG_FORMAT=json\n"),
            ("service.env", "LOG_LEVEL=INFO\n", "LOG_LEVEL=INFO\nLOG_FORMAT=json\n"),
        ],  # fmt: skip
        {"config-settings"},
        "nothing in the service reads LOG_FORMAT",
    ),
    "config-value-out-of-range": (
        [(K8S_ENV, "TOP_K_MAX=20\n", "TOP_K_MAX=0\n"), ("service.env", "TOP_K_MAX=20\n", "TOP_K_MAX=0\n")],
        {"config-settings"},
        "rejects the ConfigMap's settings",
    ),
    "hpa-below-three": (
        [(HPA, "  minReplicas: 3\n", "  minReplicas: 1\n")],
        {"autoscaling"},
        "minReplicas is 1",
    ),
    "hpa-scales-something-else": (
        [(HPA, "    kind: Deployment\n    name: resnet-service\n", "    kind: Deployment\n    name: resnet\n")],
        {"autoscaling"},
        "not Deployment/resnet-service",
    ),
    "no-pre-stop": (
        [(DEPLOYMENT, PRE_STOP, "")],
        {"rollout-safe"},
        "no preStop pause",
    ),
    "max-unavailable": (
        [(DEPLOYMENT, "      maxUnavailable: 0 ", "      maxUnavailable: 1 ")],
        {"rollout-safe"},
        "maxUnavailable is 1",
    ),
    "body-size-below-the-upload-limit": (
        [(INGRESS, "proxy-body-size: 11m", "proxy-body-size: 1m")],
        {"ingress"},
        "get the controller's 413",
    ),
    "pdb-blocks-drains": (
        [(PDB, "  maxUnavailable: 1 ", "  minAvailable: 3 ")],
        {"disruption-and-network"},
        "no node can ever be drained",
    ),
    "network-policy-admits-everyone": (
        [(POLICY, POLICY_FROM, "    - ports:\n")],
        {"disruption-and-network"},
        "admits every source",
    ),
    "servicemonitor-on-a-wrong-port": (
        [(MONITOR, "    - port: http\n", "    - port: metrics\n")],
        {"metrics-scraped"},
        "no ServiceMonitor",
    ),
    "spread-without-label-selector": (
        [
            (
                DEPLOYMENT,
                "          whenUnsatisfiable: ScheduleAnyway\n          labelSelector:\n            matchLabels:\n              app.kubernetes.io/name: resnet-service\n              app.kubernetes.io/component: api\n        - maxSkew: 1\n",
                "          whenUnsatisfiable: ScheduleAnyway\n        - maxSkew: 1\n",
            ),
            (
                DEPLOYMENT,
                "          whenUnsatisfiable: ScheduleAnyway\n          labelSelector:\n            matchLabels:\n              app.kubernetes.io/name: resnet-service\n              app.kubernetes.io/component: api\n      containers:",
                "          whenUnsatisfiable: ScheduleAnyway\n      containers:",
            ),
        ],  # fmt: skip
        {"rollout-safe"},
        "labelSelector does not select the pods",
    ),
    "pre-stop-misshapen": (
        [
            (
                DEPLOYMENT,
                "              sleep:\n                seconds: 5\n",
                "              exec:\n                command: [/bin/true]\n",
            )
        ],
        {"rollout-safe"},
        "pauses for no time",
    ),
    "config-key-misspelt-in-k8s-only": (
        [(K8S_ENV, "PORT=5000\n", "PROT=5000\n")],
        {"config-settings"},
        "nothing in the service reads PROT",
    ),
    "latest-in-k8s-only": (
        [(KUSTOMIZATION, 'newTag: "0.6.0"', "newTag: latest")],
        {"image-pinned"},
        "whatever was pushed last",
    ),
    "setting-differs-from-compose": (
        [(K8S_ENV, "TOP_K_MAX=20\n", "TOP_K_MAX=30\n")],
        {"consistency"},
        "top_k_max is 20 in compose, 30 in k8s",
    ),
    "service-selector-with-a-label-called-matchLabels": (
        [
            (
                SERVICE,
                "  selector:\n    app.kubernetes.io/name: resnet-service\n    app.kubernetes.io/component: api\n",
                "  selector:\n    matchLabels: resnet-service\n",
            )
        ],  # fmt: skip
        {"service-routing"},
        "no Service selects the pods",
    ),
    "target-port-as-a-numeric-string": (
        [(SERVICE, "      targetPort: http ", '      targetPort: "5000" ')],
        {"service-routing"},
        "not a container port",
    ),
    "quantity-out-of-range": (
        [(DEPLOYMENT, '              cpu: "2"\n', "              cpu: 1e999999999\n")],
        {"resources"},
        "no cpu limit",
    ),
    "gunicorn-conf-exits-when-read": (
        [("gunicorn.conf.py", "settings = Settings.from_env()", "os._exit(0)\nsettings = Settings.from_env()")],
        {"rollout-safe", "service-routing"},
        "gunicorn.conf.py failed, hung or exited",
    ),
    "a-comment-naming-the-misspelt-key": (
        [
            (K8S_ENV, "PORT=5000\n", "PROT=5000\n"),
            ("service/app.py", '"""The HTTP service:', '# PROT: see "PROT"\n"""The HTTP service:'),
        ],
        {"config-settings"},
        "nothing in the service reads PROT",
    ),
    "memory-limit-disagrees-with-compose": (
        [(DEPLOYMENT, "              memory: 3Gi ", "              memory: 2Gi ")],
        {"consistency"},
        "memory limit disagrees: compose 3072 MiB · k8s 2048 MiB",
    ),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_mistake_fails_exactly_its_check(variant, make_workspace):
    edits, expected, words = VARIANTS[variant]
    results = static_results(make_workspace(*edits, name=variant))
    failed = {name for name, r in results.items() if r.verdict is not Verdict.PASSED}
    assert failed == expected, {name: results[name].message for name in failed | expected}
    assert any(words in results[name].message for name in expected), {n: results[n].message for n in expected}
    assert all(results[name].hint for name in expected)


def test_a_disagreement_graded_elsewhere_is_named_in_the_report_but_not_taken_twice(make_workspace):
    workspace = make_workspace((DEPLOYMENT, "containerPort: 5000", "containerPort: 8000"), name="port")
    results = static_results(workspace)
    assert results["consistency"].verdict is Verdict.PASSED
    assert "port disagrees" in results["consistency"].message
    assert "graded by service-routing" in results["consistency"].message
    assert results["service-routing"].verdict is Verdict.FAILED


def test_quantities_and_selectors():
    assert kubernetes.quantity("1536Mi") == 1536 * 2**20
    assert kubernetes.quantity("500m") == kubernetes.quantity("0.5")
    assert kubernetes.quantity("1e3") == 1000
    assert kubernetes.quantity("lots") is None and kubernetes.quantity(True) is None
    labels = {"app": "a", "tier": "api"}
    assert kubernetes.selects({"matchLabels": {"app": "a"}}, labels)
    assert not kubernetes.selects({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}, labels)
    assert not kubernetes.selects({}, labels)  # an empty selector selects nothing here, never everything
    assert kubernetes.image_reference("registry:5000/team/app:1.2@sha256:ab") == (
        "registry:5000/team/app",
        "1.2",
        "sha256:ab",
    )
    assert kubernetes.image_reference("registry:5000/app") == ("registry:5000/app", "", "")


# ---------------------------------------------------------------------------------------------
# checkov's policies (in its own environment: make tools)

TOKEN = "      automountServiceAccountToken: false   # the service never talks to the API server\n"
SKIP = (
    "    metadata:\n      labels:\n",
    "    metadata:\n      annotations:\n        checkov.io/skip1: CKV_K8S_38=not needed\n      labels:\n",
)


def test_the_policy_scan_passes_the_reference_but_for_the_accepted_policies(reference_workspace):
    result = grade_step(STEP_ID, reference_workspace, only=[SCAN]).results[0]
    assert result.verdict is Verdict.PASSED, result.message
    assert dict(result.figures)["accepted"] == "CKV_K8S_15, CKV_K8S_43"


def test_neither_skip_annotations_nor_template_braces_silence_the_scan(make_workspace):
    skips = ("    metadata:\n      labels:\n",
             "    metadata:\n      annotations:\n        bridgecrew.io/skip1: CKV_K8S_38=fine\n"
             "        evil.checkov.io/skip2: CKV_K8S_38=fine\n      labels:\n")  # fmt: skip
    braces = (
        "metadata:\n  name: resnet-service\n",
        'metadata:\n  name: resnet-service\n  annotations:\n    docs: "like {{.Values.port}}"\n',
    )
    workspace = make_workspace((DEPLOYMENT, TOKEN, ""), (DEPLOYMENT, *skips), (SERVICE, *braces), name="silenced")
    result = grade_step(STEP_ID, workspace, only=[SCAN]).results[0]
    assert result.verdict is Verdict.FAILED, result.message
    assert "CKV_K8S_38" in result.message


def test_a_render_larger_than_the_sandbox_passes_on_is_read_whole(make_workspace):
    # The sandbox passes on only the first and last 32 KiB of what a command prints: kustomize's
    # output comes back through a file, so nothing in the middle can hide from the checks.
    filler = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: filler\ndata:\n  text: " + "x" * 80_000 + "\n"
    workspace = make_workspace((KUSTOMIZATION, "  - pdb.yaml\n", "  - pdb.yaml\n  - filler.yaml\n"), name="large")
    (workspace / "k8s" / "filler.yaml").write_text(filler)
    result = grade_step(STEP_ID, workspace, only=["kustomize-renders"]).results[0]
    assert result.verdict is Verdict.PASSED and result.message.startswith("10 objects"), result.message


def test_a_render_nested_too_deeply_fails_with_a_message(make_workspace):
    deep = "apiVersion: example.com/v1\nkind: Deep\nmetadata:\n  name: deep\nspec: " + "[" * 900 + "]" * 900 + "\n"
    workspace = make_workspace((KUSTOMIZATION, "  - pdb.yaml\n", "  - pdb.yaml\n  - deep.yaml\n"), name="deep")
    (workspace / "k8s" / "deep.yaml").write_text(deep)
    result = grade_step(STEP_ID, workspace, only=["kustomize-renders"]).results[0]
    assert result.verdict is Verdict.FAILED
    assert "checker itself failed" not in result.message, result.message


def test_a_broken_policy_is_named_by_its_id_and_a_skip_annotation_does_not_hide_it(make_workspace):
    workspace = make_workspace((DEPLOYMENT, TOKEN, ""), (DEPLOYMENT, *SKIP), name="token")
    result = grade_step(STEP_ID, workspace, only=[SCAN]).results[0]
    assert result.verdict is Verdict.FAILED
    assert "CKV_K8S_38" in result.message and "Deployment.resnet-service.resnet-service" in result.message
    assert result.hint


# ---------------------------------------------------------------------------------------------
# Live: the image with the manifests' settings


@pytest.mark.container
def test_a_memory_request_below_what_the_pod_uses_fails(docker_engine, make_workspace):
    # The reference passing is proven by notebook 07's checkpoint (tests/course/test_solutions_execute.py).
    small = make_workspace(
        (DEPLOYMENT, "              memory: 1536Mi ", "              memory: 256Mi "), name="memory-small"
    )
    failed = grade_step(STEP_ID, small, only=[LIVE]).results[0]
    assert failed.verdict is Verdict.FAILED, failed.message
    assert "request (256 MiB) is below" in failed.message
    figures = dict(failed.figures)
    assert figures["workers"] == "2" and figures["measured_peak"].endswith("MiB")
