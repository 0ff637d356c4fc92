"""webhook-endpoints: admins configure them, secrets are shown once, bad targets are refused."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import httpx
import jsonschema  # type: ignore[import-untyped]  # openapi-core's validator
import pytest

from shared.db import Connection
from shared.events import egress, signing
from shared.events.base import Event
from shared.events.catalog import EVENT_TYPES
from shared.runtime import Runtime
from shared.settings import Settings
from tests.support import auth, make_org, make_user, member

URL = "/functions/v1/webhook-endpoints"
PUBLIC_IP = "93.184.215.14"


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The resolver: these names only (the sandbox has no DNS)."""
    names = {
        "hooks.example.com": [PUBLIC_IP],
        "intranet.example.com": ["10.1.2.3"],
        "sneaky.example.com": [PUBLIC_IP, "169.254.169.254"],
        "mapped.example.com": ["::ffff:127.0.0.1"],
    }

    async def lookup(host: str, port: int) -> list[str]:
        if host not in names:
            raise OSError(f"{host}: Name or service not known")
        return names[host]

    monkeypatch.setattr(egress, "lookup", lookup)
    return names


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db)
    org_id = await make_org(db, owner)
    other = await make_org(db, await make_user(db))
    return {
        "org": org_id,
        "owner": owner,
        "admin": await member(db, org_id, "admin"),
        "agent": await member(db, org_id, "agent"),
        "other_admin": await member(db, other, "admin"),
    }


@pytest.fixture
def production(runtime: Runtime) -> None:
    """Production's egress: https to public addresses only."""
    runtime.settings = runtime.settings.model_copy(update={"webhook_egress": "public"})


async def create(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID], who: str = "admin", **body
) -> httpx.Response:
    payload = {
        "organization_id": str(org["org"]),
        "url": "https://hooks.example.com/connectgain",
        "events": ["message.received", "deal.won"],
        **body,
    }
    return await client.post(URL, json=payload, headers=auth(settings, org[who]))


