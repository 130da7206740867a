"""The one place learner code runs: a bubblewrap sandbox, or, where none can be had, a plainly
labelled unsandboxed fallback.

Inside the sandbox a command sees the course environment (this Python, its packages, the
system's /usr) read-only, the grading root at ``/run/course`` (read-only but for the folders the
caller names writable), a private ``/tmp`` of bounded size, its own PID, network (loopback only),
IPC and UTS namespaces, and nothing else: no repository, no solutions, no caches, no Docker
socket. It runs as an unprivileged UID with no capabilities, under limits on memory per process,
tasks, CPU time, file size and open files, and a wall-clock deadline that kills everything it
started (the PID namespace dies with it). Its output reaches the grader bounded: the first and
last ``Limits.output_bytes`` bytes, however much it prints.

Without bubblewrap (a laptop without it, macOS) the same command runs in a process group with
the same limits where ``prlimit`` exists, and every report says it was unsandboxed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autograder import interrupts
from autograder.errors import AutograderError
from autograder.settings import Settings

SANDBOX_ROOT = "/run/course"  # where the grading root appears inside the sandbox
SANDBOX_UID = 65534  # the UID code inside sees when the grader is not root (a user namespace maps it)
# As root, each sandbox gets a UID of its own, drawn from a range no account uses: RLIMIT_NPROC
# counts every process of a UID, so a shared one (nobody's) would let one sandbox, or anything
# else running as nobody, use up the task limit of another running beside it.
UID_BASE = 1_500_000_000
UID_SPAN = 2**24
# Read-only system paths of a Debian-like host the course environment needs; missing ones are skipped.
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
SYSTEM_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/alternatives",
    "/etc/ssl/certs",
)
# What a command inside may rely on; the grader's own environment never leaks in.
BASE_ENV = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "USER": "sandbox",
    "LOGNAME": "sandbox",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONHASHSEED": "0",
    "MPLBACKEND": "Agg",
}
# After a kill, how long the grader waits for the output pipe to close before it stops reading.
PIPE_GRACE_SECONDS = 2.0


class SandboxUnavailable(AutograderError):
    """The sandbox is required (COURSE_SANDBOX=require) but cannot run on this machine."""


@dataclass(frozen=True)
class Limits:
    """What one sandboxed command may use. Memory is per process (RLIMIT_DATA), tasks are
    processes and threads together, the deadline covers everything the command starts."""

    wall_seconds: float = 120.0
    memory_bytes: int = 3 * 1024**3
    tasks: int = 512
    file_bytes: int = 256 * 1024**2
    open_files: int = 1024
    tmp_bytes: int = 512 * 1024**2
    output_bytes: int = 32 * 1024  # kept from the start and from the end of the output each

    @classmethod
    def from_settings(cls, settings: Settings, wall_seconds: float) -> Limits:
        return cls(
            wall_seconds=wall_seconds,
            memory_bytes=settings.sandbox_memory,
            tasks=settings.sandbox_tasks,
            file_bytes=settings.sandbox_file_size,
        )

    @property
    def cpu_seconds(self) -> int:
        # CPU time of each process: enough for the deadline on every core, never unlimited.
        return int(self.wall_seconds * (os.cpu_count() or 1)) + 10


@dataclass(frozen=True)
class Finished:
    returncode: int  # -9 (or another negative signal number) when killed
    output: str  # stdout and stderr together, bounded
    timed_out: bool
    seconds: float
    output_bytes: int = 0  # how much the command printed in all
    sandboxed: bool = True

    @property
    def output_truncated(self) -> bool:
        return self.output_bytes > len(self.output.encode(errors="replace"))


@dataclass(frozen=True)
class Mechanism:
    """How commands are confined here: 'bubblewrap' or 'none', and why."""

    name: str
    detail: str

    @property
    def sandboxed(self) -> bool:
        return self.name == "bubblewrap"

    def inside(self, root: Path) -> str:
        """Where a command sees the grading root ``root``."""
        return SANDBOX_ROOT if self.sandboxed else str(root)

    def describe(self) -> str:
        if self.sandboxed:
            return f"sandboxed ({self.detail})"
        return f"UNSANDBOXED: {self.detail}; learner code ran with your own permissions"


@functools.cache
def _bubblewrap_works() -> tuple[bool, str]:
    binary = shutil.which("bwrap")
    if binary is None:
        return False, "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as scratch:
        argv = _bwrap_argv(Path(scratch), writable=(), binds={}, env={}, cwd=SANDBOX_ROOT, limits=Limits())
        try:
            done = subprocess.run(
                [*argv, "/bin/sh", "-c", "exit 0"], capture_output=True, text=True, timeout=30, errors="replace"
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return False, f"bubblewrap could not start ({error})"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return False, f"bubblewrap cannot create namespaces here ({last})"
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    return True, version or "bubblewrap"


def mechanism(settings: Settings) -> Mechanism:
    """The sandbox this machine offers under ``settings.sandbox`` (auto, require, off)."""
    if settings.sandbox == "off":
        return Mechanism("none", "COURSE_SANDBOX=off")
    works, detail = _bubblewrap_works()
    if works:
        return Mechanism("bubblewrap", detail)
    if settings.sandbox == "require":
        raise SandboxUnavailable(
            f"learner code must run in the sandbox (COURSE_SANDBOX=require), but {detail}",
            hint="install bubblewrap (apt-get install bubblewrap) on a Linux machine with user or PID "
            "namespaces, or grade on such a machine; `check --sandbox auto` (or COURSE_SANDBOX=auto) grades "
            "unsandboxed, with a warning in every report",
        )
    return Mechanism("none", detail)


def sandbox_uid(root: Path) -> int:
    """The UID code runs under in the sandbox of ``root`` (a fresh folder per run, so a UID per run)."""
    if os.geteuid() != 0:
        return SANDBOX_UID
    return UID_BASE + int.from_bytes(hashlib.sha256(str(root).encode()).digest()[:3], "big") % UID_SPAN


def is_sandbox_uid(uid: int) -> bool:
    return uid == SANDBOX_UID or UID_BASE <= uid < UID_BASE + UID_SPAN


def prepare_root(root: Path, *, writable: Iterable[str] = ("out",)) -> None:
    """Make ``root`` readable by the sandbox's UID and the named sub-folders writable by it."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    for name in writable:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        if os.geteuid() == 0:
            os.chown(folder, sandbox_uid(root), sandbox_uid(root))


