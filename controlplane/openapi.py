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


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("ErrorDetail", ERROR_SCHEMA)
    ref = {"$ref": "#/components/schemas/ErrorDetail"}
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
