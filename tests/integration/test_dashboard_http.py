"""The dashboard over real HTTP against a real platform: searches with SQL metacharacters
are parameters, a goal's page shows its timeline, and a dashboard that needs a token answers
401 without one."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx

from infra.clients.goals import AgoraClient
from infra.dashboard.app import Dashboard, build_app
from infra.dashboard.auth import ACTION_HEADER, Access
from infra.dashboard.live import GoalsHub
from infra.dashboard.server import serving_on_a_free_port
from infra.settings import Settings
from tests.conftest import InProcessPlatform

TOKEN = "dashboard-test-token-0123456789"
HOSTILE = "it's 100%_done'; DROP TABLE goals; --"


@contextlib.asynccontextmanager
async def _dashboard(
    client: AgoraClient, settings: Settings, token: str | None
) -> AsyncIterator[str]:
    hub = GoalsHub(client.nc)
    await hub.start()

    async def no_operator() -> object:
        raise AssertionError("not needed here")

    dashboard = Dashboard(client=client, hub=hub, operator=no_operator)  # type: ignore[arg-type]
    try:
        async with serving_on_a_free_port(
            build_app(dashboard, Access(token)), data_dir=settings.data_dir
        ) as base:
            yield base
    finally:
        await hub.stop()


async def test_search_is_a_parameter_and_pages_render(
    client: AgoraClient, platform: InProcessPlatform, settings: Settings
) -> None:
    hostile = await client.submit(
        {"text": HOSTILE, "steps": [{"tool": "echo", "args": {"text": "x"}}]}
    )
    plain = await client.submit(
        {"text": "plain 1000 done", "steps": [{"tool": "echo", "args": {"text": "y"}}]}
    )
    first = await client.wait(hostile.goal_id, 30)
    second = await client.wait(plain.goal_id, 30)
    await client.query("SELECT 1", min_seq=max(first.last_seq, second.last_seq), timeout_s=10)
    async with _dashboard(client, settings, None) as base, httpx.AsyncClient(base_url=base) as http:
        found = (await http.get("/api/goals", params={"q": "100%_done';"})).json()
        assert [g["goal_id"] for g in found["goals"]] == [hostile.goal_id]
        # % and _ are the characters themselves, not LIKE wildcards.
        assert (await http.get("/api/goals", params={"q": "1%0"})).json()["goals"] == []
        everything = (await http.get("/api/goals")).json()["goals"]
        assert {g["goal_id"] for g in everything} == {hostile.goal_id, plain.goal_id}
        page = await http.get("/goals", params={"q": HOSTILE}, headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "DROP TABLE goals; --" in page.text
        assert "<script>" not in page.text
        assert (await http.get("/api/goals", params={"q": "x" * 201})).status_code == 400
        assert (await http.get("/api/goals", params={"status": "'; --"})).status_code == 400
        assert (await http.get("/api/goals", params={"after": "nope|x"})).status_code == 400
        one = await http.get(f"/goals/{hostile.goal_id}")
        assert one.status_code == 200
        assert 'class="gantt"' in one.text
        assert 'class="dag"' in one.text
        assert (await http.get("/goals/not.a.goal")).status_code == 404
        assert (await http.get("/analytics")).status_code == 200
        assert (await http.get("/dlq")).status_code == 200


async def test_a_dashboard_with_a_token_refuses_requests_without_it(
    client: AgoraClient, nats_server: object, settings: Settings
) -> None:
    async with (
        _dashboard(client, settings, TOKEN) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        assert (await http.get("/api/goals")).status_code == 401
        assert (await http.get("/goals/stream")).status_code == 401
        page = await http.get("/goals", headers={"Accept": "text/html"})
        assert page.status_code == 401
        assert "name=token" in page.text
        wrong = await http.post("/login", data={"token": "wrong-token-0123456789"})
        assert wrong.status_code == 401
        signed = await http.post("/login", data={"token": TOKEN, "then": "//evil.example"})
        assert signed.status_code == 303
        assert signed.headers["location"] == "/goals"
        assert TOKEN not in signed.headers["set-cookie"]
        assert (await http.get("/dlq")).status_code == 200  # the session cookie
        retry = await http.post("/dlq/1/retry")
        assert retry.status_code == 403  # a change needs the dashboard's own header
        async with httpx.AsyncClient(base_url=base) as fresh:
            bearer = {"Authorization": f"Bearer {TOKEN}", ACTION_HEADER: "1"}
            assert (await fresh.get("/dlq", headers=bearer)).status_code == 200
