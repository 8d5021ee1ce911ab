"""The OpenAPI description of the receiver's HTTP surface, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_document(callback_path: str) -> dict[str, Any]:
    """OpenAPI 3.0 for the callback path and the operational endpoints."""
    callback = {
        "post": {
            "operationId": "receiveCallback",
            "summary": "A MetaStudio live event callback",
            "parameters": [
                {
                    "name": "hwSecret",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                },
                {"name": "hwTime", "in": "query", "required": False, "schema": {"type": "string"}},
                {
                    "name": "x-hw-mss-secret",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                },
                {
                    "name": "x-hw-mss-time",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["event_type", "message"],
                            "properties": {
                                "event_type": {"type": "string"},
                                "message": {"type": "string", "description": "a JSON document"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "stored durably (or a replay of a stored event)",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status", "id"],
                                "properties": {
                                    "status": {"type": "string", "enum": ["accepted", "duplicate"]},
                                    "id": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "400": _error("not a MetaStudio callback"),
                "401": _error("missing, malformed, wrong or expired signature"),
                "405": _error("method not allowed"),
                "408": _error("the body did not arrive in time"),
                "413": _error("body too large"),
                "415": _error("not JSON"),
                "503": _error("intake full or unavailable; retry later"),
            },
        }
    }
    status = {"200": {"description": "ok"}, "503": {"description": "not ready"}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "MetaStudio callback receiver", "version": "0.1.0"},
        "paths": {
            callback_path: callback,
            "/livez": {
                "get": {"operationId": "livez", "responses": {"200": {"description": "alive"}}}
            },
            "/readyz": {"get": {"operationId": "readyz", "responses": status}},
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "responses": {"200": {"description": "Prometheus text"}},
                }
            },
            "/schemas/": {
                "get": {
                    "operationId": "listSchemas",
                    "summary": "The envelopes' JSON Schemas",
                    "responses": {"200": {"description": "their paths"}},
                }
            },
            "/schemas/{name}": {
                "get": {
                    "operationId": "getSchema",
                    "summary": "One envelope's JSON Schema (2020-12), e.g. envelope.schema.json",
                    "parameters": [
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "the schema",
                            "content": {"application/schema+json": {}},
                        },
                        "404": _error("no such schema"),
                    },
                }
            },
        },
        "components": {"schemas": {"Error": _ERROR}},
    }
