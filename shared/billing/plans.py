"""Plans, an organization's subscription and usage, and the feature check.

Every read runs on the caller's connection: under a member's RLS it sees only
their organizations (another organization is a 404), as the service it sees all.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from shared.db import Connection, fetch_found
from shared.errors import PaymentRequired

Feature = Literal["api", "bots", "campaigns", "sla", "imports"]
FEATURES: tuple[Feature, ...] = ("api", "bots", "campaigns", "sla", "imports")

# What counts against each limit, as the database's triggers count it. A limited
# table added later (bot_flows) adds its line here and its trigger in a migration.
USAGE_SQL: dict[str, str] = {
    "seats": "select count(*) from public.organization_members where organization_id = $1",
    "channel_accounts": "select count(*) from public.channel_accounts where organization_id = $1",
    "contacts": "select count(*) from public.contacts where organization_id = $1",
    "active_campaigns": "select count(*) from public.campaigns where organization_id = $1"
    " and status in ('scheduled', 'running')",
    "automation_rules": "select count(*) from public.automation_rules where organization_id = $1",
    "bot_flows": "select count(*) from public.bot_flows where organization_id = $1",
    "api_keys": "select count(*) from public.api_keys where organization_id = $1"
    " and revoked_at is null",
}
OUTBOUND = "outbound_messages_per_period"

_PLAN_COLUMNS = (
    "p.code, p.name, p.position, p.limits, p.features,"
    " cardinality(p.stripe_price_ids) > 0 as purchasable"
)
# The subscription with its effective plan (free when lapsed, past_due after grace).
_SUBSCRIPTION = """
    select s.organization_id, s.plan_code as plan, s.status, s.current_period_start,
           s.current_period_end, s.cancel_at_period_end, s.grace_until,
           p.code as effective_plan, p.name as effective_plan_name, p.limits, p.features,
           app.usage_period(s.current_period_start, s.current_period_end) as period_start
      from public.subscriptions s
      join public.plans p on p.code = app.effective_plan_code(s.plan_code, s.status, s.grace_until)
     where s.organization_id = $1
"""


async def list_plans(*, conn: Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"select {_PLAN_COLUMNS} from public.plans p order by p.position, p.code"
    )
    return [dict(r) for r in rows]


async def subscription_of(*, conn: Connection, organization_id: UUID) -> dict[str, Any]:
    row = await fetch_found(conn, "No such organization", _SUBSCRIPTION, organization_id)
    del row["period_start"]
    return row


async def usage_of(*, conn: Connection, organization_id: UUID) -> dict[str, Any]:
    """Each limit with its value (null: unlimited) and current usage, in one query."""
    sub = await fetch_found(conn, "No such organization", _SUBSCRIPTION, organization_id)
    counts = ", ".join(f"({sql}) as {metric}" for metric, sql in USAGE_SQL.items())
    row = await conn.fetchrow(
        f"select {counts}, (select c.count from public.usage_counters c"
        "  where c.organization_id = $1 and c.metric = 'outbound_messages'"
        "    and c.period_start = $2) as outbound",
        organization_id,
        sub["period_start"],
    )
    assert row is not None
    used = {metric: row[metric] for metric in USAGE_SQL} | {OUTBOUND: row["outbound"] or 0}
    limits = sub["limits"]
    return {
        "organization_id": organization_id,
        "plan": sub["effective_plan"],
        "period_start": sub["period_start"],
        "limits": {metric: {"limit": limits.get(metric), "usage": n} for metric, n in used.items()},
    }


async def require_feature(*, conn: Connection, organization_id: UUID, feature: Feature) -> None:
    """Refuses (402 `feature_unavailable`, naming the feature and the plan) when the
    organization's effective plan lacks `feature`. Call it before the work it gates,
    on the request's connection (a member's or the service's)."""
    row = await fetch_found(
        conn,
        "No such organization",
        "select p.code, p.name, $2 = any (p.features) as enabled"
        "  from public.subscriptions s"
        "  join public.plans p on p.code = app.effective_plan_code(s.plan_code, s.status,"
        "   s.grace_until)"
        " where s.organization_id = $1",
        organization_id,
        feature,
    )
    if not row["enabled"]:
        raise PaymentRequired(
            f"The {row['name']} plan does not include {feature}; upgrade the plan to use it",
            code="feature_unavailable",
            details={"feature": feature, "plan": row["code"]},
        )
