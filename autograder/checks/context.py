"""What a check may use: the workspace, and the means to run code that the upper layers inject.

Checks never start processes or containers themselves. ``grading.py`` builds a Context whose
``provide`` makes the runners' resources on demand, and tests can build one with fakes.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from autograder.checks.result import Outcome


@dataclass(frozen=True)
class ProbeResult:
    """What came back from running a snippet of Python against the learner's code."""

    ok: bool
    value: object = None  # the JSON the snippet returned when ok
    error: str = ""  # "ExceptionType: message" raised by the learner's code
    timed_out: bool = False
    crashed: bool = False  # the interpreter died (segfault, os._exit, killed)
    output_tail: str = ""  # last lines of stdout/stderr, for the message

    def describe_failure(self) -> str:
        if self.timed_out:
            return "your code did not finish in time (an endless loop, or work done at import?)"
        if self.crashed:
            tail = self.output_tail.strip().splitlines()[-1:] or ["no output"]
            return f"the Python process running your code died ({tail[0]})"
        return self.error or "your code raised an error"


@dataclass(frozen=True)
class SuiteRun:
    """What came back from running a learner's pytest suite once."""

    exit_code: int  # pytest's: 0 all passed, 1 some failed, 2 interrupted, 5 no tests; -1 timed out
    collected: int = 0  # these counts come from the learner's process: for messages, never verdicts
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    timed_out: bool = False
    seconds: float = 0.0
    output_tail: str = ""
    full_output: str = field(default="", repr=False, compare=False)

    @property
    def passed(self) -> bool:
        """pytest ran the suite and every test passed."""
        return self.exit_code == 0

    @property
    def caught_something(self) -> bool:
        """pytest ran the suite to its end and some test failed: on a faulty service whose
        reference passes, the fault was caught. A timeout, a crash or an internal error is not."""
        return self.exit_code == 1 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            return f"the suite did not finish in {self.seconds:.0f} s"
        if self.exit_code == 5:
            return "pytest collected no tests"
        if self.exit_code < 0:
            return f"the process running the suite died (signal {-self.exit_code})"
        if self.exit_code not in (0, 1):
            last = self.output_tail.strip().splitlines()[-1:] or ["no output"]
            return f"pytest could not run the suite (exit status {self.exit_code}: {last[0]})"
        if not self.collected:
            return "pytest passed" if self.exit_code == 0 else "some tests failed"
        return f"{self.collected} tests: {self.failed} failed, {self.errors} errors, {self.skipped} skipped"


@dataclass(frozen=True)
class LintFinding:
    """One finding of hadolint: a rule id (DL3008, SC2164...), its level, the line, the message."""

    code: str
    level: str  # error, warning, info, style
    line: int
    message: str


class ProbeRunner(Protocol):
    def __call__(
        self,
        probe: str,
        arguments: dict,
        *,
        inputs: dict | None = None,
        timeout: float = ...,
        drive: Callable[[Served], dict] | None = None,
    ) -> ProbeResult: ...


class CommandRunner(Protocol):
    def command(
        self, argv: list[str], *, env: dict | None = None, timeout: float = ..., stdout_limit: int = ...
    ) -> ProbeResult:
        """``argv`` run in the workspace, in the sandbox: {"status", "stdout", "stderr"} as seen from outside."""


class HttpClient(Protocol):
    """Bounded requests to one app a probe serves; each answer is a dict of plain facts
    (status, mimetype, headers with lower-case names, json or None, text)."""

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        *,
        content_type: str | None = None,
        headers: dict | None = None,
        chunked: bool = False,
        text_limit: int | None = ...,
    ) -> dict: ...

    def get(self, target: str, **kwargs) -> dict: ...

    def post(self, target: str, body: bytes | None = None, **kwargs) -> dict: ...

    def delete(self, target: str, **kwargs) -> dict: ...


class Served(Protocol):
    """A probe that serves, as its drive function sees it (runners.probes.Served)."""

    def client(self, app: str, *, timeout: float = ...) -> HttpClient: ...

    def facts(self) -> dict:
        """What the probe's process noted: seen from inside, so never a verdict alone."""

    def app_facts(self, app: str) -> dict: ...

    def release(self) -> None:
        """Let the probe go on (a slow loader returns)."""


class SuiteRunner(Protocol):
    """Runs the learner's tests against the reference service, its controls and its faulty
    variants (runners.pytest_suite.Campaign holds the runs)."""

    variants: tuple[tuple[str, str], ...]  # (name, description) of every faulty variant

    def campaign(self, *, with_variants: bool): ...


