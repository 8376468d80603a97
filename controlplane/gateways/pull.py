"""``GET /api/v1/routing/policy``: the pull contract for gateways (the LiteLLM plugin, or anything else).

* Auth: ``Authorization: Bearer <project key with read scope>``.
* 200 with the policy document and ``ETag: "keel-policy-<version>"``; ``If-None-Match`` with the current ETag → 304.
* ``?wait=N`` (≤ 30 s): long-poll. When the caller's ETag is current, the async view re-reads the version every
  0.5 s and answers as soon as it moves (or 304 after N s). It awaits between reads, so no worker thread is held.
"""

from __future__ import annotations

import asyncio
import json

from asgiref.sync import sync_to_async

from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse

from controlplane.apikeys import bearer_token, verify_key
from controlplane.models import Project
from controlplane.models.projects import Scope
from controlplane.routing import policy_document

MAX_WAIT_S = 30.0
POLL_INTERVAL_S = 0.5


def _error(status: int, detail: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="keel"'
    return response


def _project_for(header: str) -> Project | str:
    token = bearer_token(header) if header else None
    if token is None:
        return "Authorization header must be 'Bearer <api key>'."
    key = verify_key(token)
    if key is None:
        return "Invalid or revoked API key."
    if not key.allows(Scope.READ):
        return "forbidden:This API key has no read scope."
    return Project.objects.get(pk=key.project_id)


async def routing_policy(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _error(405, "Method not allowed.")
    try:
        return await _routing_policy(request)
    finally:
        # The reads ran in this request's thread-sensitive executor thread, which ends with the request; close its
        # connection so long-polls never strand persistent (CONN_MAX_AGE) PostgreSQL connections.
        await sync_to_async(_close_idle_connections)()


def _close_idle_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:  # never inside a caller's transaction (e.g. a test's)
            connection.close()


async def _routing_policy(request: HttpRequest) -> HttpResponse:
    resolved = await sync_to_async(_project_for)(request.headers.get("Authorization", ""))
    if isinstance(resolved, str):
        if resolved.startswith("forbidden:"):
            return _error(403, resolved.removeprefix("forbidden:"))
        return _error(401, resolved)
    project = resolved
    try:
        wait = min(max(float(request.GET.get("wait", "0")), 0.0), MAX_WAIT_S)
    except ValueError:
        return _error(400, "wait must be a number of seconds (0-30).")
    seen = request.headers.get("If-None-Match", "")
    version = await sync_to_async(policy_document.current_version)(project.pk)
    if seen and seen == policy_document.etag_for(version) and wait > 0:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while loop.time() < deadline:
            await asyncio.sleep(min(POLL_INTERVAL_S, max(deadline - loop.time(), 0)))
            version = await sync_to_async(policy_document.current_version)(project.pk)
            if seen != policy_document.etag_for(version):
                break
    document = await sync_to_async(policy_document.build)(project)
    etag = policy_document.etag_for(document["version"])
    if seen == etag:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(json.dumps(document), content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    return response
