"""Push adapter for LiteLLM's admin API, for installations that keep models in LiteLLM's database.

Weights go through ``POST /model/update`` (``litellm_params.weight``), paused deployments through
``POST /model/block`` / ``POST /model/unblock``. Config-file deployments are read-only there (LiteLLM answers 400)
and a proxy without a database answers 500: both are failures, so the action fails and nothing is activated.
LiteLLM has no version history, so a rollback re-sends the recorded weights of the older revision.
"""

from __future__ import annotations

from typing import Any

import requests

from controlplane.models import GatewayAdapter, Route, RouteRevision


def _post(session: requests.Session, adapter: GatewayAdapter, path: str, body: dict[str, Any]) -> dict[str, Any]:
    url = adapter.url.rstrip("/") + path
    try:
        response = session.post(url, json=body, timeout=adapter.timeout_s,
                                headers={"Authorization": f"Bearer {adapter.secret}"})
        return {"method": "POST", "url": url, "body": body, "status": response.status_code,
                "response": response.text[:2000]}
    except requests.RequestException as exc:
        return {"method": "POST", "url": url, "body": body, "status": None, "response": str(exc)[:2000]}


def plan(revision: RouteRevision, previous: RouteRevision | None) -> list[tuple[str, dict[str, Any]]]:
    """The admin-API calls that turn ``previous`` into ``revision``."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for gateway_id, weight in sorted(revision.weights.items()):
        calls.append(("/model/update", {"model_info": {"id": gateway_id}, "litellm_params": {"weight": weight}}))
    was_paused = set(previous.paused) if previous else set()
    for gateway_id in sorted(set(revision.paused) - was_paused):
        calls.append(("/model/block", {"model_id": gateway_id}))
    for gateway_id in sorted(was_paused - set(revision.paused)):
        calls.append(("/model/unblock", {"model_id": gateway_id}))
    return calls


def push(adapter: GatewayAdapter, route: Route, revision: RouteRevision, previous: RouteRevision | None) -> Any:
    from controlplane.gateways.push import PushResult

    result = PushResult(adapter=adapter, ok=True)
    with requests.Session() as session:
        for path, body in plan(revision, previous):
            call = _post(session, adapter, path, body)
            result.calls.append(call)
            if call["status"] is None or not 200 <= call["status"] < 300:
                result.ok = False
                result.error = f"{path} → {call['status']}: {call['response'][:300]}"
                break  # stop at the first failure; Keel keeps the previous revision active
    return result
