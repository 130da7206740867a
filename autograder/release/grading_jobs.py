"""Grading a class beyond one machine: one Kubernetes Job per learner, or a GitHub Actions matrix,
each running ``python -m autograder grade`` on one learner's folder; then ``collect`` reads the
``results.json`` files they wrote back into gradebook rows (``submissions.GradedLearner``), so
the CSV gradebook and nbgrader's gradebook come out as after ``grade-all``.

Learner names are folder names, so they reach YAML, file names, Kubernetes names and shell
scripts: they are checked once (``check_learners``), turned into DNS-1123 names where Kubernetes
or GitHub needs one (``safe_names``), and in the workflow reach the shell only through an
environment variable, never through the script's text.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from autograder import course
from autograder.errors import AutograderError
from autograder.runners.sandbox import read_output
from autograder.submissions import GradedLearner

# What a rendered file starts with; a file without it is the instructor's and never overwritten.
RENDERED = "# Rendered by `python -m autograder grade-all --render {target}`: render again rather than edit."

# --- Kubernetes -----------------------------------------------------------------------------

LABELS = {
    "app.kubernetes.io/name": "autograder",
    "app.kubernetes.io/component": "grading",
    "app.kubernetes.io/part-of": "resnet-course",
}
LEARNER_KEY = "autograder.resnet-course.org/learner"  # a label (safe name) and an annotation (as is)
SUBMISSIONS_MOUNT = "/submissions"
RESULTS_MOUNT = "/results"
TTL_SECONDS = 7 * 24 * 3600  # finished Jobs stay a week: long enough to read a failed one's log
TMP_SIZE = "4Gi"  # the grading's scratch (rebuilt workspace, weights file); the root is read-only
NAME_LIMIT = 63  # a Job's name becomes a label value of its pods: a DNS-1123 label, at most 63

JOB_HEADER = """\
# Grades one learner's submission; a learner's code runs only inside bubblewrap's sandbox, and
# nothing here needs the network (networkpolicy.yaml denies all of it to these pods).
# The security context is as tight as bubblewrap allows, which is NOT Pod Security "restricted",
# nor "baseline": bubblewrap makes user, PID and network namespaces and mounts a fresh /proc. So
# the pod runs in a user namespace of its own (hostUsers: false: its users are nobody on the node),
# as UID 1000 with no capabilities and no privilege escalation, and it needs an unmasked /proc
# (procMount: Unmasked, which Kubernetes allows only with hostUsers: false) and seccomp and
# AppArmor unconfined (the runtimes' default profiles refuse unshare(CLONE_NEWUSER) and mount).
# Where the cluster does not give these, the grading refuses (`--sandbox require`, the default):
# the Job fails, its log says why, and no learner code runs unsandboxed.
"""


@dataclass(frozen=True)
class JobSettings:
    """What an instructor chooses for the Jobs (the CLI's --image, --deadline, --cpus...)."""

    image: str
    submissions_claim: str = "grading-submissions"
    results_claim: str = "grading-results"
    deadline: int = 3600  # seconds a Job may run (activeDeadlineSeconds)
    cpus: str = "2"
    memory: str = "4Gi"
    steps: tuple[str, ...] = ()
    sandbox: str = "require"

    def checked(self) -> JobSettings:
        check_image(self.image)
        for option, claim in (("--submissions-claim", self.submissions_claim), ("--results-claim", self.results_claim)):
            if not _DNS_SUBDOMAIN.fullmatch(claim) or len(claim) > 253:
                raise AutograderError(
                    f"{option} {claim!r} is not a PersistentVolumeClaim name",
                    hint="lowercase letters, digits, '-' and '.', like grading-results",
                )
        for option, quantity in (("--cpus", self.cpus), ("--memory", self.memory)):
            if not _QUANTITY.fullmatch(quantity):
                raise AutograderError(
                    f"{option} {quantity!r} is not a Kubernetes quantity", hint="like 2 or 1500m CPUs, 4Gi of memory"
                )
        if self.deadline <= 0:
            raise AutograderError(f"--deadline {self.deadline} is not a time", hint="seconds, like 3600")
        return self


_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_QUANTITY = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?")
# A reference as Docker reads it: [registry[:port]/]path[:tag][@sha256:digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::(?P<tag>\w[\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)


def check_image(image: str) -> str:
    """``image`` when it names one build for good: a tag other than ``latest``, or a digest."""
    match = _IMAGE.fullmatch(image or "")
    if match is None:
        raise AutograderError(
            f"--image {image!r} is not an image reference",
            hint="name the grading image like registry.example.org/course/grader:2026-11-28",
        )
    if not match["digest"] and match["tag"] in (None, "latest"):
        moving = "its tag latest" if match["tag"] else "it has no tag, which means latest, and that"
        raise AutograderError(
            f"--image {image} is not pinned: {moving} moves from build to build, so Jobs started at "
            "different times could grade with different graders",
            hint="tag each build of the grading image (…/grader:2026-11-28) or pin its digest (…@sha256:…)",
        )
    return image


def kubernetes_job(learner: str, name: str, label: str, settings: JobSettings) -> dict:
    """The Job grading ``learner``'s folder of the submissions volume into the results volume."""
    metadata = {"labels": {**LABELS, LEARNER_KEY: label}, "annotations": {LEARNER_KEY: learner}}
    command = ["python", "-m", "autograder", "grade", f"{SUBMISSIONS_MOUNT}/{learner}"]
    command += ["--out", f"{RESULTS_MOUNT}/{learner}", "--sandbox", settings.sandbox, *_steps_option(settings.steps)]
    resources = {"cpu": settings.cpus, "memory": settings.memory}
    container = {
        "name": "grade",
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": [
            {"name": "HOME", "value": "/tmp/home"},
            {"name": "COURSE_CACHE_DIR", "value": "/tmp/cache"},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},  # the root filesystem is read-only
        ],
        "resources": {"requests": resources, "limits": resources},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "procMount": "Unmasked",
            "appArmorProfile": {"type": "Unconfined"},  # a field since Kubernetes 1.30
        },
        # `kubectl describe` shows the end of the log of a grading that failed.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            # Only this learner's folder, read-only.
            {
                "name": "submissions",
                "mountPath": f"{SUBMISSIONS_MOUNT}/{learner}",
                "subPath": learner,
                "readOnly": True,
            },
            {"name": "results", "mountPath": RESULTS_MOUNT},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, **metadata},
        "spec": {
            "backoffLimit": 0,  # a grading that failed is looked at, not repeated
            "activeDeadlineSeconds": settings.deadline,
            "ttlSecondsAfterFinished": TTL_SECONDS,
            "template": {
                "metadata": metadata,
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "hostUsers": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "runAsGroup": 1000,
                        "fsGroup": 1000,  # the results volume writable by the grader
                        "seccompProfile": {"type": "Unconfined"},
                    },
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "submissions",
                            "persistentVolumeClaim": {"claimName": settings.submissions_claim, "readOnly": True},
                        },
                        {"name": "results", "persistentVolumeClaim": {"claimName": settings.results_claim}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}},
                    ],
                },
            },
        },
    }