class Service(Protocol):
    """A running service the live checks may send HTTP requests to (on 127.0.0.1 only)."""

    base_url: str
    figures: dict[str, str]
    weights_seed: int | None  # the seed of the grader's weights file the container loads

    def request(self, method: str, path: str, *, session=None, **kwargs) -> object:
        """A bounded HTTP request (size and time) to the service."""

    def running(self) -> bool: ...

    def configured_user(self) -> str:
        """USER from the image's configuration ('' means root)."""

    def process_uids(self) -> dict[int, tuple[str, str]]:
        """(UID, command) of each process in the container, by PID."""

    def read_only_root_trouble(self) -> str:
        """A hint when the logs show writes to the read-only root filesystem, else ''."""

    def stop(self, grace: float) -> StopResult:
        """SIGTERM, SIGKILL after ``grace`` seconds; the same result on every later call."""


class StopResult(Protocol):
    seconds: float
    exit_code: int
    oom_killed: bool
    logs: str


class Build(Protocol):
    """What the live checks read of an image build (runners.docker.BuildResult)."""

    tag: str
    seconds: float
    size_bytes: int
    layers: int


class ComposeModel(Protocol):
    """docker-compose.yml as the Compose CLI normalised it in the sandbox (``config --format json``)."""

    model: dict
    inside: str  # the workspace's path as the model names it (bind sources, build contexts)

    def relative(self, path: str) -> str | None:
        """``path`` relative to the workspace ('' for the workspace itself), None when outside it."""


class Promtool(Protocol):
    """promtool, run in the course's Prometheus image on workspace files, with no network."""

    def run(
        self,
        argv: list[str],
        *,
        mounts: dict[str, str] | None = None,
        texts: dict[str, str] | None = None,
        working_dir: str | None = None,
    ) -> tuple[int, str]:
        """``promtool argv`` with workspace paths (relative) mounted read-only at container paths,
        and ``texts`` (the grader's own, such as the dashboard's queries as rules) likewise;
        (exit status, output)."""


class Stack(Protocol):
    """The learner's compose stack, started by the grader (runners.compose.Stack)."""

    figures: dict[str, str]
    plan: object  # runners.compose.Plan: api, prometheus, grafana, notes

    def health(self) -> dict[str, str]: ...

    def process_commands(self, service: str) -> list[str]: ...

    def prometheus_api(self, path: str, **params: str) -> object: ...

    def stop(self, service: str, grace: int = ...) -> float: ...


class PolicyFinding(Protocol):
    """A policy checkov found broken (runners.checkov.PolicyFinding)."""

    check_id: str  # CKV_K8S_20
    title: str
    resource: str  # Kind.namespace.name


class Manifests(Protocol):
    """The Kubernetes objects ``kubectl kustomize k8s`` rendered in the sandbox (checks.kubernetes.Manifests)."""

    objects: tuple[dict, ...]

    def of_kind(self, *kinds: str) -> list[dict]: ...

    def one(self, kind: str) -> dict | None: ...

    def named(self, kind: str, name: object) -> dict | None: ...

    def workload(self) -> dict | None: ...


class Pod(Service, Protocol):
    """The service's image run as the manifests configure its container (their environment)."""

    environment: dict[str, str]  # what the grader passed from the manifests

    def memory_bytes(self) -> int:
        """The container's memory in use now (the engine's figure, page cache left out)."""


class Unavailable(Exception):
    """A resource a check needs could not be had: the check's outcome is this one (skipped
    without a Docker engine, failed when the image did not build...)."""

    def __init__(self, outcome):
        super().__init__(outcome.message)
        self.outcome = outcome


class WorkspaceFileProblem(Exception):
    """A workspace file the grader will not read: too large, or not a regular file."""


TEXT_LIMIT = 1024 * 1024  # no file a check reads as text is larger in a correct workspace
ALREADY_TOLD = {
    "image": "there is no image: the build failed (see image-builds)",
    "service": "no running container to ask (see container-ready)",
    "compose": "docker-compose.yml could not be read (see compose-valid)",
    "stack": "the stack did not start (see stack-healthy)",
    "manifests": "kubectl kustomize k8s did not render (see kustomize-renders)",
    "pod": "the pod's container did not start (see memory-fits-limits)",
    "policies": "checkov did not run (see policy-scan)",
}


