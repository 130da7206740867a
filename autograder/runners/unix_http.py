"""A bounded HTTP client over a Unix socket: how the grader talks to an app served in the sandbox.

Each request is a new connection with a socket timeout; the answer is read up to a size limit
and returned as plain facts (status, media type, headers, parsed JSON, text). The sandbox's
deadline bounds the whole conversation: when it kills the server, every request fails at once.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from autograder import interrupts

RESPONSE_LIMIT = 2 * 1024**2
TEXT_LIMIT = 4000
CHUNK = 64 * 1024


class ResponseTooLarge(ValueError):
    pass


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        if not hasattr(os, "O_PATH"):  # macOS (unsandboxed there anyway): no O_PATH, no /proc
            if not stat.S_ISSOCK(os.lstat(self._path).st_mode):
                raise ConnectionRefusedError(f"{self._path.name} is not a socket")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self._path))
            except OSError:
                sock.close()
                raise
            self.sock = sock
            return
        # The socket file is the sandbox's to replace: open it without following a link and
        # connect through that descriptor, so a link put there (to the Docker daemon's socket,
        # say) is refused, not followed, and nothing can be swapped in between. The descriptor's
        # path is short, whatever the folder's depth (sun_path holds 107 bytes).
        handle = os.open(self._path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if not stat.S_ISSOCK(os.fstat(handle).st_mode):
                raise ConnectionRefusedError(f"{self._path.name} is not a socket")
            sock.settimeout(self.timeout)
            sock.connect(f"/proc/self/fd/{handle}")
        except OSError:
            sock.close()
            raise
        finally:
            os.close(handle)
        self.sock = sock


def answer(status: int, headers: list[tuple[str, str]], body: bytes, text_limit: int | None = TEXT_LIMIT) -> dict:
    """The facts of one answer, as the checks read them (the text cut at ``text_limit``)."""
    lowered = {name.lower(): value for name, value in headers}
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # deep nesting is the sender's problem, not the grader's
        parsed = None
    return {
        "status": status,
        "mimetype": lowered.get("content-type", "").split(";")[0].strip().lower(),
        "headers": lowered,
        "json": parsed,
        "text": body.decode("utf-8", "replace")[:text_limit],
    }


class Client:
    """Requests to the app listening on the Unix socket ``path``."""

    def __init__(self, path: Path, *, timeout: float = 30.0, limit: int = RESPONSE_LIMIT):
        self.path, self.timeout, self.limit = path, timeout, limit

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        *,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        chunked: bool = False,
        text_limit: int | None = TEXT_LIMIT,
    ) -> dict:
        """The answer's facts; ``text_limit=None`` keeps the whole text (up to the size limit)."""
        interrupts.raise_if_interrupted()
        sent = dict(headers or {})
        if content_type:
            sent["Content-Type"] = content_type
        connection = _UnixConnection(self.path, self.timeout)
        try:
            try:
                if chunked:
                    sent["Transfer-Encoding"] = "chunked"
                    connection.request(method, target, body=_chunks(body or b""), headers=sent, encode_chunked=True)
                else:
                    connection.request(method, target, body=body, headers=sent)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the app answered (a 413, say) before reading the whole body: read that answer
            response = connection.getresponse()
            data = response.read(self.limit + 1)
            if len(data) > self.limit:
                raise ResponseTooLarge(f"the answer to {method} {target[:80]} was over {self.limit // 1024**2} MB")
            return answer(response.status, response.getheaders(), data, text_limit)
        finally:
            connection.close()

    def get(self, target: str, **kwargs) -> dict:
        return self.request("GET", target, **kwargs)

    def post(self, target: str, body: bytes | None = None, **kwargs) -> dict:
        return self.request("POST", target, body, **kwargs)

    def delete(self, target: str, **kwargs) -> dict:
        return self.request("DELETE", target, **kwargs)


def _chunks(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]
