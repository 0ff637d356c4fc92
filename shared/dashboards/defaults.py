"""The default dashboard of each role, shared with the organization and seeded on first
use: an agent's day, a manager's team, an admin's and an owner's whole business. Managers
edit them like any shared dashboard; deleted, one comes back the next time it is asked for.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shared.db import Connection

Widget = tuple[str, str, str, dict[str, Any], dict[str, Any]]  # title, metric, viz, range, options

_INBOX: list[Widget] = [
    ("Messages in", "messages_received", "timeseries", {"preset": "last_30_days"}, {}),
    ("First response (median)", "first_response_time", "kpi", {"preset": "last_7_days"}, {}),
    ("Busiest hours", "busiest_hours", "heatmap", {"preset": "last_30_days"}, {}),
]
_AGENT: list[Widget] = [
    ("My replies", "replies", "kpi", {"preset": "last_7_days"}, {}),
    ("Conversations I resolved", "conversations_handled", "kpi", {"preset": "last_7_days"}, {}),
    ("My open conversations", "open_load", "kpi", {"preset": "today"}, {}),
    *_INBOX,
]
_MANAGER: list[Widget] = [
    ("Conversations opened", "conversations_opened", "kpi", {"preset": "last_7_days"}, {}),
    ("Conversations resolved", "conversations_resolved", "kpi", {"preset": "last_7_days"}, {}),
    ("SLA hit rate", "sla_hit_rate", "kpi", {"preset": "last_7_days"}, {}),
    ("Replies by agent", "replies", "leaderboard", {"preset": "last_7_days"}, {}),
    ("Open load", "open_load", "bar", {"preset": "today"}, {}),
    ("Resolution time p90", "resolution_time", "bar", {"preset": "last_30_days"},
     {"statistic": "p90", "dimension": "agent"}),
    *_INBOX,
]  # fmt: skip
_OWNER: list[Widget] = [
    ("Open deal value", "open_deal_value", "kpi", {"preset": "today"}, {}),
    ("Forecast", "weighted_forecast", "timeseries", {"preset": "next_12_months"}, {}),
    ("Win rate", "win_rate", "kpi", {"preset": "last_90_days"}, {}),
    ("Funnel", "stage_funnel", "funnel", {"preset": "last_90_days"}, {}),
    ("Campaign delivery", "campaign_delivered_rate", "bar", {"preset": "last_90_days"}, {}),
    ("New contacts by source", "new_contacts", "bar", {"preset": "last_30_days"}, {}),
    *_MANAGER,
]
DEFAULTS: dict[str, tuple[str, list[Widget]]] = {
    "agent": ("My day", _AGENT),
    "manager": ("Team", _MANAGER),
    "admin": ("Overview", _OWNER),
    "owner": ("Overview", _OWNER),
}
COLUMNS = 12
WIDTH, HEIGHT = 4, 3


async def ensure_defaults(*, service: Connection, organization_id: UUID) -> None:
    """Seeds the roles' default dashboards that are missing (as the owner: agents may not
    write shared dashboards). Idempotent under concurrency: the unique index decides."""
    for role, (name, widgets) in DEFAULTS.items():
        dashboard_id = await service.fetchval(
            "insert into public.dashboards (organization_id, name, default_for_role, columns)"
            " values ($1, $2, $3::public.member_role, $4)"
            " on conflict (organization_id, default_for_role) where default_for_role is not null"
            " do nothing returning id",
            organization_id,
            name,
            role,
            COLUMNS,
        )
        if dashboard_id is None:
            continue
        per_row = COLUMNS // WIDTH
        await service.executemany(
            "insert into public.dashboard_widgets (organization_id, dashboard_id, title, metric,"
            " visualization, date_range, grouping, options, x, y, w, h)"
            " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            [
                (
                    organization_id,
                    dashboard_id,
                    title,
                    metric,
                    viz,
                    date_range,
                    "month" if metric == "weighted_forecast" else "day",
                    options,
                    (i % per_row) * WIDTH,
                    (i // per_row) * HEIGHT,
                    WIDTH,
                    HEIGHT,
                )
                for i, (title, metric, viz, date_range, options) in enumerate(widgets)
            ],
        )
