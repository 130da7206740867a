"""Offline tooling: a stand-in for ``python:3.11-slim`` built from Debian packages, and a wheelhouse
served on 127.0.0.1, so that images build on machines with no registry and no internet.

Docker itself is reached only through ``runners.docker``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from autograder.course import cache_dir
from autograder.errors import AutograderError
from autograder.runners import docker as docker_runner
from autograder.settings import current

BASE_IMAGE = docker_runner.BASE_IMAGE
# Packages the stand-in needs to behave like the official image for an ordinary Dockerfile:
# python/pip on PATH, venv, useradd/adduser, CA certificates.
STAND_IN_PACKAGES = (
    "python3",
    "python3-venv",
    "python3-pip",
    "python-is-python3",
    "ca-certificates",
    "passwd",
    "adduser",
)
# Always in the wheelhouse, so `pip install --upgrade pip setuptools wheel` works offline too.
BOOTSTRAP_WHEELS = ("pip", "setuptools", "wheel")


def wheelhouse_port() -> int:
    """Where builds find the wheelhouse on their loopback (COURSE_WHEELHOUSE_PORT, default 3141)."""
    return current().wheelhouse_port


def stand_in_pip_conf(port: int) -> str:
    """Baked into the stand-in: pip finds wheels only in the wheelhouse served on loopback."""
    return f"""\
