"""OpenAPI post-processing: every operation documents the error answers Keel can give, as ``{"detail": …}``.

drf-spectacular documents success bodies from serializers; the error statuses come from authentication,
permissions, throttling, validation and lookups that every view shares, so they are added here once.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"description": "A message, or an object naming each invalid field."}},
    "required": ["detail"],
}

_DESCRIPTIONS = {
    "400": "Invalid input; `detail` names each invalid field.",
    "401": "Missing or invalid API key / session.",
    "403": "The key or user may not do this in this project.",
    "404": "No such object in this project.",
    "409": "Conflict with the current state (e.g. a stale revision number).",
    "415": "The request body's content type is not accepted (send JSON).",
    "429": "Rate limit exceeded; retry after the `Retry-After` header.",
}


# The gateway pull endpoint is a plain async Django view (so a 30 s long-poll holds no worker thread); DRF cannot
# describe it, so its contract is written out here.
POLICY_PATH = {
    "get": {
        "operationId": "routing_policy_retrieve",
        "summary": "Active routing policy of every route (the gateway pull contract)",
        "description": "ETag/If-None-Match → 304; `wait` long-polls until the version changes.",
        "tags": ["routing"],
        "security": [{"ApiKey": []}],
        "parameters": [
            {"name": "wait", "in": "query", "required": False,
             "schema": {"type": "number", "minimum": 0, "maximum": 30},
             "description": "Seconds to wait for a newer version when If-None-Match is current."},
            {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {
                "description": "The policy document.",
                "headers": {"ETag": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["version", "routes"],
                    "properties": {
                        "schema": {"type": "string"},
                        "project": {"type": "string"},
                        "version": {"type": "integer"},
                        "routes": {"type": "array", "items": {"type": "object"}},
                    },
                }}},
            },
            "304": {"description": "Not modified (the caller's ETag is current)."},
        },
    }
}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("ErrorDetail", ERROR_SCHEMA)
    ref = {"$ref": "#/components/schemas/ErrorDetail"}
    result.setdefault("paths", {}).setdefault("/api/v1/routing/policy", POLICY_PATH)
    for methods in result.get("paths", {}).values():
        for method, operation in methods.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            wanted = ["400", "401", "403", "404", "429"]
            if method in {"post", "put", "patch", "delete"}:
                wanted += ["409", "415"]
            for code in wanted:
                responses.setdefault(code, {
                    "description": _DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": ref}},
                })
    return result
