"""Step 04's campaign: a learner's pytest suite run against the reference service, cosmetic
controls of it, and its faulty variants, each run in a fresh sandbox.

What the learner could game, and what stops it:

- *State between runs* (pass the first time, fail once a marker file exists): every run gets a
  fresh sandbox with a fresh copy of the service and tests; nothing is carried over.
- *Recognising the reference* (hashing its files, comparing with solutions/ or with the copy
  ``catch-up 04`` hands out): the sandbox holds no reference to compare with; the service under
  test is there as bytecode only (``sourceless``), so there is no source text to normalise and
  compare; and *controls*, copies of the reference whose every Python file was rewritten
  (comments gone, assignments to ordinary-looking names added at random places of every module
  and function), must pass like the reference. The variants are rewritten the same way, each
  differently, so only behaviour tells them apart.
- *Timing or order* (pass early, fail late): the reference runs first and again last, the
  controls and variants in between in a random order.
- *Forged reports* (a conftest that rewrites the JUnit XML or the exit status): the number of
  tests is read from the test files' source by the grader and checked against a collect-only
  run; a variant counts as caught only when pytest exits with "tests failed" (1): a timeout, a
  crash, an internal or usage error never catches anything. Forging "passed" gains nothing that
  trivial passing tests would not, and forging "failed" fails the controls too.
- *Hanging*: the whole campaign runs under one deadline; what has not run by then is not caught.
"""

from __future__ import annotations

import ast
import concurrent.futures
import py_compile
import random
import re
import secrets
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from autograder import interrupts
from autograder.checks.context import SuiteRun
from autograder.runners import sandbox
from autograder.settings import Settings, capped
from autograder.variants import Variant, apply

RUN_TIMEOUT = 300.0  # one run of the suite
CONTROLS = 2
PARALLEL_RUNS = 2
# Never copied into a run's workspace: caches, environments, the learner's backups.
SKIPPED_NAMES = ("__pycache__", "*.pyc", ".pytest_cache", ".venv", ".catch-up-backups", ".git")
SKIPPED = shutil.ignore_patterns(*SKIPPED_NAMES)
SUITE_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
REPORT_LIMIT = 4 * 1024**2
TEST_FILE = re.compile(r"^(test_.*|.*_test)\.py$")


def assemble(service_from: Path, tests_from: Path, destination: Path, variant: Variant | None = None) -> Path:
    """``destination`` := the service of ``service_from`` (optionally made faulty) + ``tests_from/tests``."""
    shutil.copytree(service_from, destination, ignore=shutil.ignore_patterns("tests", *SKIPPED_NAMES))
    if variant is not None:
        apply(variant, destination)
    if (tests_from / "tests").is_dir():
        shutil.copytree(tests_from / "tests", destination / "tests", ignore=SKIPPED, symlinks=False)
    return destination


# Names for the disguise's statements: like the code's own, so no pattern picks them out.
_WORDS = ("cache", "pending", "retries", "scale", "offset", "budget", "window", "margin", "count",
          "limit", "total", "stamp", "state", "seen", "step", "depth", "span", "ratio")  # fmt: skip


