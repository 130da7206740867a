"""Grading beyond one machine: the Kubernetes Jobs (rendered by kustomize, validated against the
Kubernetes API's schemas), the GitHub Actions workflow (its structure, and its grading script run
here), and collecting what they wrote into the gradebook. No API server or GitHub runner runs here:
what they would do beyond this is untested (course_docs/instructors.md says so)."""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autograder import cli, course
from autograder.errors import AutograderError
from autograder.release import grading_jobs
from autograder.reports import gradebook
from autograder.submissions import reference_submission

LEARNERS = ["ada", "Grace Hopper", "李雷", "x" * 70, "bob.smith@example.org"]
IMAGE = "registry.example.org:5000/course/grader:2026-11-28"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# The oldest Kubernetes the Jobs are for (appArmorProfile is a field since 1.30) and the newest
# kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
BIN = Path(sys.executable).parent  # kubectl and kubernetes-validate come with the environment's wheels


def _render_kubernetes(out: Path, learners=LEARNERS, **settings) -> dict[str, dict]:
    grading_jobs.write_kubernetes(learners, out, grading_jobs.JobSettings(image=IMAGE, **settings))
    return {path.name: yaml.safe_load(path.read_text()) for path in out.glob("*.yaml")}


def _jobs(documents: dict[str, dict]) -> list[dict]:
    return [document for document in documents.values() if document["kind"] == "Job"]


def job_problems(job: dict) -> list[str]:
    """What makes a Job unfit to grade one learner: the properties the rendering promises."""
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    learner = job["metadata"]["annotations"][grading_jobs.LEARNER_KEY]
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    claims = {volume["name"]: volume.get("persistentVolumeClaim", {}) for volume in pod["volumes"]}
    security = container["securityContext"]
    checks = {
        "name is a DNS-1123 label": DNS_LABEL.fullmatch(job["metadata"]["name"]) and len(job["metadata"]["name"]) <= 63,
        "grades its learner in the sandbox": container["command"][:9]
        == ["python", "-m", "autograder", "grade", f"/submissions/{learner}", "--out", f"/results/{learner}"]
        + ["--sandbox", "require"],
        "never retried": spec["backoffLimit"] == 0 and pod["restartPolicy"] == "Never",
        "has a deadline and goes away": spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0,
        "submissions read-only": mounts["submissions"].get("readOnly") is True
        and claims["submissions"].get("readOnly"),
        "only its learner's folder": mounts["submissions"]["subPath"] == learner,
        "no service account token": pod["automountServiceAccountToken"] is False,
        "no capabilities, no escalation": security["capabilities"] == {"drop": ["ALL"]}
        and security["allowPrivilegeEscalation"] is False
        and not security.get("privileged"),
        "not root, own user namespace": pod["securityContext"]["runAsNonRoot"] is True and pod["hostUsers"] is False,
        "read-only root": security["readOnlyRootFilesystem"] is True,
        "bounded": container["resources"]["limits"] == container["resources"]["requests"]
        and set(container["resources"]["limits"]) == {"cpu", "memory"},
        "labelled": job["metadata"]["labels"]["app.kubernetes.io/name"] == "autograder"
        and DNS_LABEL.fullmatch(job["metadata"]["labels"][grading_jobs.LEARNER_KEY]),
    }
    return [name for name, ok in checks.items() if not ok]