@dataclass
class Context:
    """What one check may use.

    ``workspace`` is the learner's folder, named in messages; ``files`` is the grader's frozen,
    sanitised copy of it, which is what checks read. Resources that cost something (the probe
    runner, a test-suite runner, hadolint's findings, an image, a running container) come from
    ``provide`` on first use, once per grading run; checks declare the ones they need.
    """

    workspace: Path
    files: Path | None = None
    provide: Callable[[str], object] | None = None
    # A folder of the grader's for the inputs it makes (weights files, photos); never the learner's.
    scratch: Path | None = None
    # Inputs vary from run to run (seeds, crops, values), so canned answers cannot pass.
    rng: random.Random = field(default_factory=lambda: random.Random(secrets.randbits(64)))
    notes: tuple[str, ...] = ()
    _resources: dict[str, object] = field(default_factory=dict, repr=False)
    _told: set[str] = field(default_factory=set, repr=False)
    _memo: dict[str, object] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.files = self.files or self.workspace

    def file(self, relative: str) -> Path:
        return self.files / relative

    def read_text(self, relative: str, limit: int = TEXT_LIMIT) -> str:
        """A workspace file's text; WorkspaceFileProblem when it is too large to be what it claims."""
        path = self.file(relative)
        if path.is_symlink() or not path.is_file():
            raise WorkspaceFileProblem(f"{relative} is not a regular file")
        size = path.stat().st_size
        if size > limit:
            raise WorkspaceFileProblem(
                f"{relative} is {size / 1e6:.1f} MB, over the {limit / 1e6:.0f} MB a file like it can need"
            )
        return path.read_bytes()[:limit].decode("utf-8", errors="replace")

    def resource(self, name: str) -> object:
        """The named resource, made on first use (raises Unavailable when it cannot be had)."""
        if name not in self._resources:
            if self.provide is None:
                raise Unavailable(_skip(f"no {name} was given to this check"))
            try:
                self._resources[name] = self.provide(name)
            except Unavailable as missing:
                self._resources[name] = missing
        found = self._resources[name]
        if isinstance(found, Unavailable):
            # The first check that needed it says why in full; the others point there.
            if name in self._told and not found.outcome.skipped:
                raise Unavailable(Outcome.fail(ALREADY_TOLD.get(name, f"no {name} (see the check before)")))
            self._told.add(name)
            raise found
        return found

    def once(self, key: str, make: Callable[[], object]) -> object:
        """What ``make()`` returns, computed once per grading run: facts several checks share
        (what gunicorn's configuration resolves to, what the configuration makes of an env)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    @property
    def run_suite(self) -> SuiteRunner:
        return self.resource("suite")

    @property
    def lint_findings(self) -> list[LintFinding]:
        return self.resource("lint")

    @property
    def build(self) -> Build:
        return self.resource("image")

    @property
    def service(self) -> Service:
        return self.resource("service")

    @property
    def compose(self) -> ComposeModel:
        return self.resource("compose")

    @property
    def promtool(self) -> Promtool:
        return self.resource("promtool")

    @property
    def stack(self) -> Stack:
        return self.resource("stack")

    @property
    def manifests(self) -> Manifests:
        return self.resource("manifests")

    @property
    def pod(self) -> Pod:
        return self.resource("pod")

    @property
    def policy_findings(self) -> list[PolicyFinding]:
        return self.resource("policies")

    def probe(
        self,
        name: str,
        arguments: dict | None = None,
        *,
        files: tuple[str, ...] = (),
        inputs: dict[str, bytes | Path] | None = None,
        timeout: float = 120,
        drive: Callable[[Served], dict] | None = None,
    ) -> tuple[object | None, str]:
        """Run the probe ``name`` ("module:function" of autograder.probes) with ``arguments``
        once the workspace ``files`` it reads exist; return (observations, "") or (None, a
        failure message for the learner). With ``drive``, the probe serves and ``drive`` sends
        it requests from the grader's process (runners.probes.ProbeRunner)."""
        for relative in files:
            if not self.file(relative).is_file():
                return None, f"{relative} does not exist in {self.workspace}: run the cell that writes it"
        result = self.resource("probe")(name, arguments or {}, inputs=inputs, timeout=timeout, drive=drive)
        if not result.ok:
            return None, result.describe_failure()
        return result.value, ""

    def command(
        self, argv: list[str], *, env: dict | None = None, files: tuple[str, ...] = (), timeout: float = 60
    ) -> tuple[dict | None, str]:
        """Run ``argv`` in the workspace ("python" is the course's interpreter) once the ``files``
        it needs exist; return ({"status", "stdout", "stderr"}, "") or (None, a failure message)."""
        for relative in files:
            if not self.file(relative).is_file():
                return None, f"{relative} does not exist in {self.workspace}: run the cell that writes it"
        runner: CommandRunner = self.resource("probe")
        result = runner.command(argv, env=env, timeout=timeout)
        if not result.ok:
            return None, result.describe_failure()
        return result.value, ""


def _skip(message: str) -> Outcome:
    return Outcome.skip(message)