def hand_over(tree: Path, root: Path) -> None:
    """Give ``tree`` to the UID of the sandbox of ``root`` (when the grader is root), so code
    inside may write there."""
    if os.geteuid() != 0:
        return
    uid = sandbox_uid(root)
    for folder, _, files in os.walk(tree):
        os.chown(folder, uid, uid)
        for name in files:
            os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)


def make_readable(tree: Path) -> None:
    """Folders 0755 and files 0644 (executables 0755), so the sandbox's UID can read ``tree``."""
    for folder, _directories, files in os.walk(tree):
        os.chmod(folder, 0o755)
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(0o755 if path.stat().st_mode & 0o111 else 0o644)


def _course_environment() -> list[str]:
    """Folders holding this Python and its packages (venv and base installation), deduplicated."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    candidates |= {os.path.realpath(p) for p in candidates}
    candidates.add(os.path.dirname(os.path.realpath(sys.executable)))
    kept: list[str] = []
    for path in sorted(candidates, key=len):
        if path in ("/", "/usr") or any(path == k or path.startswith(k + "/") for k in kept):
            continue
        if os.path.isdir(path):
            kept.append(path)
    return kept


def _ensure_parents(target: str, made: set[str]) -> list[str]:
    """--dir arguments for ``target``'s missing parents, world-traversable (bubblewrap would copy
    the host's modes, and /root is 0700)."""
    argv: list[str] = []
    parts = Path(target).parent.parts
    for index in range(2, len(parts) + 1):
        parent = str(Path(*parts[:index]))
        if parent not in made and parent not in SYSTEM_DIRS:
            made.add(parent)
            argv += ["--perms", "0755", "--dir", parent]
    return argv


