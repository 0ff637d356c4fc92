"""Every function the API roles can execute is on a reviewed allowlist.

The suite reads the catalog: any function that `anon` or `authenticated` may
execute, in any schema but the system ones, must be listed here with who may
call it and why. A new function is executable by PUBLIC (or, in `public`, by the
API roles through Supabase's default privileges) until revoked, so forgetting
the revoke fails here. Every allowlisted security-definer function has a misuse
test: a member of org B calling it with org A's ids gets a refusal or nothing of A.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from shared.db import Connection
from shared.runtime import Runtime
from tests.security import misuse
from tests.security.catalog import executable_functions
from tests.security.world import World

AUTH = frozenset({"authenticated"})
BOTH = frozenset({"anon", "authenticated"})


@dataclass(frozen=True)
class Allowed:
    roles: frozenset[str]
    why: str


ALLOWLIST: dict[str, Allowed] = {
    # policies: evaluated as the querying role
    "app.org_ids()": Allowed(AUTH, "every policy: the caller's organizations (definer)"),
    "app.org_ids_with_role(public.member_role)": Allowed(AUTH, "policies: orgs by caller's rank"),
    "app.teammate_ids()": Allowed(AUTH, "profiles policy: users sharing an org with the caller"),
    "app.api_key_id()": Allowed(AUTH, "api_keys policies: the key bound to this transaction"),
    # RPCs of the functions, each checking the caller's rank itself
    "app.create_api_key(uuid,text,text[],text,bytea)": Allowed(AUTH, "api-keys: admins issue"),
    "app.set_channel_credentials(uuid,jsonb)": Allowed(AUTH, "channel-accounts: admins store"),
    "app.create_invitation(uuid,text,public.member_role,bytea,interval)": Allowed(
        AUTH, "members: admins invite"
    ),
    "app.revoke_invitation(uuid)": Allowed(AUTH, "members: admins revoke (RLS finds the row)"),
    "app.accept_invitation(bytea)": Allowed(AUTH, "members: the invitee, matched by e-mail"),
    "app.member_directory(uuid)": Allowed(AUTH, "members: e-mails from auth.users, members only"),
    "app.set_webhook_secret(uuid,text,interval)": Allowed(
        AUTH, "webhook-endpoints: admins set or rotate an endpoint's secret"
    ),
    "app.replay_event_delivery(bigint)": Allowed(
        AUTH, "events-worker, webhook-endpoints: admins replay a finished delivery"
    ),
    "app.request_import_cancel(uuid)": Allowed(
        AUTH, "imports: admins ask for a job's cancel (status stays the service's)"
    ),
    # RPCs of the SPA (public schema, PostgREST)
    "public.create_organization(text)": Allowed(AUTH, "a signed-in user founds an org (definer)"),
    "public.move_deal(uuid,uuid,integer)": Allowed(AUTH, "kanban moves; invoker, under RLS"),
    "public.search_messages(uuid,text,timestamp with time zone,uuid,integer)": Allowed(
        AUTH, "inbox search (definer, for the trigram index); members of the org only"
    ),
    "public.search_contacts(uuid,text,timestamp with time zone,uuid,integer)": Allowed(
        AUTH, "contact search (definer, for the trigram index); members of the org only"
    ),
    "public.search_quick_replies(uuid,text,integer)": Allowed(
        AUTH, "quick-reply search (definer, for the indexes); members, own and org-wide only"
    ),
    # check constraints and invoker triggers, run as the writing role
    "app.valid_timezone(text)": Allowed(AUTH, "check on organizations, profiles; pure"),
    "app.valid_field_options(jsonb)": Allowed(AUTH, "check on custom_field_definitions; pure"),
    "app.valid_address(jsonb)": Allowed(AUTH, "check on companies; pure"),
    "app.valid_business_week(jsonb)": Allowed(AUTH, "check on business_hours; pure"),
    "app.valid_holidays(jsonb)": Allowed(AUTH, "check on business_hours; pure"),
    "app.clean_custom_fields(uuid,public.custom_field_entity,jsonb,jsonb)": Allowed(
        AUTH, "custom field trigger; invoker, sees definitions under RLS"
    ),
    "app.parse_date(text)": Allowed(AUTH, "clean_custom_fields; pure"),
    "app.parse_datetime(text)": Allowed(AUTH, "clean_custom_fields; pure"),
    "app.datetime_text(timestamp with time zone)": Allowed(AUTH, "clean_custom_fields; pure"),
    "app.first_stage(uuid,uuid,public.stage_kind)": Allowed(AUTH, "deal trigger; invoker, RLS"),
    "app.next_deal_position(uuid,uuid)": Allowed(AUTH, "deal trigger; invoker, RLS"),
    "app.lock_stage(uuid)": Allowed(AUTH, "deal trigger, move_deal; a transaction advisory lock"),
    "app.organization_is_going(uuid)": Allowed(AUTH, "pipeline/stage delete triggers; RLS"),
    "app.effective_plan_code(text,public.subscription_status,timestamp with time zone)": Allowed(
        AUTH, "billing reads under RLS: the plan a status gives; pure, reads no data"
    ),
    "app.usage_period(timestamp with time zone,timestamp with time zone)": Allowed(
        AUTH, "billing reads under RLS: the usage period's start; pure, reads no data"
    ),
    "app.may_write_dashboard(uuid,uuid)": Allowed(AUTH, "dashboards policies; invoker, pure"),
    # Supabase's own (supabase/local stands in); granted by Supabase, not by us
    "auth.uid()": Allowed(BOTH, "Supabase: the JWT's subject"),
    "auth.role()": Allowed(BOTH, "Supabase: the JWT's role"),
    "auth.email()": Allowed(BOTH, "Supabase: the JWT's email"),
    "auth.jwt()": Allowed(BOTH, "Supabase: the JWT's claims"),
    "realtime.topic()": Allowed(BOTH, "Supabase Realtime: the channel being authorized"),
    "realtime.send(jsonb,text,text,boolean)": Allowed(
        BOTH, "Supabase Realtime; invoker, its insert meets realtime.messages RLS"
    ),
    "realtime.broadcast_changes(text,text,text,text,text,record,record,text)": Allowed(
        BOTH, "Supabase Realtime; invoker, through realtime.send"
    ),
}

Misuse = Callable[[Connection, Runtime, World], Awaitable[Any]]
MISUSE: dict[str, Misuse] = {
    "app.org_ids()": misuse.org_ids,
    "app.org_ids_with_role(public.member_role)": misuse.org_ids_with_role,
    "app.teammate_ids()": misuse.teammate_ids,
    "app.api_key_id()": misuse.api_key_id,
    "app.create_api_key(uuid,text,text[],text,bytea)": misuse.create_api_key,
    "app.set_channel_credentials(uuid,jsonb)": misuse.set_channel_credentials,
    "app.create_invitation(uuid,text,public.member_role,bytea,interval)": misuse.create_invitation,
    "app.revoke_invitation(uuid)": misuse.revoke_invitation,
    "app.accept_invitation(bytea)": misuse.accept_invitation,
    "app.member_directory(uuid)": misuse.member_directory,
    "app.set_webhook_secret(uuid,text,interval)": misuse.set_webhook_secret,
    "app.replay_event_delivery(bigint)": misuse.replay_event_delivery,
    "app.request_import_cancel(uuid)": misuse.request_import_cancel,
    "public.create_organization(text)": misuse.create_organization,
    "public.search_messages(uuid,text,timestamp with time zone,uuid,integer)": (
        misuse.search_messages
    ),
    "public.search_contacts(uuid,text,timestamp with time zone,uuid,integer)": (
        misuse.search_contacts
    ),
    "public.search_quick_replies(uuid,text,integer)": misuse.search_quick_replies,
}


def unreviewed(found: dict[str, tuple[frozenset[str], bool]]) -> dict[str, list[str]]:
    """Functions whose executors differ from the allowlist (new, or granted wider)."""
    problems: dict[str, list[str]] = {}
    for signature, (roles, _) in sorted(found.items()):
        allowed = ALLOWLIST[signature].roles if signature in ALLOWLIST else frozenset()
        if roles - allowed:
            problems[signature] = sorted(roles - allowed)
    return problems


async def test_only_reviewed_functions_are_executable_by_the_api_roles(db: Connection):
    found = await executable_functions(db)
    assert unreviewed(found) == {}, "revoke from public and grant on purpose, or review it here"
    stale = {s: a.roles for s, a in ALLOWLIST.items() if found.get(s, (frozenset(),))[0] != a.roles}
    assert stale == {}, "the allowlist grants more than the database does: narrow the entry"


async def test_every_allowlisted_security_definer_function_has_a_misuse_test(db: Connection):
    found = await executable_functions(db)
    definers = {s for s, (_, definer) in found.items() if definer}
    assert definers == set(MISUSE)


@pytest.mark.parametrize("signature", sorted(MISUSE))
async def test_a_definer_function_gives_nothing_of_another_organization(
    signature: str, db: Connection, runtime: Runtime, world: World
):
    await MISUSE[signature](db, runtime, world)


async def test_the_suite_catches_a_function_left_executable(db: Connection):
    # the default of every new function: PUBLIC may execute it
    await db.execute("create function app.throwaway() returns int language sql as 'select 1'")
    # in public, Supabase's default privileges grant the API roles explicitly
    await db.execute(
        "create function public.throwaway(org uuid) returns int"
        " language sql security definer set search_path = '' as 'select 1'"
    )
    problems = unreviewed(await executable_functions(db))
    assert problems == {
        "app.throwaway()": ["anon", "authenticated"],
        "public.throwaway(uuid)": ["anon", "authenticated"],
    }
    await db.execute("revoke execute on function app.throwaway() from public")
    await db.execute("revoke execute on function public.throwaway(uuid) from public, anon")
    assert unreviewed(await executable_functions(db)) == {
        "public.throwaway(uuid)": ["authenticated"]
    }


async def test_the_suite_catches_a_function_granted_wider_than_reviewed(db: Connection):
    await db.execute("grant execute on function app.has_role(uuid, public.member_role) to anon")
    await db.execute("grant execute on function app.org_ids() to anon")
    assert unreviewed(await executable_functions(db)) == {
        "app.has_role(uuid,public.member_role)": ["anon"],
        "app.org_ids()": ["anon"],
    }


async def test_anon_executes_nothing_of_ours(db: Connection):
    found = await executable_functions(db)
    ours = {s for s, (roles, _) in found.items() if "anon" in roles}
    assert all(s.startswith(("auth.", "realtime.")) for s in ours), ours
