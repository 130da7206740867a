"""The OpenAPI 3.1 document of the service, served at /openapi.json.

Clients generate code from it and humans read it in Swagger UI, so it must say what the service
really does: a test sends real requests and validates every answer against this document.
"""

from __future__ import annotations

from service import __version__
from service.config import Settings

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def problem_responses(*statuses: int) -> dict:
    descriptions = {
        400: "No image was sent, or top_k is invalid",
        404: "No such path",
        405: "Method not allowed on this path",
        413: "The upload is larger than the limit",
        415: "The body is not an image",
        422: "The image cannot be decoded, is truncated, or has too many pixels",
        500: "The service failed; the request id finds the details in its logs",
        503: "The model is not loaded (yet)",
    }
    return {
        str(status): {"description": descriptions[status], "content": {"application/problem+json": {"schema": PROBLEM}}}
        for status in statuses
    }


def json_response(description: str, schema_name: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
    }


def predict_response_schema(settings: Settings, model_fields: dict) -> dict:
    """The JSON schema of a 200 answer of POST /predict."""
    return {
        "type": "object",
        "required": ["model", "weights_source", "random_weights", "predictions", "top_k", "inference_ms"],
        "properties": {
            **model_fields,
            "predictions": {
                "type": "array",
                "description": "The top_k most probable classes, most probable first",
                "minItems": 1,
                "maxItems": settings.top_k_max,
                "items": {"$ref": "#/components/schemas/Prediction"},
            },
            "top_k": {"type": "integer", "minimum": 1, "maximum": settings.top_k_max},
            "inference_ms": {"type": "number", "minimum": 0},
            "request_id": {"type": "string"},
        },
    }


def predict_operation(settings: Settings) -> dict:
    """POST /predict: its top_k parameter, its request bodies and every response it can give."""
    return {
        "summary": "Classify an image",
        "description": f"Send the image as multipart field 'file' or as the raw body (image/* or "
        f"application/octet-stream), at most {settings.max_upload_bytes} bytes.",
        "parameters": [
            {
                "name": "top_k",
                "in": "query",
                "required": False,
                "description": "How many classes to return",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": settings.top_k_max,
                    "default": settings.top_k_default,
                },
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "contentMediaType": "application/octet-stream"}},
                    }
                },
                "image/*": {"schema": {"type": "string", "contentMediaType": "image/*"}},
                "application/octet-stream": {"schema": {"type": "string"}},
            },
        },
        "responses": {
            "200": json_response("The top_k classes", "PredictResponse"),
            **problem_responses(400, 413, 415, 422, 500, 503),
        },
    }


def openapi_document(settings: Settings) -> dict:
    """The document, with the limits of these ``settings`` (upload size, top_k bounds)."""
    model_fields = {
        "model": {"type": "string", "const": "resnet50"},
        "weights_source": {"type": ["string", "null"], "enum": ["file", "torchvision-cache", "random", None]},
        "random_weights": {"type": ["boolean", "null"]},
    }
    schemas = {
        "Problem": {
            "type": "object",
            "description": "An RFC 9457 problem document",
            "required": ["type", "title", "status", "detail", "instance", "request_id"],
            "properties": {
                "type": {"type": "string", "format": "uri"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "request_id": {"type": "string"},
            },
        },
        "Info": {
            "type": "object",
            "required": ["service", "version", "ready", "model", "endpoints"],
            "properties": {
                "service": {"type": "string"},
                "version": {"type": "string"},
                "ready": {"type": "boolean"},
                **model_fields,
                "endpoints": {"type": "array", "items": {"type": "string"}},
                "openapi": {"type": "string"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "Ready": {
            "type": "object",
            "required": ["ready", "model", "weights_source", "random_weights"],
            "properties": {"ready": {"const": True}, **model_fields},
        },
        "Prediction": {
            "type": "object",
            "required": ["class_id", "label", "probability"],
            "additionalProperties": False,
            "properties": {
                "class_id": {"type": "integer", "minimum": 0, "maximum": 999},
                "label": {"type": "string"},
                "probability": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
        "PredictResponse": predict_response_schema(settings, model_fields),
    }
    paths = {
        "/": {
            "get": {
                "summary": "Service and model information",
                "responses": {"200": json_response("Information", "Info")},
            }
        },
        "/health": {
            "get": {
                "summary": "Liveness: the process answers (never touches the model)",
                "responses": {"200": json_response("Alive", "Health"), **problem_responses(503)},
            }
        },
        "/ready": {
            "get": {
                "summary": "Readiness: 200 once the model is loaded and warmed up",
                "responses": {"200": json_response("Ready", "Ready"), **problem_responses(503)},
            }
        },
        "/predict": {"post": predict_operation(settings)},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ResNet50 image classification service",
            "version": __version__,
            "description": "Every error is an RFC 9457 problem document (application/problem+json).",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