def network_policy() -> dict:
    """No traffic in or out for the grading pods: grading needs no network."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "autograder-no-network", "labels": dict(LABELS)},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": LABELS["app.kubernetes.io/name"]}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def write_kubernetes(learners: Sequence[str], out: Path, settings: JobSettings) -> list[Path]:
    """One Job file per learner, the NetworkPolicy and a ``kustomization.yaml`` listing them, in
    ``out``; the files of an earlier rendering there are replaced, any other file is left alone."""
    settings = settings.checked()
    check_learners(learners)
    names = safe_names(learners, prefix="grade-")
    labels = safe_names(learners)
    out = Path(out)
    _clear_earlier_rendering(out)
    documents = {"networkpolicy.yaml": network_policy()}
    documents |= {
        f"{names[learner]}.yaml": kubernetes_job(learner, names[learner], labels[learner], settings)
        for learner in learners
    }
    documents["kustomization.yaml"] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(documents),
    }
    return [
        _write_yaml(out / filename, document, "kubernetes", JOB_HEADER if document["kind"] == "Job" else "")
        for filename, document in documents.items()
    ]


def _clear_earlier_rendering(out: Path) -> None:
    """Remove the files an earlier rendering into ``out`` wrote (those its kustomization lists),
    so that a learner who left the class leaves no Job behind."""
    kustomization = out / "kustomization.yaml"
    if not kustomization.exists():
        return
    _refuse_unless_rendered(kustomization, "kubernetes")
    try:
        listed = yaml.safe_load(kustomization.read_text())["resources"]
    except (yaml.YAMLError, TypeError, KeyError):
        listed = []  # edited beyond recognition: leave its files, overwrite only rendered ones
    for name in listed if isinstance(listed, list) else []:
        path = out / str(name)
        if path.parent == out and path.suffix == ".yaml" and path.is_file() and not path.is_symlink():
            path.unlink()


# --- GitHub Actions ---------------------------------------------------------------------------

MATRIX_LIMIT = 256  # jobs one matrix may make (GitHub's limit)
RUNNER = "ubuntu-24.04"
ACTIONS = {
    "checkout": "actions/checkout@v4",
    "setup-python": "actions/setup-python@v5",
    "upload": "actions/upload-artifact@v4",
    "download": "actions/download-artifact@v4",
}
SETUP_MINUTES = 45  # the environment (PyTorch) and, for steps 05-06, the base image, wheelhouse, Prometheus
HOSTED_JOB_MINUTES = 360  # the longest a job may run on GitHub's runners

WORKFLOW_HEADER = """\
# Copy to .github/workflows/grade.yml of the course's (private) repository, with the submissions
# committed there; run it from the Actions tab (workflow_dispatch). Each matrix job grades its
# learners, as root (bubblewrap then needs no user namespace, which Ubuntu 24.04 restricts) in
# bubblewrap's sandbox, and uploads their results; the gradebook job collects them into
# graded/gradebook.csv (artifact "gradebook"). Learner names reach the shell only through LEARNERS.
"""

# The matrix job's grading: each learner of the job, its log next to its results so that a
# grading that failed says why in the gradebook. stdin is the list of learners: keep it from grade.
GRADE_SCRIPT = """\
export PATH="$PWD/.venv/bin:$PATH"
python -c 'import json, os; print(*json.loads(os.environ["LEARNERS"]), sep="\\n")' |
  while IFS= read -r learner; do
    [ -n "$learner" ] || continue
    mkdir -p "results/$learner"
    if ! timeout --kill-after=60 "$DEADLINE" python -m autograder grade "$SUBMISSIONS/$learner" \\
        --out "results/$learner" --sandbox {sandbox}{steps} </dev/null 2>&1 | tee "results/$learner/grade.log"; then
      echo "::warning::a learner of this job was not graded: see grade.log in the artifact"
    fi
  done
