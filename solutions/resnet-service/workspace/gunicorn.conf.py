# Gunicorn's settings for the service: `gunicorn -c gunicorn.conf.py` reads this file at start-up.
# The numbers come from the same environment variables as service/config.py, validated by it.
import math
import glob
import os

from service.config import Settings
from service.metrics import forget_worker, multiprocess_dir

settings = Settings.from_env()  # a bad variable stops the server here, with a clear message


def usable_cores() -> int:
    """The CPUs this container may really use: its CPU quota (docker run --cpus, Kubernetes
    limits) when it has one, else the CPUs it may be scheduled on. os.cpu_count() reports the
    host's cores, which is how services end up with 64 workers fighting over 2 CPUs."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


bind = f"0.0.0.0:{settings.port}"  # every interface of the container: 127.0.0.1 is unreachable from outside
worker_class = "gthread"
# One worker unless WEB_CONCURRENCY says otherwise: one copy of the model in memory per worker.
# With several, /metrics speaks for all of them only in multiprocess mode (on_starting below).
workers = settings.workers
threads = settings.threads  # requests a worker can hold at once (they take turns at the model)
# Inference is CPU-bound: workers x PyTorch threads should not exceed the cores, or they take
# turns on the same cores and every request gets slower. Unless TORCH_NUM_THREADS is set, the
# workers share the usable cores out; they inherit this environment when gunicorn forks them.
os.environ.setdefault("TORCH_NUM_THREADS", str(max(1, usable_cores() // workers)))
timeout = 120  # a worker silent for this long is restarted
# On SIGTERM (docker stop, a Kubernetes rollout) stop accepting, finish what is in flight,
# and exit within this many seconds: less than the 10 s docker stop waits before SIGKILL.
graceful_timeout = 8
worker_tmp_dir = "/dev/shm"  # heartbeat files in memory: the root filesystem may be read-only
control_socket_disable = True  # its socket would go under $HOME, which a read-only image cannot write
accesslog = None  # the service logs each request itself, as JSON


def when_ready(server):
    server.log.info(
        "serving on %s: %d workers x %d threads, %s PyTorch threads each, %d usable cores",
        bind, workers, threads, os.environ["TORCH_NUM_THREADS"], usable_cores(),
    )


def on_starting(server):
    # Prometheus' multiprocess mode: workers write their metrics to files in this folder (a
    # tmpfs), and /metrics adds them up. Files left by an earlier run would be added too: remove
    # them, and only them (the metrics' own *.db files), whatever folder the variable names.
    folder = multiprocess_dir()
    if folder:
        os.makedirs(folder, exist_ok=True)
        for stale in glob.glob(os.path.join(folder, "*.db")):
            os.remove(stale)


def child_exit(server, worker):
    forget_worker(worker.pid)  # a restarted worker's gauges must not linger
