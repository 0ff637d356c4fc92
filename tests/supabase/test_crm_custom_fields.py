"""Custom field values are validated in the database, whoever writes them (PostgREST too)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest

from shared.db import Connection
from shared.runtime import Runtime
from tests.support import make_contact, make_org, make_user, member, principal
from tests.support_crm import define_field, make_company, make_deal


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db)
    org_id = await make_org(db, owner)
    await define_field(db, org_id, "contact", "plan", "select", options=["free", "pro", "team"])
    await define_field(db, org_id, "contact", "seats", "number")
    await define_field(db, org_id, "contact", "renews_on", "date")
    await define_field(db, org_id, "contact", "last_seen", "datetime")
    await define_field(db, org_id, "contact", "vip", "boolean")
    await define_field(db, org_id, "contact", "langs", "multiselect", options=["en", "pt", "fr"])
    await define_field(db, org_id, "contact", "site", "url")
    await define_field(db, org_id, "contact", "billing_email", "email")
    await define_field(db, org_id, "contact", "office_phone", "phone")
    await define_field(db, org_id, "contact", "notes", "text")
    return {"org": org_id, "owner": owner, "agent": await member(db, org_id, "agent")}


async def write(runtime: Runtime, user: UUID, org: UUID, fields: dict[str, Any]) -> dict[str, Any]:
    """Insert a contact as a signed-in member, exactly as PostgREST would."""
    async with runtime.db.user_tx(principal(user)) as conn:
        stored: dict[str, Any] = await conn.fetchval(
            "insert into contacts (organization_id, name, custom_fields) values ($1, 'X', $2)"
            " returning custom_fields",
            org,
            fields,
        )
    return stored


async def refused(runtime: Runtime, user: UUID, org: UUID, fields: dict[str, Any]) -> str:
    with pytest.raises(asyncpg.PostgresError) as raised:
        await write(runtime, user, org, fields)
    assert raised.value.sqlstate == "CG422"
    return str(raised.value)


async def test_valid_values_are_stored_normalized(runtime: Runtime, org: dict[str, UUID]):
    stored = await write(
        runtime,
        org["agent"],
        org["org"],
        {
            "plan": "pro",
            "seats": 12.5,
            "renews_on": "2026-02-28",
            "last_seen": "2026-01-31T10:30:00+02:00",
            "vip": False,
            "langs": ["fr", "en", "fr"],
            "site": "https://acme.example/about",
            "billing_email": "Billing@Acme.Example",
            "office_phone": "+351912345678",
            "notes": "",  # empty means "not set"
        },
    )
    assert stored == {
        "plan": "pro",
        "seats": 12.5,
        "renews_on": "2026-02-28",
        "last_seen": "2026-01-31T08:30:00.000Z",  # UTC, fixed width
        "vip": False,
        "langs": ["en", "fr"],  # a set, in the definition's order
        "site": "https://acme.example/about",
        "billing_email": "billing@acme.example",
        "office_phone": "+351912345678",
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"plan": "gold"}, 'custom_fields.plan: must be one of ["free", "pro", "team"]'),
        ({"seats": "12"}, "custom_fields.seats: must be a number"),
        ({"renews_on": "2026-02-30"}, "custom_fields.renews_on: must be a date as YYYY-MM-DD"),
        ({"last_seen": "yesterday"}, "custom_fields.last_seen: must be an ISO 8601"),
        ({"vip": "yes"}, "custom_fields.vip: must be true or false"),
        ({"langs": ["en", "de"]}, "custom_fields.langs: must be a list of options"),
        ({"langs": "en"}, "custom_fields.langs: must be a list of options"),
        ({"site": "ftp://x.example"}, "custom_fields.site: must be an http or https URL"),
        ({"billing_email": "nope"}, "custom_fields.billing_email: must be an email address"),
        ({"office_phone": "912 345 678"}, "custom_fields.office_phone: must be a phone number"),
        ({"notes": 42}, "custom_fields.notes: must be text"),
        ({"nickname": "Bob"}, "custom_fields.nickname: there is no such contact field"),
    ],
)
async def test_wrong_values_are_refused_naming_the_field(
    runtime: Runtime, org: dict[str, UUID], fields: dict[str, Any], message: str
):
    assert message in await refused(runtime, org["agent"], org["org"], fields)


async def test_every_bad_field_is_named_at_once_and_nothing_is_stored(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    message = await refused(runtime, org["agent"], org["org"], {"plan": "x", "seats": "y"})
    assert "custom_fields.plan" in message and "custom_fields.seats" in message
    assert await db.fetchval("select count(*) from contacts") == 0


async def test_the_same_key_on_another_entity_is_a_different_field(
    db: Connection, org: dict[str, UUID]
):
    await define_field(db, org["org"], "company", "seats", "text")
    company = await make_company(db, org["org"], custom_fields={"seats": "many"})
    assert company
    with pytest.raises(asyncpg.PostgresError, match=r"custom_fields\.plan: there is no such deal"):
        await make_deal(db, org["org"], custom_fields={"plan": "pro"})


async def test_required_values_are_enforced_for_people_not_for_the_system(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    await define_field(db, org["org"], "contact", "region", "text", required=True)
    assert "custom_fields.region: is required" in await refused(
        runtime, org["agent"], org["org"], {"plan": "pro"}
    )
    # a contact created by an inbound message (service transaction) is not blocked
    contact = await make_contact(db, org["org"])
    # a member editing that contact may change other fields ...
    async with runtime.db.user_tx(principal(org["agent"])) as conn:
        await conn.execute(
            'update contacts set custom_fields = \'{"plan": "team"}\' where id = $1', contact
        )
    # ... but once set, a required value cannot be removed
    async with runtime.db.user_tx(principal(org["agent"])) as conn:
        await conn.execute(
            'update contacts set custom_fields = custom_fields || \'{"region": "EU"}\''
            " where id = $1",
            contact,
        )
    with pytest.raises(asyncpg.PostgresError, match=r"custom_fields\.region: is required"):
        async with runtime.db.user_tx(principal(org["agent"])) as conn:
            await conn.execute(
                "update contacts set custom_fields = custom_fields - 'region' where id = $1",
                contact,
            )


async def test_values_kept_from_before_survive_a_narrower_definition(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    stored = await write(runtime, org["agent"], org["org"], {"plan": "team"})
    contact = await db.fetchval("select id from contacts where custom_fields = $1", stored)
    await db.execute(
        "update custom_field_definitions set options = '[\"free\", \"pro\"]' where key = 'plan'"
    )
    async with runtime.db.user_tx(principal(org["agent"])) as conn:
        await conn.execute(
            "update contacts set custom_fields = custom_fields || '{\"seats\": 3}' where id = $1",
            contact,
        )
    assert await db.fetchval("select custom_fields from contacts where id = $1", contact) == {
        "plan": "team",
        "seats": 3,
    }
    # choosing the retired option anew is refused
    other = await make_contact(db, org["org"], custom_fields={"plan": "free"})
    with pytest.raises(asyncpg.PostgresError, match=r"custom_fields\.plan: must be one of"):
        async with runtime.db.user_tx(principal(org["agent"])) as conn:
            await conn.execute(
                'update contacts set custom_fields = \'{"plan": "team"}\' where id = $1', other
            )


async def test_a_fields_identity_cannot_change_and_deleting_it_removes_its_values(
    db: Connection, org: dict[str, UUID]
):
    contact = await make_contact(db, org["org"], custom_fields={"seats": 3, "plan": "pro"})
    before = await db.fetchval("select count(*) from outbox_events")
    with pytest.raises(asyncpg.PostgresError, match="cannot change"):
        await db.execute("update custom_field_definitions set type = 'text' where key = 'seats'")
    await db.execute("delete from custom_field_definitions where key = 'seats'")
    assert await db.fetchval("select custom_fields from contacts where id = $1", contact) == {
        "plan": "pro"
    }
    # clean-up is bookkeeping: no contact.updated storm for automations
    assert await db.fetchval("select count(*) from outbox_events") == before


async def test_definitions_themselves_are_checked(db: Connection, org: dict[str, UUID]):
    with pytest.raises(asyncpg.CheckViolationError):
        await define_field(db, org["org"], "contact", "tier", "select")  # no options
    with pytest.raises(asyncpg.CheckViolationError):
        await define_field(db, org["org"], "contact", "tier", "select", options=["a", "a"])
    with pytest.raises(asyncpg.CheckViolationError):
        await define_field(db, org["org"], "contact", "Bad Key", "text")
    with pytest.raises(asyncpg.UniqueViolationError):
        await define_field(db, org["org"], "contact", "plan", "text")


async def test_definitions_of_another_organization_are_invisible_to_the_check(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    """An outsider's forged write fails without learning which fields org A has."""
    outsider = await make_user(db)
    await make_org(db, outsider)
    message = await refused(runtime, outsider, org["org"], {"plan": "pro"})
    assert message == "custom_fields.plan: there is no such contact field"