"""

COLLECT_SCRIPT = """\
mkdir -p results
.venv/bin/python -m autograder grade-all "$SUBMISSIONS" --collect results --out graded
"""


def github_workflow(
    learners: Sequence[str],
    submissions: str,
    *,
    steps: Sequence[str] = (),
    sandbox: str = "require",
    deadline: int = 3600,
) -> dict:
    """The workflow: a matrix grading ``learners`` (folders of ``submissions``, a path relative
    to the repository's root), one per job, or in chunks past GitHub's 256 jobs; then the job
    that collects every result into the gradebook."""
    check_learners(learners)
    entries = matrix_entries(learners)
    per_job = max(len(entry["learners"]) for entry in entries)
    grade_steps = [
        {"uses": ACTIONS["checkout"], "with": {"persist-credentials": False}},
        {"uses": ACTIONS["setup-python"], "with": {"python-version": "3.11"}},
        {
            "name": "Sandbox",
            "run": "sudo apt-get update -qq\nsudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap\n",
        },
        {"name": "Course environment", "run": "make venv"},
    ]
    if not steps or {"05", "06", "07"} & set(steps):
        # Steps 05 to 07 build and run the learner's image (06: its compose stack, with the
        # course's Prometheus image; 07: with the manifests' settings) on the runner's Docker engine.
        grade_steps.append(
            {
                "name": "Base image, wheelhouse and Prometheus image (steps 05 to 07)",
                "run": 'sudo env "PATH=$PWD/.venv/bin:$PATH" .venv/bin/python -m autograder offline setup',
            }
        )
    grade_steps += [
        {
            "name": "Grade",
            "shell": "sudo --preserve-env=LEARNERS,SUBMISSIONS,DEADLINE bash --noprofile --norc -eo pipefail {0}",
            "env": {
                "LEARNERS": "${{ toJSON(matrix.learners) }}",
                "SUBMISSIONS": submissions,
                "DEADLINE": str(deadline),
            },
            "run": GRADE_SCRIPT.format(sandbox=sandbox, steps="".join(f" {o}" for o in _steps_option(steps))),
        },
        {
            "name": "Upload the results",
            "if": "always()",
            "uses": ACTIONS["upload"],
            "with": {"name": "results-${{ matrix.name }}", "path": "results/", "if-no-files-found": "error"},
        },
    ]
    collect_steps = [
        {"uses": ACTIONS["checkout"], "with": {"persist-credentials": False}},
        {"uses": ACTIONS["setup-python"], "with": {"python-version": "3.11"}},
        {"name": "Course environment", "run": "make venv"},
        {
            "name": "Download every job's results",
            "uses": ACTIONS["download"],
            "with": {"pattern": "results-*", "merge-multiple": True, "path": "results"},
        },
        {"name": "Gradebook", "env": {"SUBMISSIONS": submissions}, "run": COLLECT_SCRIPT},
        {
            "name": "Upload the gradebook",
            "if": "always()",
            "uses": ACTIONS["upload"],
            "with": {"name": "gradebook", "path": "graded/"},
        },
    ]
    return {
        "name": "grade",
        "on": {"workflow_dispatch": {}},
        "permissions": {"contents": "read"},
        "jobs": {
            "grade": {
                "name": "grade ${{ matrix.name }}",
                "runs-on": RUNNER,
                "timeout-minutes": min(HOSTED_JOB_MINUTES, SETUP_MINUTES + math.ceil(deadline * per_job / 60)),
                "strategy": {"fail-fast": False, "matrix": {"include": entries}},
                "steps": grade_steps,
            },
            "gradebook": {
                "needs": "grade",
                "if": "${{ !cancelled() }}",  # also when some grading jobs failed: their rows say so
                "runs-on": RUNNER,
                "timeout-minutes": 60,
                "steps": collect_steps,
            },
        },
    }


def matrix_entries(learners: Sequence[str]) -> list[dict]:
    """One entry per learner, named as its artifact will be; past GitHub's limit, the learners in
    at most 256 chunks of equal size."""
    if len(learners) <= MATRIX_LIMIT:
        names = safe_names(learners)
        return [{"name": names[learner], "learners": [learner]} for learner in learners]
    size = math.ceil(len(learners) / MATRIX_LIMIT)
    chunks = [list(learners[start : start + size]) for start in range(0, len(learners), size)]
    return [{"name": f"chunk-{number:03d}", "learners": chunk} for number, chunk in enumerate(chunks, 1)]


def write_github_actions(learners: Sequence[str], out: Path, submissions: Path, **options) -> Path:
    """``out/grade.yml``, the workflow of ``github_workflow``; ``submissions`` must lie in the
    repository (the workflow grades the checked-out copy)."""
    try:
        relative = Path(submissions).resolve().relative_to(course.REPO_ROOT).as_posix()
    except ValueError:
        raise AutograderError(
            f"{submissions} is not in the course's repository: the workflow grades the submissions of its checkout",
            hint="commit the submissions to the (private) course repository, e.g. in submitted/, and render from there",
        ) from None
    workflow = github_workflow(learners, relative, **options)
    return _write_yaml(Path(out) / "grade.yml", workflow, "github-actions", WORKFLOW_HEADER)


# --- Collecting results ---------------------------------------------------------------------

RESULTS_LIMIT = 16 * 1024**2  # a results.json of every step is tens of kilobytes
LOG_LIMIT = 1024**2
_NUMBER = {"type": "number"}
_STRINGS = {"type": "array", "items": {"type": "string"}}
# What the gradebooks read of a results.json (reports/gradebook.py, reports/nbgrader_scores.py).
RESULTS_SCHEMA = {
    "type": "object",
    "required": ["score", "max_score"],
    "properties": {
        "score": _NUMBER,
        "max_score": _NUMBER,
        "execution_time": _NUMBER,
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "score", "max_score", "status"],
                "properties": {
                    "name": {"type": "string"},
                    "score": _NUMBER,
                    "max_score": _NUMBER,
                    "status": {"type": "string"},
                    "extra_data": {"type": "object"},
                },
            },
        },
        "extra_data": {
            "type": "object",
            "properties": {
                "steps": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["points"],
                        "properties": {"points": _NUMBER},
                    },
                },
                "flags": _STRINGS,
                "submission_notes": _STRINGS,
            },
        },
    },
}


def collect(results_dir: Path, expected: Iterable[str] = ()) -> list[GradedLearner]:
    """A gradebook row per learner folder of ``results_dir`` (and per ``expected`` learner, with
    or without one), from its ``results.json``; a missing, oversized or malformed one is a row
    without results that says why."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise AutograderError(
            f"{results_dir} is not a folder of results", hint="pass the folder holding one results folder per learner"
        )
    found = {p.name for p in results_dir.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")}
    return [_row(learner, results_dir / learner) for learner in sorted(found | set(expected))]


def _row(learner: str, folder: Path) -> GradedLearner:
    if folder.is_symlink():
        return GradedLearner(learner, None, "not graded: its results folder is a link, not followed")
    try:
        results = json.loads(read_output(folder / "results.json", RESULTS_LIMIT))
    except FileNotFoundError:  # no folder either: the grading failed early, or never started
        why = _why_from_log(folder / "grade.log") or "its grading did not run or did not finish: its log says why"
        return GradedLearner(learner, None, f"not graded: no results.json ({why})")
    except ValueError as error:  # over the limit, not UTF-8, not JSON
        return GradedLearner(learner, None, f"not graded: unreadable results.json ({str(error)[:200]})")
    except (OSError, RecursionError) as error:
        return GradedLearner(
            learner, None, f"not graded: unreadable results.json ({type(error).__name__}: {str(error)[:200]})"
        )
    problem = _results_problem(results)
    if problem:
        return GradedLearner(learner, None, f"not graded: malformed results.json ({problem})")
    seconds = results.get("execution_time", 0.0)
    return GradedLearner(learner, results, "", float(seconds))


def _results_problem(results) -> str:
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(RESULTS_SCHEMA).iter_errors(results))
    if error is None:
        return ""
    where = "/".join(str(part) for part in error.absolute_path) or "the top level"
    return f"at {where}: {error.message[:200]}"