def _bwrap_argv(
    root: Path,
    *,
    writable: Iterable[str],
    binds: Mapping[str, Path],
    env: Mapping[str, str],
    cwd: str,
    limits: Limits,
) -> list[str]:
    argv = [
        "bwrap",
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ]
    for directory in SYSTEM_DIRS:
        if os.path.islink(directory):
            argv += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            argv += ["--ro-bind", directory, directory]
    # The private /tmp first: the course environment may itself live under /tmp (a CI clone),
    # and a mount made later would hide it.
    argv += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    made: set[str] = {"/tmp"}
    for path in SYSTEM_FILES:
        if os.path.exists(path):
            argv += _ensure_parents(path, made) + ["--ro-bind", path, path]
    for path in _course_environment():
        argv += _ensure_parents(path, made) + ["--ro-bind", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "0755", "--dir", "/run", "--ro-bind", str(root), SANDBOX_ROOT]
    for name, source in binds.items():
        argv += ["--ro-bind", str(source), f"{SANDBOX_ROOT}/{name}"]
    for name in writable:
        argv += ["--bind", str(root / name), f"{SANDBOX_ROOT}/{name}"]
    for key, value in {**BASE_ENV, **env}.items():
        argv += ["--setenv", key, value]
    argv += ["--chdir", cwd]
    if os.geteuid() == 0:
        # As root, bubblewrap needs no user namespace; setpriv then drops to an unprivileged UID
        # with no capabilities before anything of the learner's runs.
        argv += [
            "--",
            "setpriv",
            f"--reuid={sandbox_uid(root)}",
            f"--regid={sandbox_uid(root)}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ]
    else:
        argv += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--disable-userns", "--"]
    return argv


def _tasks_of_this_user() -> int:
    """Processes and threads of the real UID; RLIMIT_NPROC counts them all, not just ours."""
    uid, count = os.getuid(), 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields_ = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields_.get("Uid", "-1").split()[0]) == uid:
            count += int(fields_.get("Threads", "1").strip())
    return count


def _prlimit_argv(limits: Limits, *, dedicated_uid: bool) -> list[str]:
    if shutil.which("prlimit") is None:
        return []
    # The sandbox UID is ours alone when the grader runs as root; otherwise the limit counts the
    # user's own processes too, so it is set above what they already run.
    tasks = limits.tasks if dedicated_uid else _tasks_of_this_user() + limits.tasks
    return [
        "prlimit",
        f"--data={limits.memory_bytes}",
        f"--nproc={tasks}",
        f"--cpu={limits.cpu_seconds}",
        f"--fsize={limits.file_bytes}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
    ]


@dataclass
class _BoundedOutput:
    """Drains a pipe in a thread, keeping its first and last ``keep`` bytes."""

    keep: int
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    total: int = 0

    def drain(self, stream) -> None:
        try:
            while chunk := stream.read1(65536):
                self.total += len(chunk)
                room = self.keep - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                if chunk:
                    self.tail += chunk
                    if len(self.tail) > self.keep:
                        del self.tail[: len(self.tail) - self.keep]
        except (OSError, ValueError):
            pass  # the grader closed its end after a kill

    def text(self) -> str:
        head = self.head.decode(errors="replace")
        if not self.tail:
            return head
        skipped = self.total - len(self.head) - len(self.tail)
        middle = f"\n[... {skipped} bytes of output left out ...]\n" if skipped > 0 else ""
        return head + middle + self.tail.decode(errors="replace")


