"""Schemathesis against the OpenAPI document every function serves: whatever a
caller sends, no answer is a 5xx, and every answer is one its document describes
(status, content type, body).

Schemathesis makes requests that fit each document; half of them then get one
value swapped for something PostgreSQL or a JSON reader cannot take (NUL, a lone
surrogate, NaN, a float past its range, a moment past year 9999 in UTC, JSON
nested thousands deep), in the body or a query parameter. Requests carry a real
organization's credentials (its owner's access token, a cg_ key with write scope,
the service key) so they get past authentication, and webhook requests name a
real account, so they reach its signature check. The examples are few and
derandomized: the same run every time, a few seconds in all.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_core import OpenAPI
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.channels.registry import NAMES
from shared.settings import Settings
from shared.tooling.gateway import Gateway
from tests.fuzz.conftest import World
from tests.mutations import places, put

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
WEBHOOKS = NAMES  # every registered channel
CRON = (
    "inbound-retry",
    "outbound-sweep",
    "events-worker",
    "automation-sweep",
    "sla-sweep",
    "campaign-dispatch",
    "events-retention",
    "bot-sweep",
    "kommo-import",
    "import-runner",
)  # the scheduler's, with the service key
# slug → examples; the API has most operations and gets the most.
TARGETS: dict[str, int] = {
    "api": 80,
    "api-keys": 12,
    "members": 12,
    "channel-accounts": 16,
    "send-message": 10,
    "templates": 10,
    "webhook-endpoints": 12,
    "automation-rules": 12,
    "billing": 6,
    "stripe-webhook": 6,
    "bot-flows": 12,
    "dashboards": 8,
    "imports": 10,
    **{slug: 6 for slug in CRON},
    "health": 3,
    **{f"{channel}-webhook": 8 for channel in WEBHOOKS},
}
DEEP = "[" * 3000 + "]" * 3000
NASTY: list[Any] = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    math.nan,
    math.inf,
    -math.inf,
    10**40,
    -(2**63),
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:00",
    "99999-01-01",
    json.loads("[" * 200 + "]" * 200),
]


def credentials(world: World, slug: str) -> dict[str, str]:
    if slug == "api":
        return {"Authorization": f"Bearer {world.api_key}"}
    if slug in CRON:
        return {"Authorization": f"Bearer {world.settings.service_key}"}
    if slug == "health" or slug.endswith("-webhook"):
        return {}
    return world.user_headers


@st.composite
def mutated(draw: st.DrawFn, request: dict[str, Any]) -> dict[str, Any]:
    """The request with one value made nasty, or as it was."""
    nasty = draw(st.sampled_from([*NASTY, None]))
    if nasty is None:
        return request
    request = dict(request)
    if "json" in request and (draw(st.booleans()) or not request.get("params")):
        body = request.pop("json")
        path = draw(st.sampled_from(places(body)))
        raw = json.dumps(put(body, path, nasty)).encode()  # NaN and Infinity as Python has them
        request["data"] = raw.replace(b"[[[[", DEEP.encode(), 1) if nasty == NASTY[-1] else raw
        return request
    params = dict(request.get("params") or {"x": ""})
    name = draw(st.sampled_from(sorted(params)))
    params[name] = DEEP if isinstance(nasty, list) else str(nasty)
    # encoded here: a lone surrogate goes as the bytes a careless client sends
    request["params"] = urlencode(params, doseq=True, errors="surrogatepass")
    return request


@pytest.mark.parametrize("slug", sorted(TARGETS))
def test_no_request_gets_a_5xx_or_an_undocumented_answer(world: World, slug: str) -> None:
    schema = schemathesis.openapi.from_asgi(f"/functions/v1/{slug}/openapi.json", world.gateway)
    options: dict[str, Any] = {}
    if slug.endswith("-webhook") and slug != "stripe-webhook":  # a channel's: an account
        options["path_parameters"] = {"account_id": str(world.accounts[slug.split("-")[0]])}
    auth = credentials(world, slug)

    @settings(
        max_examples=TARGETS[slug],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=schema.as_strategy(GenerationMode.POSITIVE, **options), data=st.data())
    def fuzz(case: Any, data: st.DataObject) -> None:
        request = data.draw(mutated(case.as_transport_kwargs(headers=auth)))
        with asgi.get_client(world.gateway) as client:
            response = client.request(**request)
        case.validate_response(response, checks=CHECKS)

    fuzz()


async def test_every_function_serves_an_openapi_document_of_its_bodies_and_answers(
    client: httpx.AsyncClient,
):
    slugs = Gateway(Settings(_env_file=None)).slugs  # type: ignore[call-arg]
    assert set(slugs) == set(TARGETS)  # a new function gets fuzzed too
    for slug in slugs:
        response = await client.get(f"/functions/v1/{slug}/openapi.json")
        assert response.status_code == 200, slug
        document = response.json()
        OpenAPI.from_dict(document)  # a valid OpenAPI document
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                answers = operation["responses"]
                assert {"413", "422"} <= set(answers), (slug, path, method)
                if method in ("post", "patch") and slug not in CRON:
                    assert "requestBody" in operation, (slug, path, method)
    sms = (await client.get("/functions/v1/sms-webhook/openapi.json")).json()
    body = sms["paths"]["/{account_id}"]["post"]["requestBody"]["content"]
    assert list(body) == ["application/x-www-form-urlencoded"]