def _why_from_log(log: Path) -> str:
    """The ``error:`` line the CLI printed into a grading's log (the workflow keeps one)."""
    try:
        lines = read_output(log, LOG_LIMIT).decode(errors="replace").splitlines()
    except (OSError, ValueError):
        return ""
    return next((line.removeprefix("error: ")[:500] for line in lines if line.startswith("error: ")), "")


# --- Names and files --------------------------------------------------------------------------

# Learner folders the renderers accept: letters, digits and a few marks (an e-mail address, a name
# with spaces), nothing a shell, YAML or GitHub's ${{ }} would read.
_LEARNER = re.compile(r"[\w.@+ -]{1,200}")


def check_learners(learners: Sequence[str]) -> None:
    if not learners:
        raise AutograderError("there is no learner to grade", hint="one folder per learner in the submissions folder")
    for learner in learners:
        if not _LEARNER.fullmatch(learner) or learner.startswith((".", "-")) or learner.strip() != learner:
            raise AutograderError(
                f"the learner folder {learner!r} has a name the Jobs and workflows cannot use",
                hint="rename it with letters, digits, spaces and . _ - @ + only (not first or last: spaces, . or -)",
            )


def safe_names(learners: Sequence[str], prefix: str = "") -> dict[str, str]:
    """A DNS-1123 label for each learner (a Job's name, a label value, an artifact's name):
    ``prefix`` and the name in lowercase ASCII; a name that had to change, or was too long, gets
    eight hex digits of its hash, so names stay distinct."""
    names = {}
    for learner in learners:
        ascii_name = unicodedata.normalize("NFKD", learner).encode("ascii", "ignore").decode().lower()
        slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")
        plain = prefix + slug
        if slug == learner and len(plain) <= NAME_LIMIT:
            names[learner] = plain
        else:
            digest = hashlib.sha256(learner.encode()).hexdigest()[:8]
            names[learner] = f"{plain[: NAME_LIMIT - len(digest) - 1].rstrip('-')}-{digest}".lstrip("-")
    taken: dict[str, str] = {}
    for learner, name in names.items():
        if name in taken:
            raise AutograderError(
                f"the learner folders {taken[name]!r} and {learner!r} would both be named {name}",
                hint="rename one of the two folders",
            )
        taken[name] = learner
    return names


def _steps_option(steps: Sequence[str]) -> list[str]:
    return ["--steps", ",".join(steps)] if steps else []


def _refuse_unless_rendered(path: Path, target: str) -> None:
    try:
        first = read_output(path, LOG_LIMIT).decode(errors="replace").partition("\n")[0]
    except (OSError, ValueError):
        first = ""  # a link, a folder, a large file: not ours
    if first != RENDERED.format(target=target):
        raise AutograderError(
            f"{path} was not written by the autograder: it is left as it is",
            hint="render into another folder (--out), or move that file away",
        )


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (scripts) as YAML block literals, and no anchors: the rendered files are
    read by people."""

    def ignore_aliases(self, data) -> bool:
        return True


_Dumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None),
)


def _write_yaml(path: Path, document: dict, target: str, comment: str = "") -> Path:
    """``document`` as YAML, marked as rendered for ``target``, after ``comment``; a file already
    there must have been rendered too."""
    if path.exists():
        _refuse_unless_rendered(path, target)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = RENDERED.format(target=target) + "\n" + comment
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(header + text)
    partial.replace(path)
    return path