def run(
    command: list[str],
    *,
    root: Path,
    mechanism: Mechanism,
    limits: Limits,
    writable: Iterable[str] = ("out",),
    binds: Mapping[str, Path] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    during: Callable[[subprocess.Popen], None] | None = None,
) -> Finished:
    """Run ``command`` confined by ``mechanism`` with the grading root ``root`` (prepared with
    ``prepare_root``); kill everything it started at the deadline, on Ctrl-C, or when it ends.

    ``binds`` shows other folders of the grader read-only at ``ROOT/name`` (a workspace
    snapshot shared by several runs, say); without a sandbox they are linked there instead.

    ``during``, when given, is called in the grader's thread while the command runs (to talk to a
    server it started, say); when it returns, the command is killed. The deadline still holds:
    at the deadline the command is killed under it, so whatever it waits on fails at once."""
    writable = tuple(writable)
    inside = mechanism.inside(root)
    cwd = cwd or inside
    env = {**BASE_ENV, **(env or {})}
    for name, source in (binds or {}).items():
        if mechanism.sandboxed:
            (root / name).mkdir(exist_ok=True)  # a mount point inside the read-only root
        elif not (root / name).exists():
            (root / name).symlink_to(source, target_is_directory=True)
    if mechanism.sandboxed:
        argv = _bwrap_argv(root, writable=writable, binds=binds or {}, env=env, cwd=cwd, limits=limits) + command
        argv = _prlimit_argv(limits, dedicated_uid=os.geteuid() == 0) + argv
        popen_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    else:
        argv = _prlimit_argv(limits, dedicated_uid=False) + command
        popen_env = {**env, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root / "out")}
        popen_env["TMPDIR"] = str(root / "out")
    started = time.monotonic()
    process = subprocess.Popen(
        argv,
        cwd=cwd if not mechanism.sandboxed else None,
        env=popen_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = _BoundedOutput(limits.output_bytes)
    reader = threading.Thread(target=output.drain, args=(process.stdout,), name="sandbox-output", daemon=True)
    reader.start()
    timed_out = False
    try:
        deadline = started + limits.wall_seconds
        if during is not None:
            stop = threading.Event()
            watchdog = threading.Thread(target=_kill_at, args=(process, deadline, stop), name="sandbox-deadline")
            watchdog.start()
            try:
                during(process)
            finally:
                timed_out = time.monotonic() >= deadline
                stop.set()
                watchdog.join()
        while during is None and process.poll() is None:
            interrupts.raise_if_interrupted()
            if time.monotonic() >= deadline:
                timed_out = True
                break
            try:
                process.wait(timeout=min(0.2, max(deadline - time.monotonic(), 0.01)))
            except subprocess.TimeoutExpired:
                pass
    finally:
        # Whatever happened (end, deadline, Ctrl-C): nothing it started survives, no pipe stays open.
        _kill_group(process)
        process.wait()
        reader.join(PIPE_GRACE_SECONDS)
        process.stdout.close()
        reader.join(PIPE_GRACE_SECONDS)
    return Finished(
        returncode=-signal.SIGKILL if timed_out else process.returncode,
        output=output.text(),
        timed_out=timed_out,
        seconds=time.monotonic() - started,
        output_bytes=output.total,
        sandboxed=mechanism.sandboxed,
    )


def read_output(path: Path, limit: int) -> bytes:
    """A file the sandboxed code wrote, read with one open that follows no link and never blocks:
    a link, FIFO or anything but a regular file in its place is refused (OSError), and so is a
    file over ``limit`` bytes (ValueError). Code that is still running cannot swap it mid-check."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as stream:
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{Path(path).name} is not a regular file")
        data = stream.read(limit + 1)
    if info.st_size > limit or len(data) > limit:
        raise ValueError(f"{Path(path).name} is over its size limit")
    return data


def _kill_at(process: subprocess.Popen, deadline: float, stop: threading.Event) -> None:
    """Kill ``process``'s group at ``deadline`` unless ``stop`` is set first."""
    if not stop.wait(max(deadline - time.monotonic(), 0)):
        _kill_group(process)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
