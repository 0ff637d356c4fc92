"""One entry per table the SPA can reach: how to make a row of an organization, and
what a forged insert into another organization looks like. A table without an
entry fails the isolation suite, so every new table must add one here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from shared.db import Connection
from tests.security.world import World
from tests.support import (
    make_channel_account,
    make_contact,
    make_conversation,
    make_message,
    member,
)
from tests.support_crm import (
    default_pipeline,
    make_company,
    make_deal,
    make_note,
    make_tag,
    make_task,
    stages_of,
    tag,
)

MakeRow = Callable[[Connection, World, UUID], Awaitable[Any]]
Forge = Callable[[Connection, World, UUID], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class TenantTable:
    make: MakeRow  # insert a row of the organization, as the owner role; returns its key
    forge: Forge  # a row of that organization an attacker tries to insert (parents made real)
    scope: str | None = "organization_id"  # the column naming the organization, if any
    key: str = "id"
    touch: str = "organization_id"  # a column "updated" to itself in update attempts
    # who in org B may read org B's own rows (proves the read check is not vacuous)
    readers: frozenset[str] = frozenset({"agent_b", "admin_b", "api_key_b"})


ADMINS = frozenset({"admin_b"})


def values(**row: Any) -> Forge:
    async def forge(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
        return {k: (org if v is ORG else v) for k, v in row.items()}

    return forge


ORG = object()  # stands for "the organization under attack" in values()


async def _organization(conn: Connection, world: World, org: UUID) -> UUID:
    return org


async def _membership(conn: Connection, world: World, org: UUID) -> UUID:
    user = await member(conn, org, "agent")
    key: UUID = await conn.fetchval(
        "select id from public.organization_members where user_id = $1", user
    )
    return key


async def _profile(conn: Connection, world: World, org: UUID) -> UUID:
    return await member(conn, org, "agent")


async def _api_key(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.api_keys (organization_id, name, prefix, scopes)"
        " values ($1, 'k', 'cg_test', '{read}') returning id",
        org,
    )
    await conn.execute(
        "insert into private.api_key_hashes (api_key_id, hash) values ($1, $2)",
        key,
        uuid4().bytes,
    )
    return key


async def _invitation(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.organization_invitations (organization_id, email, expires_at)"
        " values ($1, $2, now() + interval '1 day') returning id",
        org,
        f"{uuid4().hex[:12]}@example.com",
    )
    return key


async def _identity(conn: Connection, world: World, org: UUID) -> UUID:
    contact = await make_contact(conn, org)
    key: UUID = await conn.fetchval(
        "insert into public.contact_identities (organization_id, contact_id, channel, external_id)"
        " values ($1, $2, 'telegram', $3) returning id",
        org,
        contact,
        uuid4().hex,
    )
    return key


async def _forge_identity(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    contact = await make_contact(conn, org)
    return {"organization_id": org, "contact_id": contact, "channel": "sms", "external_id": "x"}


async def _forge_conversation(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "contact_id": await make_contact(conn, org),
        "channel_account_id": await make_channel_account(conn, org),
    }


async def _forge_message(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    conversation = await make_conversation(conn, org)
    account = await conn.fetchval(
        "select channel_account_id from public.conversations where id = $1", conversation
    )
    return {
        "organization_id": org,
        "conversation_id": conversation,
        "channel_account_id": account,
        "direction": "outbound",
        "sender_type": "user",
        "sender_id": world.agent_b,
        "status": "queued",
        "body": "forged",
    }


async def _inbound_event(conn: Connection, world: World, org: UUID) -> UUID:
    account = await make_channel_account(conn, org)
    key: UUID = await conn.fetchval(
        "insert into public.inbound_events"
        " (organization_id, channel_account_id, provider_event_id, event_type, payload)"
        " values ($1, $2, $3, 'message', '{}') returning id",
        org,
        account,
        uuid4().hex,
    )
    return key


async def _forge_inbound_event(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "channel_account_id": await make_channel_account(conn, org),
        "provider_event_id": "forged",
        "event_type": "message",
        "payload": "{}",
    }


async def _outbox_event(conn: Connection, world: World, org: UUID) -> int:
    key: int = await conn.fetchval(
        "insert into public.outbox_events (organization_id, event_type, payload)"
        " values ($1, 'test.event', '{}') returning id",
        org,
    )
    return key


async def _event_delivery(conn: Connection, world: World, org: UUID) -> int:
    key: int = await conn.fetchval(
        "insert into public.event_deliveries (organization_id, event_id, consumer)"
        " values ($1, $2, 'test') returning id",
        org,
        await _outbox_event(conn, world, org),
    )
    return key


async def _forge_event_delivery(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "event_id": await _outbox_event(conn, world, org),
        "consumer": "forged",
    }


async def _webhook_endpoint(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.webhook_endpoints (organization_id, url, events)"
        " values ($1, 'https://hooks.example.com/in', '{contact.created}') returning id",
        org,
    )
    return key


async def _webhook_attempt(conn: Connection, world: World, org: UUID) -> int:
    key: int = await conn.fetchval(
        "insert into public.webhook_attempts (organization_id, endpoint_id, delivery_id,"
        " attempt, attempted_at, status_code, latency_ms) values ($1, $2, $3, 1, now(), 500, 12)"
        " returning id",
        org,
        await _webhook_endpoint(conn, world, org),
        await _event_delivery(conn, world, org),
    )
    return key


async def _forge_webhook_attempt(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "endpoint_id": await _webhook_endpoint(conn, world, org),
        "delivery_id": await _event_delivery(conn, world, org),
        "attempt": 1,
        "attempted_at": datetime.now(UTC),
        "latency_ms": 1,
    }


async def _automation_rule(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.automation_rules (organization_id, name, position, trigger, actions)"
        """ values ($1, 'r', 0, 'contact.created', '[{"type": "stop"}]') returning id""",
        org,
    )
    return key


async def _automation_run(conn: Connection, world: World, org: UUID) -> int:
    key: int = await conn.fetchval(
        "insert into public.automation_runs (organization_id, rule_id, event_id, event_type,"
        " status, matched) values ($1, $2, $3, 'contact.created', 'not_matched', false)"
        " returning id",
        org,
        await _automation_rule(conn, world, org),
        await _outbox_event(conn, world, org),
    )
    return key


async def _forge_automation_run(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "rule_id": await _automation_rule(conn, world, org),
        "event_id": await _outbox_event(conn, world, org),
        "event_type": "contact.created",
        "status": "ran",
        "matched": True,
    }


async def _availability(conn: Connection, world: World, org: UUID) -> UUID:
    user = await member(conn, org, "agent")
    await conn.execute(
        "insert into public.member_availability (organization_id, user_id, availability)"
        " values ($1, $2, 'online')",
        org,
        user,
    )
    return user


async def _forge_availability(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {"organization_id": org, "user_id": await member(conn, org, "agent"), "capacity": 1}


async def _custom_field(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.custom_field_definitions (organization_id, entity, key, label, type)"
        " values ($1, 'contact', $2, 'Field', 'text') returning id",
        org,
        f"f{uuid4().hex[:12]}",
    )
    return key


async def _stage(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.stages (organization_id, pipeline_id, name)"
        " values ($1, $2, 'Extra') returning id",
        org,
        await default_pipeline(conn, org),
    )
    return key


async def _forge_stage(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {"organization_id": org, "pipeline_id": await default_pipeline(conn, org), "name": "x"}


async def _forge_deal(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    pipeline = await default_pipeline(conn, org)
    return {
        "organization_id": org,
        "title": "forged",
        "pipeline_id": pipeline,
        "stage_id": (await stages_of(conn, pipeline))["Lead"],
    }


async def _stage_change(conn: Connection, world: World, org: UUID) -> int:
    deal = await make_deal(conn, org)
    key: int = await conn.fetchval(
        "select id from public.deal_stage_changes where deal_id = $1", deal
    )
    return key


async def _forge_stage_change(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {"organization_id": org, "deal_id": await make_deal(conn, org)}


def _tag_link(table: str, column: str, make_parent: MakeRow) -> TenantTable:
    """A join table (contact_tags …): its rows are keyed by the parent they tag."""

    async def make(conn: Connection, world: World, org: UUID) -> UUID:
        parent: UUID = await make_parent(conn, world, org)
        await tag(conn, org, table, column, parent, await make_tag(conn, org))
        return parent

    async def forge(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
        parent = await make_parent(conn, world, org)
        return {"organization_id": org, column: parent, "tag_id": await make_tag(conn, org)}

    return TenantTable(make=make, forge=forge, key=column)


async def _forge_task(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {"organization_id": org, "title": "forged", "contact_id": await make_contact(conn, org)}


async def _note(conn: Connection, world: World, org: UUID) -> UUID:
    return await make_note(conn, org, contact_id=await make_contact(conn, org))


async def _forge_note(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {"organization_id": org, "body": "forged", "contact_id": await make_contact(conn, org)}


async def _business_hours(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.business_hours (organization_id, channel_account_id, name, timezone,"
        " weekly) values ($1, $2, 'Hours', 'Europe/Berlin',"
        ' \'{"mon": [{"start": "09:00", "end": "17:00"}]}\') returning id',
        org,
        await make_channel_account(conn, org),
    )
    return key


async def _sla_policy(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.sla_policies (organization_id, name, first_response_seconds)"
        " values ($1, 'Policy', 3600) returning id",
        org,
    )
    return key


async def _conversation_sla(conn: Connection, world: World, org: UUID) -> UUID:
    conversation = await make_conversation(conn, org)
    await conn.execute(
        "insert into public.conversation_sla (organization_id, conversation_id, policy_id)"
        " values ($1, $2, $3)",
        org,
        conversation,
        await _sla_policy(conn, world, org),
    )
    return conversation


async def _sla_clock(conn: Connection, world: World, org: UUID) -> int:
    key: int = await conn.fetchval(
        "insert into public.sla_clocks (organization_id, conversation_id, kind,"
        " business_hours_only, started_at, due_at) values ($1, $2, 'first_response', false,"
        " now(), now() + interval '1 hour') returning id",
        org,
        await make_conversation(conn, org),
    )
    return key


async def _forge_sla_clock(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "conversation_id": await make_conversation(conn, org),
        "kind": "resolution",
        "business_hours_only": False,
        "started_at": datetime.now(UTC),
    }


async def _whatsapp_template(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.whatsapp_templates (organization_id, channel_account_id, name,"
        " language, category, status) values ($1, $2, 'hello', 'en', 'UTILITY', 'APPROVED')"
        " returning id",
        org,
        await make_channel_account(conn, org, channel="whatsapp"),
    )
    return key


async def _forge_whatsapp_template(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "channel_account_id": await make_channel_account(conn, org, channel="whatsapp"),
        "name": "forged",
        "language": "en",
        "category": "MARKETING",
        "status": "APPROVED",
    }


async def _text_template(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.text_templates (organization_id, name, body)"
        " values ($1, $2, 'Hi {{ contact.name }}') returning id",
        org,
        f"Greeting {uuid4().hex[:8]}",
    )
    return key


async def _quick_reply(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.quick_replies (organization_id, shortcut, body)"
        " values ($1, $2, 'Refunds take 5 days') returning id",
        org,
        f"/refund-{uuid4().hex[:8]}",
    )
    return key


async def _campaign(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.campaigns (organization_id, channel_account_id, name, body)"
        " values ($1, $2, 'Spring sale', 'Hi!') returning id",
        org,
        await make_channel_account(conn, org, channel="whatsapp"),
    )
    return key


async def _forge_campaign(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "channel_account_id": await make_channel_account(conn, org, channel="whatsapp"),
        "name": "forged",
        "body": "forged",
    }


async def _campaign_recipient(conn: Connection, world: World, org: UUID) -> int:
    key: int = await conn.fetchval(
        "insert into public.campaign_recipients (organization_id, campaign_id, contact_id,"
        " address) values ($1, $2, $3, '+4915112345678') returning id",
        org,
        await _campaign(conn, world, org),
        await make_contact(conn, org),
    )
    return key


async def _forge_campaign_recipient(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "campaign_id": await _campaign(conn, world, org),
        "contact_id": await make_contact(conn, org),
        "address": "+4915112345678",
    }


async def _import_job(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.import_jobs (organization_id, source, entity)"
        " values ($1, 'csv', 'contacts') returning id",
        org,
    )
    return key


async def _private_plan(conn: Connection, world: World, org: UUID) -> str:
    """A plan only its subscriber sees (a negotiated deal), put on the organization."""
    code = f"deal_{uuid4().hex[:12]}"
    await conn.execute(
        "insert into public.plans (code, name, is_public, features)"
        " values ($1, 'Deal', false, '{api,bots,campaigns,sla,imports}')",
        code,
    )
    await conn.execute(
        "update public.subscriptions set plan_code = $2 where organization_id = $1", org, code
    )
    return code


async def _usage_counter(conn: Connection, world: World, org: UUID) -> int:
    key: int = await conn.fetchval(
        "insert into public.usage_counters (organization_id, metric, period_start, count)"
        " values ($1, 'outbound_messages', now() - random() * interval '9000 days', 1)"
        " returning id",
        org,
    )
    return key


async def _kommo_connection(conn: Connection, world: World, org: UUID) -> UUID:
    await conn.execute(
        "insert into public.kommo_connections (organization_id, subdomain, account_id,"
        " account_name) values ($1, 'acme', 30123456, 'Acme') on conflict do nothing",
        org,
    )
    return org


async def _import_ref(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.import_external_refs (organization_id, source, entity, external_id,"
        " internal_id) values ($1, 'kommo', 'contact', $2, $3) returning internal_id",
        org,
        uuid4().hex,
        await make_contact(conn, org),
    )
    return key


async def _kommo_job(conn: Connection, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.import_jobs (organization_id, source) values ($1, 'kommo')"
        " returning id",
        org,
    )
    return key


async def _kommo_checkpoint(conn: Connection, world: World, org: UUID) -> UUID:
    job = await _kommo_job(conn, org)
    await conn.execute(
        "insert into public.kommo_import_checkpoints (organization_id, job_id, entity)"
        " values ($1, $2, 'contacts')",
        org,
        job,
    )
    return job


async def _forge_kommo_checkpoint(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {"organization_id": org, "job_id": await _kommo_job(conn, org), "entity": "contacts"}


async def _dashboard(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.dashboards (organization_id, name) values ($1, 'Shared') returning id",
        org,
    )
    return key


async def _dashboard_widget(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.dashboard_widgets (organization_id, dashboard_id, metric,"
        " visualization) values ($1, $2, 'replies', 'kpi') returning id",
        org,
        await _dashboard(conn, world, org),
    )
    return key


async def _forge_dashboard_widget(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "dashboard_id": await _dashboard(conn, world, org),
        "metric": "replies",
        "visualization": "kpi",
    }


async def _message_rollup(conn: Connection, world: World, org: UUID) -> datetime:
    bucket = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(hours=int(uuid4().int % 100000))
    await conn.execute(
        "insert into public.message_rollups (organization_id, bucket, channel_account_id,"
        " direction, shard, messages) values ($1, $2, $3, 'inbound', 0, 1)",
        org,
        bucket,
        await make_channel_account(conn, org),
    )
    return bucket


async def _forge_message_rollup(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "bucket": datetime(2020, 1, 1, tzinfo=UTC),
        "channel_account_id": await make_channel_account(conn, org),
        "direction": "inbound",
        "shard": 0,
        "messages": 1000,
    }


async def _reply_rollup(conn: Connection, world: World, org: UUID) -> datetime:
    bucket = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(hours=int(uuid4().int % 100000))
    await conn.execute(
        "insert into public.reply_rollups (organization_id, bucket, sender_id, shard, messages)"
        " values ($1, $2, $3, 0, 1)",
        org,
        bucket,
        uuid4(),
    )
    return bucket


async def _transition(conn: Connection, world: World, org: UUID) -> int:
    key: int = await conn.fetchval(
        "select max(id) from public.conversation_transitions where conversation_id = $1",
        await make_conversation(conn, org),
    )
    return key


async def _forge_deal_progress(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "deal_id": await make_deal(conn, org),
        "pipeline_id": await default_pipeline(conn, org),
        "created_at": datetime.now(UTC),
        "furthest_position": 99,
        "won": True,
    }


async def _forge_transition(conn: Connection, world: World, org: UUID) -> dict[str, Any]:
    conversation = await make_conversation(conn, org)
    account = await conn.fetchval(
        "select channel_account_id from public.conversations where id = $1", conversation
    )
    return {
        "organization_id": org,
        "conversation_id": conversation,
        "channel_account_id": account,
        "to_status": "resolved",
        "at": datetime.now(UTC),
    }


TABLES: dict[str, TenantTable] = {
    "public.organizations": TenantTable(
        make=_organization,
        forge=values(name="Forged", slug=f"forged-{uuid4().hex[:8]}"),
        scope=None,
        touch="name",
    ),
    "public.organization_members": TenantTable(
        make=_membership,
        # the classic escalation: make yourself owner of someone else's organization
        forge=lambda conn, w, org: values(organization_id=org, user_id=w.agent_b, role="owner")(
            conn, w, org
        ),
    ),
    "public.profiles": TenantTable(
        make=_profile,
        forge=lambda conn, w, org: values(id=w.owner_a, full_name="Forged")(conn, w, org),
        scope=None,
        touch="full_name",
    ),
    "public.api_keys": TenantTable(
        make=_api_key,
        forge=values(organization_id=ORG, name="forged", prefix="cg_forged", scopes=["write"]),
    ),
    # Only admins see invitations; every write goes through app.*_invitation().
    "public.organization_invitations": TenantTable(
        make=_invitation,
        forge=lambda conn, w, org: values(
            organization_id=org, email="me@b.example", role="owner", expires_at=datetime.now(UTC)
        )(conn, w, org),
        readers=ADMINS,
    ),
    "public.channel_accounts": TenantTable(
        make=lambda conn, w, org: make_channel_account(conn, org),
        forge=values(organization_id=ORG, channel="telegram", name="forged", external_id="1"),
    ),
    "public.contacts": TenantTable(
        make=lambda conn, w, org: make_contact(conn, org),
        forge=values(organization_id=ORG, name="Forged"),
    ),
    "public.contact_identities": TenantTable(make=_identity, forge=_forge_identity),
    "public.conversations": TenantTable(
        make=lambda conn, w, org: make_conversation(conn, org), forge=_forge_conversation
    ),
    "public.messages": TenantTable(
        make=lambda conn, w, org: make_message(conn, org), forge=_forge_message
    ),
    "public.inbound_events": TenantTable(
        make=_inbound_event, forge=_forge_inbound_event, readers=ADMINS
    ),
    "public.outbox_events": TenantTable(
        make=_outbox_event,
        forge=values(organization_id=ORG, event_type="x", payload="{}"),
        readers=ADMINS,
    ),
    # Admins read deliveries and attempts; only the worker (the owner) writes them.
    "public.event_deliveries": TenantTable(
        make=_event_delivery, forge=_forge_event_delivery, readers=ADMINS
    ),
    "public.webhook_endpoints": TenantTable(
        make=_webhook_endpoint,
        forge=values(
            organization_id=ORG, url="https://forged.example.com", events=["message.received"]
        ),
        readers=ADMINS,
    ),
    "public.webhook_attempts": TenantTable(
        make=_webhook_attempt, forge=_forge_webhook_attempt, readers=ADMINS
    ),
    "public.custom_field_definitions": TenantTable(
        make=_custom_field,
        forge=values(organization_id=ORG, entity="contact", key="forged", label="x", type="text"),
    ),
    "public.companies": TenantTable(
        make=lambda conn, w, org: make_company(conn, org),
        forge=values(organization_id=ORG, name="Forged"),
    ),
    "public.pipelines": TenantTable(
        make=lambda conn, w, org: default_pipeline(conn, org),
        forge=values(organization_id=ORG, name="Forged"),
    ),
    "public.stages": TenantTable(make=_stage, forge=_forge_stage),
    "public.deals": TenantTable(make=lambda conn, w, org: make_deal(conn, org), forge=_forge_deal),
    "public.deal_stage_changes": TenantTable(make=_stage_change, forge=_forge_stage_change),
    "public.tags": TenantTable(
        make=lambda conn, w, org: make_tag(conn, org),
        forge=values(organization_id=ORG, name="forged"),
    ),
    "public.contact_tags": _tag_link(
        "contact_tags", "contact_id", lambda conn, w, org: make_contact(conn, org)
    ),
    "public.deal_tags": _tag_link(
        "deal_tags", "deal_id", lambda conn, w, org: make_deal(conn, org)
    ),
    "public.conversation_tags": _tag_link(
        "conversation_tags", "conversation_id", lambda conn, w, org: make_conversation(conn, org)
    ),
    "public.tasks": TenantTable(make=lambda conn, w, org: make_task(conn, org), forge=_forge_task),
    "public.notes": TenantTable(make=_note, forge=_forge_note),
    # Managers configure business hours and SLA policies; members read them.
    "public.business_hours": TenantTable(
        make=_business_hours,
        forge=values(
            organization_id=ORG, name="forged", timezone="UTC", weekly={"sun": []}, holidays=[]
        ),
    ),
    "public.sla_policies": TenantTable(
        make=_sla_policy, forge=values(organization_id=ORG, name="forged", is_default=True)
    ),
    # Members read a conversation's SLA; only the events worker (the owner) writes it.
    "public.conversation_sla": TenantTable(
        make=_conversation_sla,
        forge=lambda conn, w, org: _forge_conversation_sla(conn, org),
        key="conversation_id",
    ),
    "public.sla_clocks": TenantTable(make=_sla_clock, forge=_forge_sla_clock),
    "public.automation_rules": TenantTable(
        make=_automation_rule,
        forge=values(
            organization_id=ORG,
            name="forged",
            position=0,
            trigger="contact.created",
            actions='[{"type": "stop"}]',
        ),
    ),
    # Written by the automation consumer (the owner) only; members read them.
    "public.automation_runs": TenantTable(make=_automation_run, forge=_forge_automation_run),
    "public.member_availability": TenantTable(
        make=_availability, forge=_forge_availability, key="user_id"
    ),
    # Templates and the organization's quick replies: members read, managers write.
    "public.whatsapp_templates": TenantTable(
        make=_whatsapp_template, forge=_forge_whatsapp_template
    ),
    "public.text_templates": TenantTable(
        make=_text_template, forge=values(organization_id=ORG, name="forged", body="x")
    ),
    "public.quick_replies": TenantTable(
        make=_quick_reply, forge=values(organization_id=ORG, shortcut="/forged", body="x")
    ),
    "public.campaigns": TenantTable(make=_campaign, forge=_forge_campaign),
    # Only the service (snapshot, dispatcher) and the status trigger write recipients.
    "public.campaign_recipients": TenantTable(
        make=_campaign_recipient, forge=_forge_campaign_recipient
    ),
    # Admins read and create import jobs; the runners (the service) move them.
    "public.import_jobs": TenantTable(
        make=_import_job,
        forge=values(organization_id=ORG, source="csv", entity="contacts"),
        readers=ADMINS,
    ),
    # Billing: members read; only the service writes (Stripe's webhook, checkout).
    # Public plans are everyone's; a private one only its subscriber's.
    "public.plans": TenantTable(
        make=_private_plan,
        forge=values(code="forged", name="Forged", limits="{}"),
        scope=None,
        key="code",
        touch="name",
    ),
    "public.subscriptions": TenantTable(
        make=lambda conn, w, org: _organization(conn, w, org),
        forge=values(organization_id=ORG, plan_code="enterprise", status="active"),
        key="organization_id",
    ),
    "public.usage_counters": TenantTable(
        make=_usage_counter,
        forge=values(
            organization_id=ORG, metric="outbound_messages", period_start=datetime.now(UTC)
        ),
    ),
    # Bot flows and their versions: members read, managers write (versions never change).
    "public.bot_flows": TenantTable(
        make=lambda conn, w, org: _bot_flow(conn, org),
        forge=values(organization_id=ORG, name="forged", draft='{"nodes": []}'),
    ),
    "public.bot_flow_versions": TenantTable(
        make=lambda conn, w, org: _bot_flow_version(conn, org),
        forge=lambda conn, w, org: _forge_bot_flow_version(conn, org),
    ),
    # Only the bot runtime (the owner) writes sessions and their steps; members read them.
    "public.bot_sessions": TenantTable(
        make=lambda conn, w, org: _bot_session(conn, org),
        forge=lambda conn, w, org: _forge_bot_session(conn, org),
    ),
    "public.bot_session_steps": TenantTable(
        make=lambda conn, w, org: _bot_step(conn, org),
        forge=lambda conn, w, org: _forge_bot_step(conn, org),
    ),
    # Kommo imports: admins read the connection (never its token, in private), the
    # references and the checkpoints; only the importer (the service) writes them.
    "public.kommo_connections": TenantTable(
        make=_kommo_connection,
        forge=values(organization_id=ORG, subdomain="forged", account_id=1, account_name="x"),
        key="organization_id",
        touch="subdomain",
        readers=ADMINS,
    ),
    "public.import_external_refs": TenantTable(
        make=_import_ref,
        forge=values(
            organization_id=ORG,
            source="kommo",
            entity="contact",
            external_id="1",
            internal_id=uuid4(),
        ),
        key="internal_id",
        readers=ADMINS,
    ),
    "public.kommo_import_checkpoints": TenantTable(
        make=_kommo_checkpoint, forge=_forge_kommo_checkpoint, key="job_id", readers=ADMINS
    ),
    # Shared dashboards: members read, managers (and write keys) write; each member's own
    # are theirs alone (tests/functions/test_dashboards.py).
    "public.dashboards": TenantTable(
        make=_dashboard, forge=values(organization_id=ORG, name="forged")
    ),
    "public.dashboard_widgets": TenantTable(make=_dashboard_widget, forge=_forge_dashboard_widget),
    # Kept by triggers only; members read them.
    "public.message_rollups": TenantTable(
        make=_message_rollup, forge=_forge_message_rollup, key="bucket"
    ),
    "public.reply_rollups": TenantTable(
        make=_reply_rollup,
        forge=values(
            organization_id=ORG,
            bucket=datetime(2020, 1, 1, tzinfo=UTC),
            sender_id=uuid4(),
            shard=0,
            messages=1000,
        ),
        key="bucket",
    ),
    "public.conversation_transitions": TenantTable(make=_transition, forge=_forge_transition),
    # Kept by triggers on deals, their stage changes and stages; members read it.
    "public.deal_progress": TenantTable(
        make=lambda conn, w, org: make_deal(conn, org), forge=_forge_deal_progress, key="deal_id"
    ),
}


async def _forge_conversation_sla(conn: Connection, org: UUID) -> dict[str, Any]:
    return {"organization_id": org, "conversation_id": await make_conversation(conn, org)}


async def _bot_flow(conn: Connection, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.bot_flows (organization_id, name, draft)"
        """ values ($1, 'f', '{"nodes": []}') returning id""",
        org,
    )
    return key


async def _bot_flow_version(conn: Connection, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.bot_flow_versions (organization_id, flow_id, version, graph)"
        """ values ($1, $2, 1, '{"nodes": []}') returning id""",
        org,
        await _bot_flow(conn, org),
    )
    return key


async def _forge_bot_flow_version(conn: Connection, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "flow_id": await _bot_flow(conn, org),
        "version": 7,
        "graph": '{"nodes": []}',
    }


async def _bot_session_row(conn: Connection, org: UUID) -> dict[str, Any]:
    version = await _bot_flow_version(conn, org)
    flow = await conn.fetchval(
        "select flow_id from public.bot_flow_versions where id = $1", version
    )
    return {
        "organization_id": org,
        "flow_id": flow,
        "flow_version_id": version,
        "conversation_id": await make_conversation(conn, org),
        "timeout_seconds": 60,
    }


async def _bot_session(conn: Connection, org: UUID) -> UUID:
    row = await _bot_session_row(conn, org)
    key: UUID = await conn.fetchval(
        "insert into public.bot_sessions (organization_id, flow_id, flow_version_id,"
        " conversation_id, timeout_seconds) values ($1, $2, $3, $4, $5) returning id",
        *row.values(),
    )
    return key


async def _forge_bot_session(conn: Connection, org: UUID) -> dict[str, Any]:
    return await _bot_session_row(conn, org)


async def _bot_step(conn: Connection, org: UUID) -> int:
    key: int = await conn.fetchval(
        "insert into public.bot_session_steps (organization_id, session_id, node_id, kind)"
        " values ($1, $2, 'n', 'end') returning id",
        org,
        await _bot_session(conn, org),
    )
    return key


async def _forge_bot_step(conn: Connection, org: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "session_id": await _bot_session(conn, org),
        "node_id": "n",
        "kind": "end",
    }