def test_each_job_grades_one_learner_in_the_sandbox(tmp_path):
    documents = _render_kubernetes(tmp_path, deadline=900, cpus="1500m", memory="6Gi", steps=("00", "02"))
    jobs = _jobs(documents)
    assert sorted(job["metadata"]["annotations"][grading_jobs.LEARNER_KEY] for job in jobs) == sorted(LEARNERS)
    assert all(job_problems(job) == [] for job in jobs)
    (ada,) = [job for job in jobs if job["metadata"]["name"] == "grade-ada"]
    container = ada["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-2:] == ["--steps", "00,02"] and container["image"] == IMAGE
    assert ada["spec"]["activeDeadlineSeconds"] == 900
    assert container["resources"]["limits"] == {"cpu": "1500m", "memory": "6Gi"}
    listed = documents["kustomization.yaml"]["resources"]
    assert listed[0] == "networkpolicy.yaml" and sorted(listed[1:]) == sorted(
        f"{j['metadata']['name']}.yaml" for j in jobs
    )
    policy = documents["networkpolicy.yaml"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and "egress" not in policy["spec"]
    assert all((tmp_path / name).read_text().startswith("# Rendered by") for name in documents)


@pytest.mark.parametrize(
    "mistake",
    [
        lambda job: job["spec"].update(backoffLimit=3),
        lambda job: job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0].pop("readOnly"),
        lambda job: job["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(privileged=True),
        lambda job: job["spec"]["template"]["spec"]["containers"][0]["command"].remove("require"),
        lambda job: job["spec"]["template"]["spec"].update(automountServiceAccountToken=True),
        lambda job: job["metadata"].update(name="Grade_Ada"),
    ],
    ids=["retried", "writable-submissions", "privileged", "unsandboxed", "token", "bad-name"],
)
def test_the_job_check_catches_a_job_unfit_to_grade(tmp_path, mistake):
    (job, *_) = _jobs(_render_kubernetes(tmp_path, learners=["ada"]))
    wrong = copy.deepcopy(job)
    mistake(wrong)
    assert job_problems(job) == [] and job_problems(wrong) != []


def test_job_names_are_unique_dns_labels_that_keep_the_learner_in_an_annotation():
    names = grading_jobs.safe_names(LEARNERS, prefix="grade-")
    assert names["ada"] == "grade-ada"  # a name that is a label already stays readable
    assert names["Grace Hopper"].startswith("grade-grace-hopper-") and names["李雷"].startswith("grade-")
    assert all(DNS_LABEL.fullmatch(name) and len(name) <= 63 for name in names.values())
    assert len(set(names.values())) == len(LEARNERS)
    # "Ada" becomes ada-<hash of "Ada">: a folder named exactly that would get the same name.
    clash = grading_jobs.safe_names(["Ada"])["Ada"]
    with pytest.raises(AutograderError, match="would both be named"):
        grading_jobs.safe_names(["Ada", clash])


@pytest.mark.parametrize("learner", ["a$(id)", "${{ secrets.TOKEN }}", "a\nb", "-rf", " ada", "a/b", 'a"b', ""])
def test_learner_names_a_shell_yaml_or_github_would_read_are_refused(learner):
    grading_jobs.check_learners(LEARNERS)
    with pytest.raises(AutograderError, match="rename it|no learner"):
        grading_jobs.check_learners([learner] if learner else [])


@pytest.mark.parametrize(
    "image",
    [IMAGE, "grader@sha256:" + "a" * 64, "ghcr.io/course/grader:latest@sha256:" + "0" * 64, "grader:v1.2"],
)
def test_a_pinned_image_is_accepted(image):
    assert grading_jobs.check_image(image) == image


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("grader", "not pinned"),
        ("grader:latest", "not pinned"),
        ("registry.example.org:5000/course/grader", "not pinned"),
        ("Grader:1", "not an image reference"),
        ("grader:1 --privileged", "not an image reference"),
        ("", "not an image reference"),
    ],
)
def test_an_unpinned_or_malformed_image_is_refused(tmp_path, image, why):
    with pytest.raises(AutograderError, match=why):
        grading_jobs.write_kubernetes(["ada"], tmp_path / "jobs", grading_jobs.JobSettings(image=image))
    assert not (tmp_path / "jobs").exists()


