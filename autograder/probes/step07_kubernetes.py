"""Step 07 probes: what gunicorn makes of the learner's gunicorn.conf.py in a deployment's environment."""

from __future__ import annotations

import os

from .harness import workspace

REPORTED = ("bind", "workers", "threads", "timeout", "graceful_timeout", "worker_class_str")


def gunicorn_settings(environ: dict[str, str]) -> dict:
    """gunicorn's settings after it reads gunicorn.conf.py (as ``gunicorn -c`` would) with
    ``environ`` set: never the application, which ``--print-config`` would import and load."""
    from gunicorn.app.base import Application

    os.environ.update(environ)
    path = os.path.join(workspace(), "gunicorn.conf.py")
    os.chdir(workspace())

    class ConfigOnly(Application):
        def load_config(self) -> None:  # gunicorn's own reading of a -c file, without the command line
            self.load_config_from_file(path)

        def load(self):  # pragma: no cover - never called: nothing is served
            raise RuntimeError("not served")

    config = ConfigOnly().cfg
    return {name: repr(getattr(config, name)) if name == "bind" else getattr(config, name) for name in REPORTED}
