from __future__ import annotations

import httpx
import pytest

from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.gateway import Gateway


@pytest.mark.parametrize("path", ["/functions/v1/health", "/functions/v1/health/"])
async def test_health_answers_with_the_database_reachable(client: httpx.AsyncClient, path: str):
    response = await client.get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_health_reports_a_database_that_is_down(settings: Settings):
    runtime = await Runtime.open(settings)
    await runtime.db.pool.close()  # the database "goes away"
    gateway = Gateway(settings, runtime=runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway), base_url="http://test"
    ) as client:
        response = await client.get("/functions/v1/health")
    await runtime.http.aclose()
    assert response.status_code == 503
    assert response.json()["database"] == "down"


async def test_unknown_function_is_a_json_404(client: httpx.AsyncClient):
    response = await client.get("/functions/v1/no-such-function")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_unknown_route_inside_a_function_is_a_json_404(client: httpx.AsyncClient):
    response = await client.get("/functions/v1/health/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