def _tool(name: str) -> str:
    path = BIN / name
    if not path.is_file():
        pytest.skip(f"{name} is not in this environment (requirements.txt pins it: make venv)")
    return str(path)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kustomize_renders_the_jobs_and_they_validate_strictly(tmp_path, version):
    kubectl, validate = _tool("kubectl"), _tool("kubernetes-validate")
    _render_kubernetes(tmp_path / "jobs")
    built = subprocess.run([kubectl, "kustomize", str(tmp_path / "jobs")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    (tmp_path / "all.yaml").write_text(built.stdout)
    kinds = [document["kind"] for document in yaml.safe_load_all(built.stdout)]
    assert sorted(kinds) == ["Job"] * len(LEARNERS) + ["NetworkPolicy"]
    checked = subprocess.run(
        [validate, "--strict", "-k", version, str(tmp_path / "all.yaml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("passed for resource") == len(LEARNERS) + 1


def test_the_validators_catch_a_misspelt_field_and_a_missing_file(tmp_path):
    kubectl, validate = _tool("kubectl"), _tool("kubernetes-validate")
    _render_kubernetes(tmp_path / "jobs", learners=["ada"])
    job = tmp_path / "jobs" / "grade-ada.yaml"
    job.write_text(job.read_text().replace("  securityContext:", "  securityContxt:", 1))
    checked = subprocess.run(
        [validate, "--strict", "-k", KUBERNETES_VERSIONS[0], str(job)], capture_output=True, text=True
    )
    assert checked.returncode != 0 and "securityContxt" in checked.stdout + checked.stderr
    job.unlink()
    built = subprocess.run([kubectl, "kustomize", str(tmp_path / "jobs")], capture_output=True, text=True)
    assert built.returncode != 0 and "grade-ada.yaml" in built.stderr


def test_rendering_again_replaces_its_own_files_and_leaves_the_instructors(tmp_path):
    out = tmp_path / "jobs"
    _render_kubernetes(out, learners=["ada", "bob"])
    (out / "pvc.yaml").write_text("# the instructor's\n")
    documents = _render_kubernetes(out, learners=["ada"])
    assert sorted(p.name for p in out.iterdir()) == [
        "grade-ada.yaml",
        "kustomization.yaml",
        "networkpolicy.yaml",
        "pvc.yaml",
    ]
    assert documents["kustomization.yaml"]["resources"] == ["networkpolicy.yaml", "grade-ada.yaml"]
    (out / "kustomization.yaml").write_text("resources: [pvc.yaml]\n")  # now the instructor's own
    with pytest.raises(AutograderError, match="not written by the autograder"):
        _render_kubernetes(out, learners=["ada"])
    assert (out / "kustomization.yaml").read_text() == "resources: [pvc.yaml]\n"


# --- GitHub Actions ---------------------------------------------------------------------------


def workflow_problems(workflow: dict) -> list[str]:
    """What makes the workflow unfit: unpinned actions, clashing artifacts, a gradebook job that
    does not wait for the grading or skips when one grading failed."""
    grade, collect = workflow["jobs"]["grade"], workflow["jobs"]["gradebook"]
    entries = grade["strategy"]["matrix"]["include"]
    uses = [step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]
    artifacts = [f"results-{entry['name']}" for entry in entries] + ["gradebook"]
    checks = {
        "actions pinned to a version": all(re.fullmatch(r"actions/[a-z-]+@v\d+(\.\d+)*", use) for use in uses),
        "artifact names unique": len(set(artifacts)) == len(artifacts),
        "artifact names safe": all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in artifacts),
        "within GitHub's matrix limit": len(entries) <= 256,
        "gradebook after the grading, even when one failed": collect["needs"] == "grade"
        and "cancelled()" in collect["if"],
        "one learner once": sum(len(entry["learners"]) for entry in entries)
        == len({learner for entry in entries for learner in entry["learners"]}),
        "learners reach the shell through env only": all(
            "${{" not in step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]
        ),
    }
    return [name for name, ok in checks.items() if not ok]


def _workflow(tmp_path: Path, learners=LEARNERS, **options) -> dict:
    path = grading_jobs.write_github_actions(learners, tmp_path, course.REPO_ROOT / "submitted", **options)
    assert path.read_text().startswith("# Rendered by")
    return yaml.safe_load(path.read_text())


def _step(job: dict, name: str) -> dict:
    return next(step for step in job["steps"] if step.get("name") == name)


def test_the_workflow_grades_each_learner_in_a_matrix_job_and_collects_them(tmp_path):
    workflow = _workflow(tmp_path, steps=("00",), deadline=600)
    assert workflow_problems(workflow) == []
    grade = workflow["jobs"]["grade"]
    assert [entry["learners"] for entry in grade["strategy"]["matrix"]["include"]] == [
        [learner] for learner in LEARNERS
    ]
    assert grade["strategy"]["fail-fast"] is False and workflow["on"] == {"workflow_dispatch": {}}
    grading = _step(grade, "Grade")
    assert grading["env"]["SUBMISSIONS"] == "submitted" and grading["env"]["DEADLINE"] == "600"
    assert "--steps 00" in grading["run"] and "make venv" == _step(grade, "Course environment")["run"]
    assert not [step for step in grade["steps"] if "offline setup" in step.get("run", "")]  # no step 05
    assert "--collect results" in _step(workflow["jobs"]["gradebook"], "Gradebook")["run"]
    everything = _workflow(tmp_path / "all")
    assert [step for step in everything["jobs"]["grade"]["steps"] if "offline setup" in step.get("run", "")]


@pytest.mark.parametrize(
    "mistake",
    [
        lambda wf: wf["jobs"]["grade"]["steps"][0].update(uses="actions/checkout@main"),
        lambda wf: wf["jobs"]["grade"]["strategy"]["matrix"]["include"].append({"name": "ada", "learners": ["Ada"]}),
        lambda wf: wf["jobs"]["gradebook"].update({"if": "success()"}),
        lambda wf: wf["jobs"]["gradebook"].update(needs="setup"),
        lambda wf: _step(wf["jobs"]["grade"], "Grade").update(run='grade "submitted/${{ matrix.learners[0] }}"'),
    ],
    ids=["unpinned", "artifact-clash", "skips-on-failure", "does-not-wait", "injection"],
)
def test_the_workflow_check_catches_an_unfit_workflow(tmp_path, mistake):
    workflow = _workflow(tmp_path, learners=["ada", "bob"])
    wrong = copy.deepcopy(workflow)
    mistake(wrong)
    assert workflow_problems(workflow) == [] and workflow_problems(wrong) != []


@pytest.mark.parametrize(("count", "jobs", "per_job"), [(256, 256, 1), (257, 129, 2), (1000, 250, 4)])
def test_past_256_learners_the_matrix_grades_them_in_chunks(tmp_path, count, jobs, per_job):
    learners = [f"learner-{number:04d}" for number in range(count)]
    workflow = _workflow(tmp_path, learners=learners)
    entries = workflow["jobs"]["grade"]["strategy"]["matrix"]["include"]
    assert len(entries) == jobs and max(len(entry["learners"]) for entry in entries) == per_job
    assert sorted(learner for entry in entries for learner in entry["learners"]) == learners
    assert workflow_problems(workflow) == []
    assert workflow["jobs"]["grade"]["timeout-minutes"] <= grading_jobs.HOSTED_JOB_MINUTES


def test_the_workflow_grades_only_submissions_of_the_repository(tmp_path):
    with pytest.raises(AutograderError, match="not in the course's repository"):
        grading_jobs.write_github_actions(["ada"], tmp_path, tmp_path / "submitted")
    assert not (tmp_path / "grade.yml").exists()


# --- The gradings, run here as a Job and a matrix job would run them ---------------------------


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory) -> Path:
    """Two learners: one who solved everything, one whose folder holds no notebook of the course."""
    root = tmp_path_factory.mktemp("class") / "submitted"
    reference_submission(root / "Ada Lovelace")
    (root / "grace").mkdir()
    return root


def test_the_workflow_grading_script_grades_each_learner_and_says_why_one_failed(tmp_path, class_folder):
    workflow = _workflow(tmp_path / "workflow", learners=["Ada Lovelace", "grace"], steps=("00",), sandbox="auto")
    grading = _step(workflow["jobs"]["grade"], "Grade")
    runner = tmp_path / "runner"  # the checkout: the environment and the submissions
    runner.mkdir()
    (runner / ".venv").symlink_to(sys.prefix)
    shutil.copytree(class_folder, runner / "submitted")
    env = {**os.environ, **grading["env"], "LEARNERS": json.dumps(["Ada Lovelace", "grace"])}
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", grading["run"]],
        cwd=runner,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.count("::warning::") == 1  # grace's
    rows = {row.learner: row for row in grading_jobs.collect(runner / "results", ["Ada Lovelace", "grace", "absent"])}
    assert rows["Ada Lovelace"].results["score"] == rows["Ada Lovelace"].results["max_score"] > 0
    assert rows["grace"].results is None and "no notebook of the course" in rows["grace"].problem
    assert rows["absent"].results is None and "did not run" in rows["absent"].problem


def _run_job(job: dict, class_folder: Path, results: Path, scratch: Path) -> subprocess.CompletedProcess:
    """The Job's container command, its mounts pointing at folders here."""
    (container,) = job["spec"]["template"]["spec"]["containers"]
    where = {"/results": str(results), "/submissions": str(class_folder)}

    def here(part: str) -> str:
        mount = next((mount for mount in where if part.startswith(f"{mount}/")), None)
        return where[mount] + part.removeprefix(mount) if mount else part

    command = [sys.executable, *map(here, container["command"][1:])]
    env = {**os.environ, **{item["name"]: item["value"].replace("/tmp", str(scratch)) for item in container["env"]}}
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=course.REPO_ROOT)


def test_a_jobs_command_writes_results_where_collect_reads_them(tmp_path, class_folder):
    jobs = _jobs(
        _render_kubernetes(tmp_path / "jobs", learners=["Ada Lovelace", "grace"], steps=("00",), sandbox="auto")
    )
    results, scratch = tmp_path / "results", tmp_path / "scratch"
    results.mkdir()
    scratch.mkdir()
    ran = {
        job["metadata"]["annotations"][grading_jobs.LEARNER_KEY]: _run_job(job, class_folder, results, scratch)
        for job in jobs
    }
    assert ran["Ada Lovelace"].returncode == 0, ran["Ada Lovelace"].stderr[-2000:]
    assert ran["grace"].returncode == 2  # the pod fails; its log says why
    rows = {row.learner: row for row in grading_jobs.collect(results, ["Ada Lovelace", "grace"])}
    assert rows["Ada Lovelace"].results["extra_data"]["steps"]["00"]["points"] > 0
    assert rows["grace"].results is None and "log says why" in rows["grace"].problem


# --- Collecting results --------------------------------------------------------------------------

GOOD = {
    "score": 8.0,
    "max_score": 8.0,
    "execution_time": 2.5,
    "tests": [
        {
            "name": "00.pins: pinned",
            "score": 6.0,
            "max_score": 6.0,
            "status": "passed",
            "extra_data": {"check": "00.pins"},
        }
    ],
    "extra_data": {"steps": {"00": {"points": 8.0}}, "flags": [], "submission_notes": []},
}


def _results_folder(root: Path) -> Path:
    """A results folder as Jobs leave it: good, malformed in every way, missing, and a link."""
    contents = {
        "good": json.dumps(GOOD),
        "truncated": json.dumps(GOOD)[:40],
        "not-an-object": "[8, 8]",
        "score-as-text": json.dumps({**GOOD, "score": "8"}),
        "flags-not-strings": json.dumps({**GOOD, "extra_data": {"flags": [1]}}),
        "nested-too-deep": "[" * 200_000 + "]" * 200_000,
        "not-utf8": b"\xff\xfe{",
    }
    for learner, text in contents.items():
        (root / learner).mkdir(parents=True)
        data = text.encode() if isinstance(text, str) else text
        (root / learner / "results.json").write_bytes(data)
    (root / "oversized").mkdir()
    with open(root / "oversized" / "results.json", "wb") as stream:
        stream.truncate(grading_jobs.RESULTS_LIMIT + 1)
    (root / "linked").mkdir()
    (root / "linked" / "results.json").symlink_to(root / "good" / "results.json")
    (root / "crashed").mkdir()
    (root / "crashed" / "grade.log").write_text(
        "grading...\nerror: no notebook of the course in /x\n  what to do: ...\n"
    )
    (root / "vanished").mkdir()
    (root / "elsewhere").symlink_to(root / "good")
    return root


def test_collect_makes_a_row_per_learner_whatever_their_results_json(tmp_path):
    rows = {row.learner: row for row in grading_jobs.collect(_results_folder(tmp_path / "results"), ["never-ran"])}
    assert rows["good"].results == GOOD and rows["good"].problem == "" and rows["good"].seconds == 2.5
    graded = {learner for learner, row in rows.items() if row.results is not None}
    assert graded == {"good"}
    assert all(row.problem.startswith("not graded: ") for learner, row in rows.items() if learner != "good")
    assert "malformed" in rows["score-as-text"].problem and "score" in rows["score-as-text"].problem
    assert "flags" in rows["flags-not-strings"].problem
    assert "size limit" in rows["oversized"].problem
    assert "unreadable" in rows["truncated"].problem and "unreadable" in rows["nested-too-deep"].problem
    assert "no notebook of the course" in rows["crashed"].problem
    assert "did not finish" in rows["vanished"].problem and "did not run" in rows["never-ran"].problem
    assert "elsewhere" not in rows  # a linked folder is no learner's, unless one is expected there:
    expected = {row.learner: row for row in grading_jobs.collect(tmp_path / "results", ["elsewhere"])}
    assert "is a link" in expected["elsewhere"].problem


def test_the_gradebook_writes_collected_rows(tmp_path):
    rows = grading_jobs.collect(_results_folder(tmp_path / "results"))
    with open(gradebook.write(rows, tmp_path / "gradebook.csv"), newline="") as stream:
        table = {line["learner"]: line for line in csv.DictReader(stream)}
    assert table["good"]["total"] == "8" and table["good"]["step 00"] == "8" and table["good"]["flags"] == ""
    assert table["truncated"]["total"] == "" and table["truncated"]["flags"] == "not graded"
    assert "unreadable results.json" in table["truncated"]["notes"]


def test_collect_refuses_a_folder_that_is_not_there(tmp_path):
    with pytest.raises(AutograderError, match="not a folder of results"):
        grading_jobs.collect(tmp_path / "missing")


# --- The command line ------------------------------------------------------------------------


def test_grade_all_collect_writes_the_gradebook_and_exits_1_for_a_learner_not_graded(tmp_path, class_folder, capsys):
    results = tmp_path / "results"
    (results / "Ada Lovelace").mkdir(parents=True)
    (results / "Ada Lovelace" / "results.json").write_text(json.dumps(GOOD))
    assert cli.main(["grade-all", "--collect", str(results)]) == 0
    assert (results / "gradebook.csv").is_file()
    assert cli.main(["grade-all", str(class_folder), "--collect", str(results), "--out", str(tmp_path / "out")]) == 1
    assert "not graded: grace" in capsys.readouterr().out
    with open(tmp_path / "out" / "gradebook.csv", newline="") as stream:
        assert [line["learner"] for line in csv.DictReader(stream)] == ["Ada Lovelace", "grace"]


def test_grade_all_render_writes_jobs_for_a_pinned_image_only(tmp_path, class_folder, capsys):
    out = tmp_path / "jobs"
    assert (
        cli.main(
            ["grade-all", str(class_folder), "--render", "kubernetes", "--image", "grader:latest", "--out", str(out)]
        )
        == 2
    )
    assert "not pinned" in capsys.readouterr().err and not out.exists()
    assert cli.main(["grade-all", str(class_folder), "--render", "kubernetes", "--out", str(out)]) == 2
    assert "needs --image" in capsys.readouterr().err
    assert cli.main(["grade-all", str(class_folder), "--render", "github-actions", "--image", IMAGE]) == 2
    assert "for --render kubernetes only" in capsys.readouterr().err
    assert (
        cli.main(["grade-all", str(class_folder), "--render", "kubernetes", "--image", IMAGE, "--out", str(out)]) == 0
    )
    jobs = {f"{name}.yaml" for name in grading_jobs.safe_names(["Ada Lovelace", "grace"], prefix="grade-").values()}
    assert {p.name for p in out.iterdir()} == jobs | {"kustomization.yaml", "networkpolicy.yaml"}
