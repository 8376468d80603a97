"""The LiteLLM plugin's decisions, and that the shipped copy in deploy/litellm is the same file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controlplane.gateways import litellm_plugin as plugin

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = [
    {"model_name": "chat-default", "litellm_params": {"model": "openai/a"}, "model_info": {"id": "v1"}},
    {"model_name": "chat-default", "litellm_params": {"model": "openai/b"}, "model_info": {"id": "v2"}},
    {"model_name": "chat-default", "litellm_params": {"model": "openai/c"}, "model_info": {"id": "v3"}},
]
DOC = {"version": 4, "routes": [
    {"route": "chat-default", "environment": "", "revision": 3, "weights": {"v1": 90, "v2": 10}, "paused": []},
    {"route": "chat-default", "environment": "staging", "revision": 1, "weights": {"v3": 100}, "paused": []},
]}


def test_deploy_file_is_the_shipped_plugin() -> None:
    """deploy/litellm/keel_litellm.py is a link to the plugin module, so the two can never drift apart."""
    assert (ROOT / "deploy/litellm/keel_litellm.py").resolve() == Path(plugin.__file__).resolve()


def test_weights_and_exclusion() -> None:
    kept = plugin.apply_policy(plugin.route_policy(DOC, "chat-default", None), DEPLOYMENTS)
    assert [(d["model_info"]["id"], d["litellm_params"]["weight"]) for d in kept] == [("v1", 90.0), ("v2", 10.0)]
    assert "weight" not in DEPLOYMENTS[0]["litellm_params"]  # copies, LiteLLM's own list is untouched
    staging = plugin.apply_policy(plugin.route_policy(DOC, "chat-default", "staging"), DEPLOYMENTS)
    assert [d["model_info"]["id"] for d in staging] == ["v3"]
    assert plugin.apply_policy(plugin.route_policy(DOC, "other-group", None), DEPLOYMENTS) == DEPLOYMENTS


def test_policy_leaving_nothing_fails_open_or_closed() -> None:
    policy = {"route": "chat-default", "weights": {"gone": 100}, "paused": []}
    assert plugin.apply_policy(policy, DEPLOYMENTS, fail_open=True) == DEPLOYMENTS
    assert plugin.apply_policy(policy, DEPLOYMENTS, fail_open=False) == []
    paused = {"route": "chat-default", "weights": {"v1": 100}, "paused": ["v1"]}
    assert plugin.apply_policy(paused, DEPLOYMENTS, fail_open=False) == []


@pytest.mark.parametrize(("mode", "expected"), [("open", 3), ("closed", 0)])
def test_unreachable_keel(monkeypatch, mode, expected) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KEEL_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("KEEL_API_KEY", "keel_x_y")
    monkeypatch.setenv("KEEL_FAIL_MODE", mode)
    router = plugin.KeelRouter()
    try:
        assert router.cache is not None and router.cache.last_error
        kept = asyncio.run(router.async_filter_deployments("chat-default", DEPLOYMENTS, None))
        assert len(kept) == expected
    finally:
        router.cache.stop()


def test_rejects_non_http_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        plugin.PolicyCache("file:///etc/passwd", "k")
