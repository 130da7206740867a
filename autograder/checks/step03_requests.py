"""What the grader asks the learner's Flask apps in step 03, from its own process.

Each conversation names the apps the probe ``step03_api:serve`` is to build (their settings and
model) and a drive function that sends them requests over their Unix sockets and returns the
answers as plain facts, in the shape the checks of ``step03_api`` judge. The answers come from
outside the learner's process, so code in it cannot rewrite them; the few facts only that
process can see (routes, what the loader was given) are read beside them, never alone.
"""

from __future__ import annotations

import json
import mimetypes
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from autograder.checks.context import HttpClient, Served
from autograder.checks.samples import encode

PROBE = "step03_api:serve"
WAIT_SECONDS = 30.0


@dataclass
class Conversation:
    apps: dict[str, dict]
    drive: Callable[[Served], dict]
    extra: dict = field(default_factory=dict)  # more arguments of the serve probe

    @property
    def arguments(self) -> dict:
        return {"apps": self.apps, **self.extra}


def image_bytes(mode: str = "RGB", size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> bytes:
    from PIL import Image

    return encode(Image.new(mode, size, color=None if mode == "1" else 128), fmt)


def multipart(fields: dict[str, tuple[bytes, str | None]]) -> tuple[bytes, str]:
    """A multipart/form-data body (field -> (content, filename or None)) and its content type;
    a file's part type is guessed from its name, as browsers and Flask's test client do."""
    boundary = secrets.token_hex(16)
    body = b""
    for name, (content, filename) in fields.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if filename:
            head += f"Content-Type: {mimetypes.guess_type(filename)[0] or 'application/octet-stream'}\r\n"
        body += head.encode() + b"\r\n" + content + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_file(client: HttpClient, target: str, content: bytes, filename: str) -> dict:
    body, content_type = multipart({"file": (content, filename)})
    return client.post(target, body, content_type=content_type)


def wait_for(client: HttpClient, target: str, done: Callable[[dict], bool], seconds: float = WAIT_SECONDS) -> dict:
    """GET ``target`` until ``done(answer)`` holds; the last answer (the state it waits for is
    the app's, so this waits on it, not on a duration)."""
    deadline = time.monotonic() + seconds
    while True:
        answer = client.get(target)
        if done(answer) or time.monotonic() >= deadline:
            return answer
        time.sleep(0.05)


def factory_and_readiness(failure_path: str) -> Conversation:
    apps = {"slow": {"model": "slow"}, "broken": {"model": "broken", "path": failure_path}}

    def drive(served: Served) -> dict:
        slow, broken = served.client("slow"), served.client("broken")
        facts = {
            "health_while_loading": slow.get("/health"),
            "ready_while_loading": slow.get("/ready"),
            "predict_while_loading": slow.post("/predict", image_bytes(), content_type="image/png"),
        }
        served.release()
        facts["became_ready"] = wait_for(slow, "/ready", lambda a: a["status"] == 200)["status"] == 200
        inside = served.app_facts("slow")
        facts["warmed_before_ready"] = bool(inside.get("warmed"))
        facts["loader_got_settings"] = inside.get("loader_got_settings")
        facts["ready_after"] = slow.get("/ready")
        facts["ready_after_failure"] = wait_for(broken, "/ready", lambda a: failure_path in json.dumps(a["json"]))
        return facts

    return Conversation(apps, drive)


# create_app() with settings from a bad environment, run as a command: its exit status and stderr
# are seen from outside. It ends the process as soon as create_app() returns (no model load).
BAD_ENVIRONMENT_SCRIPT = """
import os, sys
from service.app import create_app
try:
    create_app()
except Exception as error:
    print(f"raised {type(error).__name__}: {error}", file=sys.stderr, flush=True)
    os._exit(3)
print("started", flush=True)
os._exit(0)
"""


def root_and_health(health_calls: int) -> Conversation:
    def drive(served: Served) -> dict:
        client = served.client("app")
        facts = {"root": client.get("/"), "health": [client.get("/health") for _ in range(health_calls)]}
        facts["predict_calls"] = served.app_facts("app").get("predict_calls", 0)
        return facts

    return Conversation({"app": {}}, drive)


def predict_contract(
    weights: str, uploads: dict[str, dict], files: dict[str, bytes], env: dict, refused: dict[str, str]
) -> Conversation:
    """The real model, loaded from the grader's weights file (an input of the probe), answering
    each upload (``files`` holds their bytes)."""

    def drive(served: Served) -> dict:
        client = served.client("app", timeout=60)
        facts = {}
        for name, upload in uploads.items():
            data = files[upload["file"]]
            query = f"?top_k={upload['top_k']}" if upload.get("top_k") is not None else ""
            if upload["kind"] == "multipart":
                facts[name] = post_file(client, "/predict" + query, data, upload["filename"])
            else:
                facts[name] = client.post("/predict" + query, data, content_type=upload["content_type"])
        for name, top_k in refused.items():
            facts[name] = client.post(f"/predict?top_k={top_k}", image_bytes(), content_type="image/png")
        return facts

    return Conversation({"app": {"env": env, "model": "weights", "weights": weights}}, drive)


def errors_are_problems(unknown_path: str) -> Conversation:
    def drive(served: Served) -> dict:
        client = served.client("app")
        other, multipart_type = multipart({"other": (b"x", None)})
        return {
            "no file (empty multipart)": client.post("/predict", other, content_type=multipart_type),
            "no body": client.post("/predict"),
            "unknown path": client.get(unknown_path),
            "GET /predict": client.get("/predict"),
            "DELETE /health": client.delete("/health"),
        }

    return Conversation({"app": {}}, drive)


def no_traceback_on_500(secret: str) -> Conversation:
    def drive(served: Served) -> dict:
        client = served.client("app")
        failed = client.post("/predict", image_bytes(), content_type="image/png")
        return {"failed": failed, "health_after": client.get("/health")}

    return Conversation({"app": {"model": "failing", "message": secret}}, drive)


def upload_limits(limit: int, large_side: int) -> Conversation:
    def drive(served: Served) -> dict:
        client = served.client("app")
        large = image_bytes(size=(large_side, large_side), fmt="BMP")
        return {
            "small raw": client.post("/predict", image_bytes(size=(16, 12)), content_type="image/png"),
            "large raw": client.post("/predict", large, content_type="image/bmp"),
            "large multipart": post_file(client, "/predict", large, "big.bmp"),
            # Chunked: no Content-Length, so only the bytes read can tell the app it is too large.
            "large chunked": client.post("/predict", large, content_type="image/bmp", chunked=True),
            "large_size": len(large),
        }

    return Conversation({"app": {"env": {"MAX_UPLOAD_BYTES": str(limit)}}}, drive)


def bad_images(text: str, side: int, bomb_side: int) -> Conversation:
    def drive(served: Served) -> dict:
        client = served.client("app")
        jpeg = image_bytes(size=(side, side), fmt="JPEG")
        bomb = image_bytes("1", size=(bomb_side, bomb_side))  # many megapixels in a few kilobytes

        def post(data: bytes, kind: str = "image/png") -> dict:
            return client.post("/predict", data, content_type=kind)

        return {
            "text/plain body": post(text.encode(), "text/plain"),
            "JSON body": post(json.dumps({"image": text}).encode(), "application/json"),
            "random bytes as image/png": post(bytes(range(256)) * 4),
            "a text file as multipart": post_file(client, "/predict", text.encode(), "notes.txt"),
            "truncated JPEG": post(jpeg[: len(jpeg) // 2], "image/jpeg"),
            "decompression bomb PNG": post(bomb),
            "a good image afterwards": post(image_bytes()),
        }

    return Conversation({"app": {}}, drive)


def _scrape(client: HttpClient) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    answer = client.get("/metrics", text_limit=None)
    samples = []
    try:
        for family in text_string_to_metric_families(answer["text"]):
            samples += [[s.name, dict(s.labels), s.value] for s in family.samples]
    except Exception as error:  # noqa: BLE001 - the learner's exposition, whatever is wrong with it
        return {"status": answer["status"], "mimetype": answer["mimetype"], "samples": [], "error": str(error)}
    return {"status": answer["status"], "mimetype": answer["mimetype"], "samples": samples}


def metrics(scanner_path: str, predictions: int) -> Conversation:
    def drive(served: Served) -> dict:
        client = served.client("app")
        before = _scrape(client)
        for _ in range(predictions):
            client.post("/predict", image_bytes(), content_type="image/png")
        client.get(scanner_path)
        client.post("/predict", b"nope", content_type="text/plain")
        return {"before": before, "after": _scrape(client)}

    # Another app built first in the same process: the two must not share a registry.
    return Conversation({"app": {"before": 1}}, drive)


def json_logs(safe_id: str, unsafe_id: str, missing_path: str) -> Conversation:
    def drive(served: Served) -> dict:
        client = served.client("app")
        answers = [
            client.get("/health", headers={"X-Request-ID": safe_id}),
            client.post("/predict", image_bytes(), content_type="image/png"),
            client.get(missing_path, headers={"X-Request-ID": unsafe_id}),
        ]
        return {"ids": [a["headers"].get("x-request-id") for a in answers]}

    # A second app in the same process must not double the lines.
    return Conversation({"app": {"env": {"LOG_LEVEL": "INFO"}, "before": 1}}, drive)


def openapi_matches(top_k_max: int, top_k: int) -> Conversation:
    def drive(served: Served) -> dict:
        client = served.client("app")
        png_header_only = b"\x89PNG\r\n\x1a\n" + b"0" * 40
        calls = [
            ["/", "get", client.get("/")],
            ["/health", "get", client.get("/health")],
            ["/ready", "get", client.get("/ready")],
            ["/metrics", "get", client.get("/metrics")],
            ["/predict", "post", client.post(f"/predict?top_k={top_k}", image_bytes(), content_type="image/png")],
            ["/predict", "post", client.post("/predict")],
            ["/predict", "post", client.post("/predict", b"x", content_type="text/plain")],
            ["/predict", "post", client.post("/predict", png_header_only, content_type="image/png")],
        ]
        routes = served.app_facts("app").get("routes") or []
        return {"routes": routes, "calls": calls, "document": client.get("/openapi.json")}

    return Conversation({"app": {"env": {"TOP_K_MAX": str(top_k_max)}}}, drive)