async def test_an_admin_creates_an_endpoint_and_sees_its_secret_once(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    response = await create(client, settings, org, description="CRM sync")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["url"] == "https://hooks.example.com/connectgain"
    assert body["events"] == ["message.received", "deal.won"]
    assert (body["status"], body["enabled"]) == ("active", True)
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    stored = await db.fetchval(
        "select secret from private.webhook_secrets where endpoint_id = $1", UUID(body["id"])
    )
    assert stored == secret
    exposed = await db.fetchval(
        "select string_agg(to_jsonb(w)::text, '') from public.webhook_endpoints w"
    )
    assert secret not in exposed

    headers = auth(settings, org["admin"])
    listed = await client.get(URL, params={"organization_id": str(org["org"])}, headers=headers)
    assert listed.status_code == 200
    (row,) = listed.json()["data"]
    assert row["id"] == body["id"] and "secret" not in row
    one = await client.get(f"{URL}/{body['id']}", headers=headers)
    assert one.status_code == 200 and "secret" not in one.json()


@pytest.mark.parametrize(("who", "status"), [("agent", 403), ("other_admin", 404)])
async def test_members_who_are_not_its_admins_cannot_touch_endpoints(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    org: dict[str, UUID],
    who: str,
    status: int,
):
    refused = await create(client, settings, org, who=who)
    assert refused.status_code == status, refused.text
    assert await db.fetchval("select count(*) from public.webhook_endpoints") == 0
    listed = await client.get(
        URL, params={"organization_id": str(org["org"])}, headers=auth(settings, org[who])
    )
    assert listed.status_code == status

    endpoint = (await create(client, settings, org)).json()["id"]
    headers = auth(settings, org[who])
    for method, path, body in [
        ("GET", "", None),
        ("PATCH", "", {"enabled": False}),
        ("POST", "/disable", None),
        ("POST", "/rotate-secret", None),
        ("DELETE", "", None),
        ("GET", "/attempts", None),
    ]:
        answer = await client.request(method, f"{URL}/{endpoint}{path}", json=body, headers=headers)
        assert answer.status_code == 404, (method, path, answer.text)
    row = await db.fetchrow("select enabled from public.webhook_endpoints")
    assert row["enabled"] is True


async def test_an_admin_updates_disables_and_deletes(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    headers = auth(settings, org["admin"])
    endpoint = (await create(client, settings, org)).json()["id"]
    changed = await client.patch(
        f"{URL}/{endpoint}",
        json={"url": "https://hooks.example.com/v2", "events": ["task.created"]},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["url"], changed.json()["events"]) == (
        "https://hooks.example.com/v2",
        ["task.created"],
    )
    for bad, code in (
        ({"url": "https://intranet.example.com/x"}, "url_not_public"),
        ({"url": "https://nowhere.invalid/x"}, "url_unresolvable"),
        ({"events": ["deal.exploded"], "description": "x"}, "validation_error"),
    ):
        refused = await client.patch(f"{URL}/{endpoint}", json=bad, headers=headers)
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, code), bad
    kept = await db.fetchrow("select url, events, description from public.webhook_endpoints")
    assert (kept["url"], kept["events"], kept["description"]) == (
        "https://hooks.example.com/v2",
        ["task.created"],
        None,
    )
    disabled = await client.post(f"{URL}/{endpoint}/disable", headers=headers)
    assert disabled.json()["status"] == "disabled"
    assert disabled.json()["disabled_reason"] == "disabled by an admin"
    await client.patch(f"{URL}/{endpoint}", json={"enabled": True}, headers=headers)
    why = await client.post(
        f"{URL}/{endpoint}/disable", json={"reason": "receiver migration"}, headers=headers
    )
    assert why.json()["disabled_reason"] == "receiver migration"
    enabled = await client.patch(f"{URL}/{endpoint}", json={"enabled": True}, headers=headers)
    assert (enabled.json()["status"], enabled.json()["disabled_reason"]) == ("active", None)
    assert (await client.delete(f"{URL}/{endpoint}", headers=headers)).status_code == 204
    assert (await client.get(f"{URL}/{endpoint}", headers=headers)).status_code == 404
    assert await db.fetchval("select count(*) from private.webhook_secrets") == 0


async def test_rotation_shows_a_new_secret_and_keeps_the_old_one_for_the_overlap(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    created = (await create(client, settings, org)).json()
    rotated = await client.post(
        f"{URL}/{created['id']}/rotate-secret", headers=auth(settings, org["admin"])
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != created["secret"]
    assert rotated.json()["previous_secret_valid_for_seconds"] == 24 * 3600
    row = await db.fetchrow(
        "select secret, previous_secret, previous_until > now() + interval '23 hours' as overlap"
        " from private.webhook_secrets"
    )
    assert dict(row) == {
        "secret": rotated.json()["secret"],
        "previous_secret": created["secret"],
        "overlap": True,
    }
    at_once = await client.post(
        f"{URL}/{created['id']}/rotate-secret",
        json={"overlap_hours": 0},
        headers=auth(settings, org["admin"]),
    )
    assert at_once.json()["previous_secret_valid_for_seconds"] == 0
    still = await db.fetchval("select previous_until > now() from private.webhook_secrets")
    assert still is False


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"events": ["message.recieved"]}, "validation_error", "message.recieved"),
        ({"events": []}, "validation_error", "events"),
        ({"url": "http://hooks.example.com/x"}, "url_not_https", "https"),
        ({"url": "https://intranet.example.com/x"}, "url_not_public", "private"),
        ({"url": "https://127.0.0.1:8080/x"}, "url_not_public", "loopback"),
        ({"url": "https://[::1]/x"}, "url_not_public", "loopback"),
        ({"url": "https://mapped.example.com/x"}, "url_not_public", "loopback"),
        ({"url": "https://sneaky.example.com/x"}, "url_not_public", "169.254.169.254"),
        ({"url": "https://224.0.0.1/x"}, "url_not_public", "multicast"),
        ({"url": "https://240.0.0.1/x"}, "url_not_public", "reserved"),
        ({"url": "https://nowhere.invalid/x"}, "url_unresolvable", "does not resolve"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "invalid_url", "credentials"),
        ({"url": "not a url"}, "url_not_https", "scheme"),
    ],
)
async def test_bad_input_is_a_422_naming_the_problem_and_saves_nothing(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    org: dict[str, UUID],
    body: dict[str, object],
    code: str,
    words: str,
):
    response = await create(client, settings, org, **body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert words in str(error), error
    assert await db.fetchval("select count(*) from public.webhook_endpoints") == 0


async def test_a_malformed_body_is_refused(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    response = await client.post(
        URL,
        content=b'{"url": ',
        headers={**auth(settings, org["admin"]), "content-type": "application/json"},
    )
    assert response.status_code in (400, 422), response.text
    assert await db.fetchval("select count(*) from public.webhook_endpoints") == 0


async def test_local_egress_allows_a_receiver_on_this_machine(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID]
):
    response = await create(client, settings, org, url="http://127.0.0.1:9/hook")
    assert response.status_code == 201, response.text
    private = await create(client, settings, org, url="http://10.0.0.8/hook")
    assert private.status_code == 422 and private.json()["error"]["code"] == "url_not_public"


async def test_the_openapi_document_names_the_event_types(client: httpx.AsyncClient):
    document = (await client.get(f"{URL}/openapi.json")).json()
    schema = document["components"]["schemas"]["NewEndpoint"]["properties"]["events"]
    assert "message.received" in schema["items"]["enum"]
    assert "webhook_endpoint.disabled" in schema["items"]["enum"]
    # each payload is named under `webhooks`, and what the sender signs fits its schema
    hooks = document["webhooks"]
    assert set(EVENT_TYPES) | {"automation.webhook"} == set(hooks)
    operation = hooks["deal.stage_changed"]["post"]
    assert {p["name"] for p in operation["parameters"]} == {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
    assert "24 h" in operation["description"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    model = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    event = Event(
        id=7,
        organization_id=uuid4(),
        type="deal.stage_changed",
        aggregate_id=None,
        payload={"id": "d", "previous_stage_id": "s"},
        created_at=datetime.now(UTC),
    )
    jsonschema.validate(json.loads(signing.body(event)), model)
    wrong = json.loads(signing.body(event)) | {"type": "deal.won"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, model)


async def test_an_organization_has_at_most_its_cap_of_endpoints_even_at_once(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    await db.execute(
        "insert into private.webhook_endpoint_caps (organization_id, max_endpoints) values ($1, 2)",
        org["org"],
    )
    first = (await create(client, settings, org)).json()
    assert (await create(client, settings, org)).status_code == 201
    full = await create(client, settings, org)
    assert full.status_code == 409, full.text
    assert "2 of its 2 endpoints" in full.json()["error"]["message"]
    assert await db.fetchval("select count(*) from public.webhook_endpoints") == 2
    # other organizations have their own (default) cap
    theirs = await db.fetchval(
        "select organization_id from organization_members where user_id = $1", org["other_admin"]
    )
    assert await db.fetchval("select app.webhook_endpoint_cap($1)", theirs) == 20

    # one place left, two creates at once: the second waits for the first, then is refused
    await client.delete(f"{URL}/{first['id']}", headers=auth(settings, org["admin"]))
    insert = (
        "insert into public.webhook_endpoints (organization_id, url, events)"
        " values ($1, 'https://hooks.example.com/x', '{deal.won}')"
    )
    async with runtime.db.pool.acquire() as one, runtime.db.pool.acquire() as two:
        async with one.transaction():
            await one.execute(insert, org["org"])
            racing = asyncio.create_task(two.execute(insert, org["org"]))
            await asyncio.sleep(0.05)
            assert not racing.done()  # held until the first commits
        with pytest.raises(asyncpg.PostgresError, match="delete one first"):
            await racing
    assert await db.fetchval("select count(*) from public.webhook_endpoints") == 2