# Written by the course's offline stand-in for python:3.11-slim (python -m autograder offline).
# Graded builds share the loopback of a container serving the wheelhouse on 127.0.0.1:{port}.
[global]
no-index = true
find-links = http://127.0.0.1:{port}/
trusted-host = 127.0.0.1
disable-pip-version-check = true
"""


# Debian's python3 installs into dist-packages with a Debian-specific prefix layout. A virtual
# environment at /usr/local gives the official image's layout instead: /usr/local/bin/python,
# /usr/local/lib/python3.11/site-packages, and `pip install --prefix=/install` producing
# /install/lib/python3.11/site-packages. System site packages stay visible so `--user` works.
_CUSTOMIZE = r"""
set -eu
python3 -m venv --system-site-packages /usr/local
rm -f /usr/local/bin/Activate.ps1 /usr/local/bin/activate*
rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/*
"""


def wheelhouse_dir() -> Path:
    return cache_dir() / "wheelhouse"


def apt_mirror() -> str:
    """The Debian mirror this machine's apt already uses (never a hard-coded host)."""
    candidates = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        candidates += re.findall(r"^URIs:\s*(\S+)", path.read_text(), flags=re.M)
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.exists():
            candidates += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", path.read_text(), flags=re.M)
    for uri in candidates:
        if "security" not in uri and "updates" not in uri:
            return uri
    raise AutograderError(
        "no Debian mirror found in /etc/apt/sources.list*",
        hint="set COURSE_DEBIAN_MIRROR to the URL of a Debian bookworm mirror",
    )


def build_stand_in(reference: str = BASE_IMAGE, *, mirror: str | None = None) -> None:
    """debootstrap a minimal bookworm with Python, shape it like the official image, import it."""
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise AutograderError(
            "building the offline stand-in base image needs root and debootstrap",
            hint="run as root after `apt-get install -y debootstrap`, or pull python:3.11-slim where a registry answers",
        )
    mirror = mirror or current().debian_mirror or apt_mirror()
    with tempfile.TemporaryDirectory(prefix="stand-in-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=" + ",".join(STAND_IN_PACKAGES),
                "bookworm",
                str(rootfs),
                mirror,
            ],
            what="debootstrap of the stand-in base image",
        )
        _run(["chroot", str(rootfs), "/bin/sh", "-c", _CUSTOMIZE], what="shaping the stand-in like python:3.11-slim")
        (rootfs / "etc" / "pip.conf").write_text(stand_in_pip_conf(wheelhouse_port()))
        tarball = Path(scratch) / "rootfs.tar"
        with tarfile.open(tarball, "w") as archive:
            for entry in sorted(rootfs.iterdir()):
                archive.add(entry, arcname=entry.name)
        docker_runner.import_rootfs(
            tarball,
            reference,
            changes=[
                "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV LANG=C.UTF-8",
                "ENV PYTHON_VERSION=3.11.2",
                f'LABEL {docker_runner.STAND_IN_LABEL}="debian-bookworm" {docker_runner.LABEL}="base"',
                'CMD ["python3"]',
            ],
        )


def ensure_base_image(reference: str = BASE_IMAGE, *, allow_pull: bool = True) -> str:
    """Make sure ``reference`` exists: already there, pulled, or built as the stand-in. Says which."""
    if docker_runner.image_exists(reference):
        kind = "stand-in" if is_stand_in(reference) else "present"
        return f"{reference} already present ({kind})"
    if allow_pull and docker_runner.pull_image(reference):
        return f"{reference} pulled from a registry"
    build_stand_in(reference)
    return f"{reference} built as the offline stand-in from Debian packages"


# Step 06's Prometheus: the official image where a registry answers, else a stand-in of the same
# name built from Debian's prometheus package (2.42, the same version) on the course's base image.
PROMETHEUS_IMAGE = docker_runner.PROMETHEUS_IMAGE
# What the official image offers that learners' compose files use: /bin/prometheus, /bin/promtool,
# busybox's wget (for healthchecks), user nobody, /prometheus for the data, the default config.
_PROMETHEUS_DOCKERFILE = """\
FROM {base}
COPY prometheus promtool busybox /usr/bin/
COPY prometheus.yml /etc/prometheus/prometheus.yml
RUN ln -s /usr/bin/busybox /usr/bin/wget \\
 && mkdir -p /prometheus /usr/share/prometheus/consoles /usr/share/prometheus/console_libraries \\
 && chown 65534:65534 /prometheus
USER 65534:65534
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", \\
     "--web.console.libraries=/usr/share/prometheus/console_libraries", \\
     "--web.console.templates=/usr/share/prometheus/consoles"]
LABEL {stand_in}="debian-bookworm-prometheus"
"""
_PROMETHEUS_DEFAULT_CONFIG = """\
# The stand-in's default configuration (as the official image's): Prometheus scrapes itself.
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
"""


def ensure_prometheus_image(*, allow_pull: bool = True) -> str:
    """Make sure PROMETHEUS_IMAGE exists: already there, pulled, or built from Debian's package."""
    if docker_runner.image_exists(PROMETHEUS_IMAGE):
        kind = "stand-in" if is_stand_in(PROMETHEUS_IMAGE) else "present"
        return f"{PROMETHEUS_IMAGE} already present ({kind})"
    if allow_pull and docker_runner.pull_image(PROMETHEUS_IMAGE):
        return f"{PROMETHEUS_IMAGE} pulled from a registry"
    build_prometheus_stand_in()
    return f"{PROMETHEUS_IMAGE} built as the offline stand-in from Debian's prometheus package"


def build_prometheus_stand_in() -> None:
    """apt-get download Debian's prometheus and busybox packages (no install, no service
    started), unpack them, and build the stand-in on the course's base image, with no network."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise AutograderError(
            f"{PROMETHEUS_IMAGE} cannot be pulled here, and building its stand-in needs apt-get and dpkg-deb",
            hint="on a machine with a registry: docker pull prom/prometheus:v2.42.0; offline: run this on Debian",
        )
    if not docker_runner.image_exists(BASE_IMAGE):
        raise AutograderError(f"{BASE_IMAGE} is missing", hint="python -m autograder offline setup makes it first")
    with tempfile.TemporaryDirectory(prefix="prometheus-stand-in-") as scratch:
        folder = Path(scratch)
        _run_in(["apt-get", "download", "prometheus", "busybox"], folder, what="apt-get download prometheus busybox")
        unpacked = folder / "unpacked"
        for package in sorted(folder.glob("*.deb")):
            _run(["dpkg-deb", "-x", str(package), str(unpacked)], what=f"unpacking {package.name}")
        context = folder / "context"
        context.mkdir()
        for name, found in (("prometheus", "usr/bin/prometheus"), ("promtool", "usr/bin/promtool")):
            shutil.copy2(unpacked / found, context / name)
        busybox = next((p for p in (unpacked / "bin/busybox", unpacked / "usr/bin/busybox") if p.is_file()), None)
        if busybox is None:
            raise AutograderError("Debian's busybox package has no busybox binary where expected")
        shutil.copy2(busybox, context / "busybox")
        (context / "prometheus.yml").write_text(_PROMETHEUS_DEFAULT_CONFIG)
        (context / "Dockerfile").write_text(
            _PROMETHEUS_DOCKERFILE.format(base=BASE_IMAGE, stand_in=docker_runner.STAND_IN_LABEL)
        )
        docker_runner.build_image(context, PROMETHEUS_IMAGE, network_mode="none", labels={docker_runner.LABEL: "base"})


def prepare_builds(requirements: list[Path], *, allow_pull: bool = True) -> list[str]:
    """Base image, plus the wheelhouse when the base is the stand-in (the official image installs
    from the package index itself), plus step 06's Prometheus image. Returns what was done, for
    people to read."""
    done = [ensure_base_image(allow_pull=allow_pull)]
    if is_stand_in():
        done.append(f"wheelhouse ready: {build_wheelhouse(requirements)}")
    else:
        done.append("official base image: builds install from the package index, no wheelhouse needed")
    # Where the base image had to be a stand-in, no registry answered: waiting out another pull's
    # timeout (COURSE_PULL_TIMEOUT) would find the same.
    done.append(ensure_prometheus_image(allow_pull=allow_pull and not is_stand_in()))
    return done


def is_stand_in(reference: str = BASE_IMAGE) -> bool:
    return docker_runner.STAND_IN_LABEL in docker_runner.image_labels(reference)


def build_wheelhouse(requirements: list[Path], destination: Path | None = None) -> Path:
    """Download every wheel the requirements need (cp311, this platform) into the wheelhouse."""
    destination = destination or wheelhouse_dir()
    destination.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(destination)]
    for requirement in requirements:
        if not Path(requirement).is_file():
            raise AutograderError(f"requirements file {requirement} does not exist")
        command += ["-r", str(requirement)]
    _run(command + list(BOOTSTRAP_WHEELS), what="pip download into the wheelhouse")
    return destination


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


@contextlib.contextmanager
def build_network() -> Iterator[str | None]:
    """The network a graded build's RUN steps get: on the stand-in, the loopback of a container
    that serves the wheelhouse (and nothing else); with the official base image, the engine's
    default (pip reaches the package index)."""
    try:
        stand_in = docker_runner.image_exists(BASE_IMAGE) and is_stand_in()
    except AutograderError:
        stand_in = False
    if not stand_in:
        yield None
        return
    directory = wheelhouse_dir()
    if not directory.is_dir():
        raise AutograderError(
            f"the wheelhouse {directory} does not exist",
            hint="create it: python -m autograder offline setup",
        )
    with docker_runner.wheelhouse_server(directory, wheelhouse_port(), BASE_IMAGE) as network_mode:
        yield network_mode


@contextlib.contextmanager
def serve_wheelhouse(directory: Path | None = None, port: int | None = None) -> Iterator[str]:
    """Serve the wheelhouse on the host's 127.0.0.1:port for the duration of the block; yield its
    URL (`offline serve`, for builds by hand with --network host; graded builds use
    ``build_network`` instead)."""
    directory = directory or wheelhouse_dir()
    port = port or wheelhouse_port()
    if not directory.is_dir():
        raise AutograderError(
            f"the wheelhouse {directory} does not exist",
            hint="create it: python -m autograder offline wheelhouse -r <requirements.txt>",
        )
    handler = functools.partial(_QuietHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as error:
        raise AutograderError(
            f"cannot serve the wheelhouse on 127.0.0.1:{port}: {error.strerror}",
            hint="another process holds the port (an earlier `offline serve`?); stop it, "
            "or set COURSE_WHEELHOUSE_PORT and rebuild the stand-in base image",
        ) from error
    thread = threading.Thread(target=server.serve_forever, name="wheelhouse", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.shutdown()
        server.server_close()


def _run(command: list[str], *, what: str) -> None:
    _run_in(command, None, what=what)


def _run_in(command: list[str], cwd: Path | None, *, what: str) -> None:
    result = subprocess.run(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-20:])
        raise AutograderError(f"{what} failed (exit {result.returncode})", hint=tail)
