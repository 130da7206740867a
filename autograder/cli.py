"""``python -m autograder``: parses arguments and calls the layers below. No logic of its own."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from autograder import course
from autograder.errors import AutograderError
from autograder.release.nbgrader_setup import DB_URL

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def _check(args) -> int:
    from autograder.grading import grade_step, resolve_workspace
    from autograder.progress import grading, record
    from autograder.reports import results_json, terminal

    step = course.step(args.step)
    resolve_workspace(args.workspace)  # a missing workspace is an error before anything is recorded
    started = time.monotonic()
    with grading(args.workspace, step.id):
        report = grade_step(step.id, args.workspace, only=args.only, settings=_check_settings(args))
    record(args.workspace, report)
    print(terminal.step_table(report))
    if args.json:
        results_json.write([report], args.json, seconds=time.monotonic() - started)
    return EXIT_OK if report.all_passed else EXIT_FAILED


def _check_settings(args):
    """The settings of a check: --sandbox wins, then COURSE_SANDBOX; results for a gradebook
    (--json) are never made from unsandboxed runs unless one of them says so."""
    import dataclasses
    import os

    from autograder.settings import current

    settings = current()
    if args.sandbox:
        return dataclasses.replace(settings, sandbox=args.sandbox)
    if args.json and not os.environ.get("COURSE_SANDBOX"):
        return dataclasses.replace(settings, sandbox="require")
    return settings


def _grade(args) -> int:
    from autograder.checks.result import printable
    from autograder.reports import feedback, results_json, terminal
    from autograder.submissions import grade

    steps = _steps(args.steps)
    report = grade(args.submission, steps=steps, settings=_instructor_settings(args))
    out = args.out or course.BUILD_DIR / "graded" / args.submission.resolve().name
    out.mkdir(parents=True, exist_ok=True)
    results = results_json.write_submission(report, out)
    (out / "feedback.md").write_text(feedback.markdown(report))
    (out / "feedback.html").write_text(feedback.as_html(report))
    for note in report.notes:
        print(f"!! {printable(note, limit=600)}")
    print(terminal.summary_table(report.reports))
    print(
        f"\n{report.points:g}/{report.max_points:g} points in {report.seconds:.0f} s; flags: {', '.join(report.flags) or 'none'}"
    )
    print(f"results: {results}\nfeedback: {out / 'feedback.md'}, {out / 'feedback.html'}")
    return EXIT_OK


def _grade_all(args) -> int:
    from autograder.reports import gradebook
    from autograder.submissions import grade_all, learners

    if args.render:
        return _render_grading(args)
    if args.collect:
        from autograder.release.grading_jobs import collect

        expected = [folder.name for folder in learners(args.submissions)] if args.submissions else []
        out = args.out or args.collect
        rows = collect(args.collect, expected)
    elif args.submissions:
        out = args.out or course.BUILD_DIR / "graded"

        def progress(row) -> None:
            score = f"{row.results['score']:g}/{row.results['max_score']:g}" if row.results else row.problem
            print(f"  {row.learner}: {score} ({row.seconds:.0f} s)", flush=True)

        rows = grade_all(
            args.submissions,
            out,
            steps=_steps(args.steps),
            jobs=args.jobs,
            sandbox=args.sandbox,
            timeout=args.deadline,
            progress=progress,
        )
    else:
        raise AutograderError(
            "grade-all needs the submissions folder", hint="python -m autograder grade-all SUBMISSIONS [--out DIR]"
        )
    out.mkdir(parents=True, exist_ok=True)
    path = gradebook.write(rows, out / "gradebook.csv")
    failed = [row.learner for row in rows if row.results is None]
    print(f"gradebook: {path} ({len(rows)} learners" + (f", not graded: {', '.join(failed)})" if failed else ")"))
    if args.nbgrader_db:
        from autograder.reports import nbgrader_scores

        nbgrader_scores.write_gradebook(rows, args.nbgrader_db)
        print(f"nbgrader's gradebook: {args.nbgrader_db} (formgrader and `nbgrader export` show the scores)")
    return EXIT_FAILED if failed else EXIT_OK


# Options of --render kubernetes only; their defaults are grading_jobs.JobSettings'.
_JOB_OPTIONS = ("image", "submissions_claim", "results_claim", "cpus", "memory")


def _render_grading(args) -> int:
    from autograder.release import grading_jobs
    from autograder.submissions import learners

    if not args.submissions:
        raise AutograderError(
            "--render needs the submissions folder: one Job or matrix entry per learner folder",
            hint=f"python -m autograder grade-all SUBMISSIONS --render {args.render} --out DIR",
        )
    names = [folder.name for folder in learners(args.submissions)]
    steps = tuple(_steps(args.steps) or ())
    sandbox = args.sandbox or "require"
    out = args.out or course.BUILD_DIR / "grading" / args.render
    given = {name: getattr(args, name) for name in _JOB_OPTIONS if getattr(args, name) is not None}
    if args.render == "github-actions":
        if given:
            options = ", ".join("--" + name.replace("_", "-") for name in given)
            raise AutograderError(f"{options}: for --render kubernetes only", hint="leave them out for github-actions")
        path = grading_jobs.write_github_actions(
            names, out, args.submissions, steps=steps, sandbox=sandbox, deadline=args.deadline
        )
        print(f"workflow for {len(names)} learners: {path}")
        print("copy it to .github/workflows/ of the course's private repository and run it from the Actions tab")
        return EXIT_OK
    if "image" not in given:
        raise AutograderError(
            "--render kubernetes needs --image: the grading image your cluster pulls",
            hint="build it from this repository (course_docs/instructors.md says how), push it, pass it tagged",
        )
    settings = grading_jobs.JobSettings(**given, deadline=args.deadline, steps=steps, sandbox=sandbox)
    written = grading_jobs.write_kubernetes(names, out, settings)
    print(f"{len(written) - 2} Jobs, a NetworkPolicy and kustomization.yaml in {out}")
    print(f"check them on your cluster: kubectl apply --dry-run=server -k {out}; then: kubectl apply -k {out}")
    return EXIT_OK


def _steps(text: str | None) -> list[str] | None:
    return [course.step(part.strip()).id for part in text.split(",") if part.strip()] if text else None


def _instructor_settings(args):
    """Grading for a gradebook runs learner code only in the sandbox, unless --sandbox says otherwise."""
    import dataclasses

    from autograder.settings import current

    return dataclasses.replace(current(), sandbox=args.sandbox or "require")


def _release(args) -> int:
    from autograder.release.pipeline import release

    if args.learner_repo:
        from autograder.release import learner_repo

        held = learner_repo.write(args.learner_repo, with_reference=args.with_reference)
        print(f"learners' repository written to {args.learner_repo}: {', '.join(held)}")
        print("without solutions/, hidden tests, step 04's faulty services, the instructors' guide or the tests")
        return EXIT_OK
    if args.gradescope:
        from autograder.release import gradescope

        print(f"Gradescope autograder bundle: {gradescope.write(args.gradescope)}")
        return EXIT_OK
    _needs_solutions("release")

    found = release(check=args.check)
    if args.check:
        if found:
            print("exercises/ differs from what solutions/ generates:")
            print("\n".join("  " + line for line in found))
            print("regenerate it with: python -m autograder release")
            return EXIT_FAILED
        print("exercises/ is up to date with solutions/")
        return EXIT_OK
    print(
        "\n".join(["exercises/ regenerated:", *("  " + line for line in found)])
        if found
        else "exercises/ was already up to date"
    )
    return EXIT_OK


def _needs_solutions(command: str) -> None:
    if not course.SOLUTIONS_DIR.is_dir():
        raise AutograderError(
            f"`{command}` works from solutions/, which this repository does not have (a learners' repository)",
            hint="run it in the instructors' repository",
        )


def _run_solutions(args) -> int:
    from autograder.reference import run_solutions

    _needs_solutions("run-solutions")

    run = run_solutions(check=args.check)
    if not run.differences:
        print(f"the committed reference workspace equals what the notebooks write ({course.REFERENCE_WORKSPACE})")
        return EXIT_OK
    if args.check:
        print("the committed reference workspace differs from what the solution notebooks write:")
        print("\n".join("  " + line for line in run.differences))
        print("update it with: python -m autograder run-solutions")
        return EXIT_FAILED
    print("\n".join(["reference workspace updated:", *("  " + line for line in run.differences)]))
    return EXIT_OK


def _offline(args) -> int:
    from autograder.runners import offline

    if args.offline_command == "base-image":
        if args.stand_in:
            offline.build_stand_in(offline.BASE_IMAGE)
            print(f"{offline.BASE_IMAGE} built as the offline stand-in")
        else:
            print(offline.ensure_base_image(allow_pull=not args.no_pull))
    elif args.offline_command == "wheelhouse":
        requirements = args.requirements or [course.REFERENCE_WORKSPACE / "requirements.txt"]
        print(f"wheelhouse ready: {offline.build_wheelhouse(requirements)}")
    elif args.offline_command == "serve":
        import time

        with offline.serve_wheelhouse(port=args.port) as url:
            print(f"serving {offline.wheelhouse_dir()} at {url} (Ctrl-C to stop)")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    elif args.offline_command == "setup":
        requirements = [course.REFERENCE_WORKSPACE / "requirements.txt"]
        print("\n".join(offline.prepare_builds(requirements, allow_pull=not args.no_pull)))
    return EXIT_OK


def _demo(args) -> int:
    from autograder.grading import grade_step
    from autograder.reports import results_json, terminal
    from autograder.runners import docker as docker_runner
    from autograder.runners import offline

    available, why = docker_runner.engine_available()
    if available:
        requirements = [course.REFERENCE_WORKSPACE / "requirements.txt"]
        print("\n".join(offline.prepare_builds(requirements, allow_pull=not args.no_pull)))
    else:
        print(f"no Docker engine ({why}): the container checks will be reported as skipped")
    reports = []
    for step in course.STEPS:
        print(f"\ngrading step {step.id} of the reference workspace ...", flush=True)
        report = grade_step(step.id, course.REFERENCE_WORKSPACE)
        print(terminal.step_table(report))
        reports.append(report)
    print()
    print(terminal.summary_table(reports))
    results_json.write(reports, course.BUILD_DIR / "demo-results.json")
    print(f"\nresults JSON: {course.BUILD_DIR / 'demo-results.json'}")
    return EXIT_OK if all(r.all_passed for r in reports) else EXIT_FAILED


def _doctor(args) -> int:
    from autograder.doctor import examine
    from autograder.reports import terminal

    findings = examine()
    print(terminal.doctor_table(findings))
    return EXIT_OK if all(f.ok for f in findings if f.required) else EXIT_FAILED


def _progress(args) -> int:
    from autograder.progress import progress
    from autograder.reports import terminal

    print(terminal.progress_table(progress(args.workspace), args.workspace))
    return EXIT_OK


def _catch_up(args) -> int:
    from autograder.progress import catch_up

    changes = catch_up(args.step, args.workspace)
    for change in changes:
        note = f" (your version saved as {change.backup})" if change.backup else ""
        print(f"  {change.action:<9} {change.path}{note}")
    changed = sum(1 for c in changes if c.action != "unchanged")
    print(f"{changed} file(s) restored from the reference solution; you can start step {args.step} now")
    return EXIT_OK


def _clean(args) -> int:
    from autograder import images
    from autograder.runners import docker as docker_runner

    containers = docker_runner.remove_leftover_containers()
    removed = images.prune(keep=args.keep)
    print(f"removed {len(containers)} container(s) and {len(removed)} image(s) the autograder had left")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="grade one step of a workspace")
    check.add_argument("step", help="step number, e.g. 01")
    check.add_argument("--workspace", type=Path, default=course.STUDENT_WORKSPACE, help="default: %(default)s")
    check.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    check.add_argument(
        "--only", action="append", metavar="CHECK", help="run only this check (e.g. json-logs); repeatable"
    )
    check.add_argument(
        "--sandbox",
        choices=("auto", "require", "off"),
        help="confine the workspace's code: auto (the default; unsandboxed with a warning where the machine "
        "has no sandbox), require (refuse without one; the default with --json), off",
    )
    check.set_defaults(handler=_check)

    grade = commands.add_parser(
        "grade", help="grade one learner's submission (their notebooks): results.json and feedback"
    )
    grade.add_argument("submission", type=Path, help="the folder holding the learner's notebooks")
    grade.add_argument("--out", type=Path, help="where results.json and the feedback go (default: build/graded/NAME)")
    _instructor_options(grade)
    grade.set_defaults(handler=_grade)

    grade_all = commands.add_parser(
        "grade-all",
        help="grade every learner's folder and write a CSV gradebook; or render Kubernetes Jobs or a GitHub "
        "Actions workflow that grade them, and collect what those wrote",
    )
    grade_all.add_argument(
        "submissions", type=Path, nargs="?", help="one folder per learner (nbgrader's submitted/ works)"
    )
    grade_all.add_argument(
        "--out",
        type=Path,
        help="results per learner and gradebook.csv (default: build/graded; with --collect: RESULTS; with "
        "--render: build/grading/TARGET)",
    )
    grade_all.add_argument("--jobs", type=int, default=2, help="submissions graded at once (default: %(default)s)")
    grade_all.add_argument(
        "--deadline",
        type=int,
        default=3600,
        help="seconds one learner's grading may take, here, in a Job or in a workflow (default: %(default)s)",
    )
    elsewhere = grade_all.add_mutually_exclusive_group()
    elsewhere.add_argument(
        "--render",
        choices=("kubernetes", "github-actions"),
        help="grade nothing here: write one Kubernetes Job per learner (and kustomization.yaml), or a GitHub "
        "Actions workflow with a job per learner, to --out",
    )
    elsewhere.add_argument(
        "--collect",
        type=Path,
        metavar="RESULTS",
        help="grade nothing: the gradebook from RESULTS/<learner>/results.json, as the Jobs or the workflow "
        "wrote them (with SUBMISSIONS, a learner without results gets a row too)",
    )
    jobs = grade_all.add_argument_group("--render kubernetes")
    jobs.add_argument("--image", help="the grading image, pinned by tag or digest (required)")
    jobs.add_argument(
        "--submissions-claim",
        help="PersistentVolumeClaim holding one folder per learner (default: grading-submissions)",
    )
    jobs.add_argument("--results-claim", help="PersistentVolumeClaim the results go to (default: grading-results)")
    jobs.add_argument("--cpus", help="CPUs requested and allowed per Job (default: 2)")
    jobs.add_argument("--memory", help="memory requested and allowed per Job (default: 4Gi)")
    grade_all.add_argument(
        "--nbgrader-db",
        nargs="?",
        const=DB_URL,
        metavar="URL",
        help="also write the scores into nbgrader's gradebook (default URL: the course's, %(const)s); "
        "run `nbgrader generate_assignment` first",
    )
    _instructor_options(grade_all)
    grade_all.set_defaults(handler=_grade_all)

    release = commands.add_parser("release", help="generate exercises/ from solutions/ (nbgrader)")
    release.add_argument("--check", action="store_true", help="only compare; exit 1 and list the files on drift")
    release.add_argument(
        "--learner-repo", type=Path, metavar="DIR", help="write the repository learners get (no solutions) to DIR"
    )
    release.add_argument(
        "--gradescope", type=Path, metavar="ZIP", help="write a Gradescope autograder bundle (setup.sh, run_autograder)"
    )
    release.add_argument(
        "--with-reference",
        action="store_true",
        help="with --learner-repo: include the reference workspace (reference/workspace) for catch-up",
    )
    release.set_defaults(handler=_release)

    solutions = commands.add_parser("run-solutions", help="execute the solution notebooks with papermill")
    solutions.add_argument("--check", action="store_true", help="exit 1 if the committed reference workspace differs")
    solutions.set_defaults(handler=_run_solutions)

    off = commands.add_parser("offline", help="base image and wheelhouse for machines without registry or internet")
    off_commands = off.add_subparsers(dest="offline_command", required=True)
    base = off_commands.add_parser("base-image", help="make sure python:3.11-slim exists (pull, or build a stand-in)")
    base.add_argument("--no-pull", action="store_true", help="do not try a registry first")
    base.add_argument("--stand-in", action="store_true", help="build the stand-in even if a registry answers")
    wheels = off_commands.add_parser("wheelhouse", help="download the wheels image builds need")
    wheels.add_argument("-r", "--requirements", type=Path, action="append", help="requirements file (repeatable)")
    serve = off_commands.add_parser("serve", help="serve the wheelhouse on 127.0.0.1 until Ctrl-C")
    serve.add_argument("--port", type=int, default=None, help="default: 3141 or COURSE_WHEELHOUSE_PORT")
    setup = off_commands.add_parser("setup", help="base image and wheelhouse for the reference workspace")
    setup.add_argument("--no-pull", action="store_true")
    off.set_defaults(handler=_offline)

    demo = commands.add_parser("demo", help="grade the reference workspace end to end and print the score table")
    demo.add_argument("--no-pull", action="store_true", help="never try a registry for the base image")
    demo.set_defaults(handler=_demo)

    progress = commands.add_parser("progress", help="every step's status at a glance")
    progress.add_argument("--workspace", type=Path, default=course.STUDENT_WORKSPACE, help="default: %(default)s")
    progress.set_defaults(handler=_progress)

    catch_up = commands.add_parser("catch-up", help="restore the reference files of the steps before STEP")
    catch_up.add_argument("step", help="the step you want to start, e.g. 05")
    catch_up.add_argument("--workspace", type=Path, default=course.STUDENT_WORKSPACE, help="default: %(default)s")
    catch_up.set_defaults(handler=_catch_up)

    doctor = commands.add_parser("doctor", help="is this machine ready for the course? each problem with its fix")
    doctor.set_defaults(handler=_doctor)

    clean = commands.add_parser("clean", help="remove containers and old images the autograder left behind")
    clean.add_argument("--keep", type=int, default=3, help="labelled images to keep as build cache")
    clean.set_defaults(handler=_clean)
    return parser


def _instructor_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", help="only these steps, e.g. 00,02 (default: every step)")
    parser.add_argument(
        "--sandbox",
        choices=("require", "auto", "off"),
        help="require (the default: refuse to run learner code without the sandbox), auto or off "
        "(then every report says UNSANDBOXED)",
    )


def main(argv: list[str] | None = None) -> int:
    from autograder import interrupts, settings

    args = build_parser().parse_args(argv)
    interrupts.install()
    try:
        settings.current()  # a bad COURSE_* value stops here, before anything runs
        return args.handler(args)
    except AutograderError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: containers started by this run were removed", file=sys.stderr)
        return 130
