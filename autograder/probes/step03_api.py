"""Step 03 probe: the learner's Flask applications, served on Unix sockets for the grader.

``serve`` builds each application the grader asks for (explicit settings, and a stand-in
classifier made of the learner's own ``Prediction`` and ``WeightsInfo`` except where the real
model is the point), serves each on ``out/<name>.sock`` with Werkzeug's server, and waits to be
killed. The grader sends the requests from its own process: an answer is what the learner's app
said over the socket, which the code in this process cannot rewrite after the fact.

What only this process can see (the routes Flask knows, what the loader was given, whether
``warm_up`` ran, how often the model was called) is noted in ``out/facts.json``; checks use
those facts only beside what the answers show.
"""

from __future__ import annotations

import importlib
import os
import socket
import threading
import time

from . import harness
from .harness import describe_error, input_path, note

MODULES = ("service.app", "service.problems", "service.metrics", "service.logs", "service.openapi")


class StandInClassifier:
    """Duck-types the learner's Classifier: sorted, normalised predictions, no model."""

    def __init__(self, app: str | None, fail_with: BaseException | None = None, seed: int = 0):
        from service.model import Prediction
        from service.weights import WeightsInfo

        self.Prediction = Prediction
        self.weights = WeightsInfo("random", f"seed={seed}", is_random=True)
        self.app = app
        self.fail_with = fail_with

    def predict(self, image, top_k=5):
        if self.app:
            note(self.app, "predict_calls", add=1)
        if self.fail_with:
            raise self.fail_with
        image.convert("RGB").load()
        return [self.Prediction(class_id=i, label=f"class {i}", probability=0.5 ** (i + 1)) for i in range(top_k)]

    def warm_up(self):
        if self.app:
            note(self.app, "warmed", True)


def settings(env: dict | None = None):
    from service.config import Settings

    return Settings.from_env(env or {})


def import_modules() -> dict:
    errors = {}
    for name in MODULES:
        try:
            importlib.import_module(name)
        except BaseException as error:
            errors[name] = describe_error(error)
    return {"errors": errors}


def _slow_loader(app: str):
    def load(loader_settings):
        note(app, "loader_got_settings", type(loader_settings).__name__)
        deadline = time.monotonic() + 60
        while not harness.released() and time.monotonic() < deadline:
            time.sleep(0.02)
        return StandInClassifier(app)

    return load


def _broken_loader(path: str):
    def load(loader_settings):
        raise FileNotFoundError(f"weights file {path} does not exist")

    return load


def _dependencies(app: str, spec: dict) -> dict:
    """create_app's keyword arguments for the model ``spec`` names."""
    model = spec.get("model", "stand-in")
    if model == "weights":
        from service.model import load_classifier

        return {"classifier": load_classifier(weights_path=input_path(spec["weights"]), num_threads=2)}
    if model == "failing":
        return {"classifier": StandInClassifier(app, fail_with=RuntimeError(spec["message"]))}
    if model == "slow":
        return {"loader": _slow_loader(app)}
    if model == "broken":
        return {"loader": _broken_loader(spec["path"])}
    return {"classifier": StandInClassifier(app)}


def _routes(app) -> list:
    return sorted(
        [rule.rule, method.lower()]
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


def _quiet_handler():
    from werkzeug.serving import WSGIRequestHandler

    class Quiet(WSGIRequestHandler):
        """No access log of the server's own: the log the grader reads is the learner's."""

        def log(self, type, message, *args):  # noqa: A002 - Werkzeug's signature
            pass

    return Quiet


def _listen(make_server, path, app):
    """A threaded server of ``app`` on the Unix socket ``path``. The socket is bound here, from
    its folder, since a socket address holds 107 bytes and an unsandboxed grading's scratch
    folder can be deeper than that."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        listener.bind(path.name)
    finally:
        os.chdir(here)
    listener.listen(64)
    return make_server(f"unix://{path}", 0, app, threaded=True, request_handler=_quiet_handler(), fd=listener.fileno())


def serve(apps: dict[str, dict]) -> None:
    """Serve each app of ``apps`` (name -> {"env", "model", "before"...}) until killed.

    ``before`` builds that many other apps first (two apps in one process must not share
    metrics or double log lines)."""
    from service.app import create_app
    from werkzeug.serving import make_server

    servers = []
    for name, spec in apps.items():
        env = spec.get("env") or {}
        for _ in range(spec.get("before", 0)):
            create_app(settings(env), classifier=StandInClassifier(None))
        app = create_app(settings(env), **_dependencies(name, spec))
        note(name, "routes", _routes(app))
        servers.append(_listen(make_server, harness.ROOT / "out" / f"{name}.sock", app))
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    harness.serving()