class _Disguise(ast.NodeTransformer):
    """Adds one to three assignments of a random value to a random, ordinary-looking name, at
    random places of the module and of every function body: the code's behaviour stays, its
    text, AST and bytecode change, differently in each copy."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def _statement(self) -> ast.stmt:
        name = f"_{self.rng.choice(_WORDS)}_{self.rng.randrange(100)}"
        value = self.rng.choice(
            [
                ast.Constant(self.rng.getrandbits(20)),
                ast.Constant(round(self.rng.random(), 3)),
                ast.Constant(self.rng.choice(_WORDS)),
                ast.Tuple([ast.Constant(self.rng.randrange(10)) for _ in range(2)], ast.Load()),
            ]
        )
        return ast.Assign(targets=[ast.Name(name, ast.Store())], value=value, lineno=0)

    def _insert(self, body: list[ast.stmt]) -> list[ast.stmt]:
        first = 0
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            first = 1  # after the docstring
        while first < len(body) and isinstance(body[first], ast.ImportFrom) and body[first].module == "__future__":
            first += 1
        body = list(body)
        for _ in range(self.rng.randint(1, 3)):
            body.insert(self.rng.randint(first, len(body)), self._statement())
        return body

    def visit_Module(self, node: ast.Module) -> ast.Module:
        self.generic_visit(node)
        node.body = self._insert(node.body)
        return node

    def visit_FunctionDef(self, node):
        self.generic_visit(node)
        node.body = self._insert(node.body)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef


def disguise(service: Path, rng: random.Random) -> None:
    """Rewrite every Python file of ``service`` (tests/ excepted) as its ``_Disguise``d AST."""
    for path in _service_sources(service):
        tree = _Disguise(rng).visit(ast.parse(path.read_text()))
        path.write_text(ast.unparse(ast.fix_missing_locations(tree)) + "\n")


def sourceless(service: Path) -> None:
    """Replace every Python file of ``service`` (tests/ excepted) by its compiled bytecode alone
    (``module.pyc`` beside where the source was, which Python imports as it is): the suite can
    import the service under test and call it, but has no source text to compare with the
    reference's."""
    for path in _service_sources(service):
        relative = path.relative_to(service).as_posix()
        py_compile.compile(
            str(path),
            cfile=str(path.with_suffix(".pyc")),
            dfile=relative,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        path.unlink()


def _service_sources(service: Path) -> list[Path]:
    return [p for p in sorted(service.rglob("*.py")) if "tests" not in p.relative_to(service).parts]


def static_tests(tests_from: Path) -> list[str]:
    """'file::function' of every test the suite's source defines (module functions test_*, and
    methods test_* of classes Test*), read by the grader from the snapshot: what pytest must collect."""
    found = []
    folder = tests_from / "tests"
    for path in sorted(folder.rglob("*.py")) if folder.is_dir() else []:
        if not TEST_FILE.match(path.name):
            continue
        try:
            tree = ast.parse(path.read_text(errors="replace"))
        except SyntaxError:
            continue
        relative = path.relative_to(tests_from).as_posix()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                found.append(f"{relative}::{node.name}")
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                for inner in node.body:
                    if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef) and inner.name.startswith("test"):
                        found.append(f"{relative}::{node.name}::{inner.name}")
    return found


def collected_tests(output: str) -> list[str]:
    """Test ids listed by ``pytest --collect-only -q`` (one per parameter set)."""
    names = []
    for line in output.splitlines():
        line = line.strip()
        if "::" in line and not line.startswith(("=", "<", "[")) and " " not in line.split("[", 1)[0]:
            names.append(line)
    return sorted(set(names))


@dataclass
class Campaign:
    """Every run of one learner's suite, in the order they happened."""

    static: list[str] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)
    collect_run: SuiteRun | None = None
    references: list[SuiteRun] = field(default_factory=list)
    controls: list[SuiteRun] = field(default_factory=list)
    variants: dict[str, SuiteRun] = field(default_factory=dict)
    out_of_time: list[str] = field(default_factory=list)  # variants the deadline left unrun

    @property
    def tests(self) -> int:
        """Tests collected (parameter sets counted), of functions the test files really define."""
        static = {name.split("::", 1)[1] for name in self.static}
        return sum(1 for name in self.collected if name.split("[", 1)[0].split("::", 1)[1] in static)

    @property
    def consistent_count(self) -> str:
        """Why pytest's collection disagrees with the test files, or ''."""
        static = {name.split("::", 1)[1] for name in self.static}
        collected = {name.split("[", 1)[0].split("::", 1)[1] for name in self.collected}
        if static == collected:
            return ""
        hidden = sorted(static - collected)
        extra = sorted(collected - static)
        detail = (f"not collected: {', '.join(hidden[:5])}" if hidden else "") + (
            f"{'; ' if hidden else ''}collected but not in the test files: {', '.join(extra[:5])}" if extra else ""
        )
        return f"pytest collected {len(collected)} tests, the test files define {len(static)} ({detail})"


