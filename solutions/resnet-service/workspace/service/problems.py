"""Every error the service returns is an RFC 9457 problem document (application/problem+json).

One format for all errors means a client needs one code path for failures: read ``status``,
show ``title``, log ``detail``, and quote ``request_id`` when asking for help.
"""

from __future__ import annotations

from http import HTTPStatus

from flask import Response, json

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Our own problem types are URNs: stable identifiers that clients can compare, that promise no web page.
TYPE_PREFIX = "urn:resnet-service:problem:"


class Problem(Exception):
    """Raise it anywhere while answering a request; the application turns it into a response.

    ``kind`` names the problem ("no-image", "too-large", ...): it becomes the ``type`` URN and the
    label of the ``errors_total`` metric. Plain HTTP errors (404, 405) use kind "" and the
    RFC's ``about:blank`` type, whose title is the status phrase.
    """

    def __init__(self, status: int, kind: str, detail: str, *, title: str | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.headers = dict(headers or {})

    @property
    def type(self) -> str:
        return TYPE_PREFIX + self.kind if self.kind else "about:blank"

    @property
    def metric_label(self) -> str:
        """What ``errors_total{type=...}`` counts this problem as."""
        return self.kind or HTTPStatus(self.status).phrase.lower().replace(" ", "-")

    def to_dict(self, *, instance: str, request_id: str) -> dict:
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            "request_id": request_id,
        }

    def to_response(self, *, instance: str, request_id: str) -> Response:
        """The problem as a response: its status, the problem+json media type, its extra headers."""
        body = json.dumps(self.to_dict(instance=instance, request_id=request_id))
        response = Response(body, status=self.status, mimetype=PROBLEM_MEDIA_TYPE)
        response.headers.update(self.headers)
        return response
