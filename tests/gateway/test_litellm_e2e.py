"""A real LiteLLM proxy obeys Keel: reroute to v2, roll back to v1, and its OTel spans land in Keel as calls.

Runs offline: two fake OpenAI-compatible upstreams, LiteLLM (``litellm[proxy]`` from the dev extra) with the Keel
plugin from ``deploy/litellm``, and Keel itself served by uvicorn in this process (sharing chDB and the test DB).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import requests

from tests.conftest import REQUIRE_SERVICES
from tests.gateway import harness
from tests.gateway.fake_openai import fake_openai

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

if harness.litellm_executable() is None:  # pragma: no cover - the dev extra installs it
    if REQUIRE_SERVICES:
        pytest.fail("litellm[proxy] is not installed and KEEL_REQUIRE_SERVICES=1: pip install -e '.[dev]'",
                    pytrace=False)
    pytest.skip("litellm[proxy] is not installed; pip install -e '.[dev]'", allow_module_level=True)

SWITCH_WITHIN_S = 5.0


@pytest.fixture
def keel(transactional_db):  # type: ignore[no-untyped-def]
    with harness.keel_server() as url:  # controlplane.asgi.application with Keel's real URLconf
        yield url


def test_litellm_follows_keel_and_reports_back(keel, project, tmp_path, ch) -> None:  # type: ignore[no-untyped-def]
    from controlplane.apikeys import issue_key

    read_key = issue_key(project, ["read"], name="litellm plugin").secret
    ingest_key = issue_key(project, ["ingest"], name="litellm otel").secret
    admin = {"Authorization": f"Bearer {issue_key(project, ['admin'], name='operator').secret}"}

    created = requests.post(f"{keel}/api/v1/routes", json={"name": "chat-default"}, headers=admin, timeout=10)
    assert created.status_code == 201, created.text
    route_id = created.json()["id"]
    for deployment_id in ("chat-default-v1", "chat-default-v2"):
        r = requests.post(f"{keel}/api/v1/routes/{route_id}/deployments", json={"gateway_id": deployment_id},
                          headers=admin, timeout=10)
        assert r.status_code == 201, r.text

    with fake_openai("model-v1") as v1, fake_openai("model-v2") as v2, harness.litellm_proxy(
        tmp_path, {"chat-default-v1": v1.url, "chat-default-v2": v2.url},
        keel_url=keel, read_key=read_key, ingest_key=ingest_key,
    ) as proxy:
        served: Counter[str] = Counter()

        def burst(n: int) -> list[str]:
            ids = [proxy.served_by() for _ in range(n)]
            served.update(ids)
            return ids

        assert burst(6) == ["chat-default-v1"] * 6  # revision 1: everything to v1
        assert v2.hits == 0

        current = requests.get(f"{keel}/api/v1/routes/{route_id}", headers=admin, timeout=10).json()
        reroute = requests.post(f"{keel}/api/v1/routes/{route_id}/reroute", headers=admin, timeout=10, json={
            "weights": {"chat-default-v2": 100}, "reason": "e2e: move to v2", "expected_version": current["version"]})
        assert reroute.status_code == 201, reroute.text
        switch_s, during = harness.wait_until_served_by(proxy, "chat-default-v2", SWITCH_WITHIN_S)
        served.update(during)
        assert burst(6) == ["chat-default-v2"] * 6

        rollback = requests.post(f"{keel}/api/v1/routes/{route_id}/rollback", headers=admin, timeout=10,
                                 json={"reason": "e2e: back to v1"})
        assert rollback.status_code == 201, rollback.text
        assert rollback.json()["after_revision"] == 1
        back_s, during = harness.wait_until_served_by(proxy, "chat-default-v1", SWITCH_WITHIN_S)
        served.update(during)
        assert burst(6) == ["chat-default-v1"] * 6
        print(f"switch to v2 {switch_s:.2f} s, rollback {back_s:.2f} s")

        # Let LiteLLM's batch span processor flush (schedule delay set to 0.5 s by the harness) before it stops.
        total = sum(served.values())
        deadline = time.monotonic() + 45
        rows: list[tuple] = []
        while time.monotonic() < deadline:
            rows = ch.query(
                "SELECT Route, GatewayDeploymentId, TotalCost, CostSource, InputTokens, OutputTokens "
                "FROM llm_calls FINAL WHERE ProjectId = {tenant:String}", parameters={"tenant": project.tenant_id},
            ).result_rows
            if len(rows) >= total:
                break
            time.sleep(1)

    time.sleep(2)  # anything still in flight would show up as a second call per request
    rows = ch.query(
        "SELECT Route, GatewayDeploymentId, TotalCost, CostSource, InputTokens, OutputTokens "
        "FROM llm_calls FINAL WHERE ProjectId = {tenant:String}", parameters={"tenant": project.tenant_id},
    ).result_rows
    assert len(rows) == total, f"expected one call per request ({total}), got {len(rows)}"
    assert {r[0] for r in rows} == {"chat-default"}  # route = the LiteLLM model group
    assert Counter(r[1] for r in rows) == served  # the deployment that answered each request
    assert all(r[3] == "client" and r[2] == pytest.approx(10 * 1e-6 + 7 * 2e-6) for r in rows)  # gen_ai.cost.total_cost
    assert all((r[4], r[5]) == (10, 7) for r in rows)