class SuiteRunner:
    """A Context's ``run_suite``: the learner's suite, the reference service and its variants."""

    def __init__(
        self,
        tests_from: Path,
        reference: Path,
        variants: Iterable[Variant],
        *,
        mechanism: sandbox.Mechanism,
        settings: Settings,
        scratch: Path,
        rng: random.Random | None = None,
    ):
        self._tests_from, self._reference = tests_from, reference
        self._mechanism, self._settings, self._scratch = mechanism, settings, scratch
        self._rng = rng or random.Random(secrets.randbits(64))
        self._by_name = {v.name: v for v in variants}
        self.variants = tuple((v.name, v.description) for v in self._by_name.values())
        self._deadline: float | None = None
        self._campaign: Campaign | None = None
        self._variants_done = False

    def campaign(self, *, with_variants: bool) -> Campaign:
        """Run what has not run yet: first the collection, the reference and a control (what
        passes-on-reference needs); with ``with_variants`` also the variants, the other controls and the
        reference once more, last."""
        if self._campaign is None:
            self._deadline = time.monotonic() + self._settings.suite_deadline
            campaign = self._campaign = Campaign(static=static_tests(self._tests_from))
            collect = self._run(None, disguised=False, collect_only=True)
            campaign.collect_run = collect
            campaign.collected = collected_tests(collect.full_output) if collect else []
            first = [("reference", None, False), ("control", None, True)]
            self._rng.shuffle(first)
            for kind, run in zip(
                [kind for kind, _, _ in first], self._run_many([(v, d) for _, v, d in first]), strict=True
            ):
                (campaign.references if kind == "reference" else campaign.controls).append(run)
        if with_variants and not self._variants_done:
            self._variants_done = True
            campaign = self._campaign
            plan: list[tuple[str, str | None, bool]] = [("control", None, True)] * (CONTROLS - 1)
            plan += [("variant", name, True) for name in self._by_name]
            self._rng.shuffle(plan)
            plan.append(("reference", None, False))
            runs = self._run_many([(variant, disguised) for _, variant, disguised in plan])
            for (kind, name, _), run in zip(plan, runs, strict=True):
                if run is None:
                    if kind == "variant":
                        campaign.out_of_time.append(name)
                    continue
                if kind == "variant":
                    campaign.variants[name] = run
                elif kind == "control":
                    campaign.controls.append(run)
                else:
                    campaign.references.append(run)
        return self._campaign

    def _run_many(self, runs: list[tuple[str | None, bool]]) -> list[SuiteRun | None]:
        """Run each (variant, disguised) in its own sandbox, two at a time; None for those the
        deadline did not leave time for."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL_RUNS, thread_name_prefix="suite") as pool:
            futures = [pool.submit(self._run, variant, disguised=disguised) for variant, disguised in runs]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def _run(self, variant: str | None, *, disguised: bool, collect_only: bool = False) -> SuiteRun | None:
        interrupts.raise_if_interrupted()
        remaining = self._deadline - time.monotonic()
        if remaining <= 1:
            return None
        root = Path(tempfile.mkdtemp(prefix="suite-", dir=self._scratch))
        try:
            sandbox.prepare_root(root, writable=())
            work = assemble(self._reference, self._tests_from, root / "work", self._by_name.get(variant))
            if disguised:
                disguise(work, random.Random(self._rng.getrandbits(64)))
            sourceless(work)
            sandbox.prepare_root(root, writable=("work", "out"))
            sandbox.hand_over(work, root)
            inside = self._mechanism.inside(root)
            command = [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"]
            if collect_only:
                command.append("--collect-only")
            else:
                command.append(f"--junitxml={inside}/out/report.xml")
                if variant is not None:
                    command.append("-x")
            finished = sandbox.run(
                command,
                root=root,
                mechanism=self._mechanism,
                limits=sandbox.Limits.from_settings(self._settings, min(capped(RUN_TIMEOUT), remaining)),
                writable=("work", "out"),
                env={**SUITE_ENV, "PYTHONPATH": f"{inside}/work"},
                cwd=f"{inside}/work",
            )
            counts = {} if collect_only else _counts(root / "out" / "report.xml")
            return SuiteRun(
                exit_code=-1 if finished.timed_out else finished.returncode,
                timed_out=finished.timed_out,
                seconds=finished.seconds,
                output_tail=_tail(finished.output, 25),
                full_output=finished.output,
                **counts,
            )
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _counts(report: Path) -> dict:
    """Counts from pytest's JUnit XML, for the message only (the learner's process wrote it)."""
    try:
        root = ElementTree.fromstring(sandbox.read_output(report, REPORT_LIMIT))
    except (OSError, ValueError, ElementTree.ParseError):
        return {}
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return {}
    try:
        return {key: int(suite.get(name, 0)) for key, name in _COUNT_NAMES.items()}
    except ValueError:
        return {}


_COUNT_NAMES = {"collected": "tests", "failed": "failures", "errors": "errors", "skipped": "skipped"}
