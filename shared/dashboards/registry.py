"""The metrics a widget can show: name → SQL builder, what it is filtered on, its
dimensions, units and visualizations. Adding a metric is one entry here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.crm.entities import CONTACTS, CONVERSATIONS, DEALS, Entity
from shared.dashboards import audience, inbox, pipeline
from shared.dashboards.sql import Query

TIMED = frozenset({"kpi", "timeseries", "bar", "leaderboard", "table"})
NOW = frozenset({"kpi", "bar", "leaderboard", "table"})
CHANNEL_DIMS = ("channel", "channel_account", "agent")


@dataclass(frozen=True)
class Metric:
    name: str
    group: str  # inbox, team, pipeline, campaigns, contacts
    title: str
    unit: str  # count, seconds, ratio, amount, days
    build: Callable[[Query], str]
    entity: Entity | None  # what the widget's filter is written against; None: no filter
    dimensions: tuple[str, ...]
    visualizations: frozenset[str] = TIMED
    timed: bool = True  # False: a figure of now; the range does not apply
    default_dimension: str | None = None  # for bar, leaderboard and table
    team: bool = False  # per-agent figures: agents may see only their own
    options: dict[str, tuple[str, ...]] | None = None  # option → allowed values
    # a KPI of a count sums its buckets; other units are computed over the whole range
    additive: bool = True

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "title": self.title,
            "unit": self.unit,
            "filter_on": self.entity.name if self.entity else None,
            "dimensions": list(self.dimensions),
            "visualizations": sorted(self.visualizations),
            "timed": self.timed,
            "options": {k: list(v) for k, v in (self.options or {}).items()},
        }


DURATION_OPTIONS = {"statistic": tuple(inbox.STATISTICS), "basis": tuple(inbox.BASES)}


def _metrics() -> list[Metric]:
    conv, deal = CONVERSATIONS, DEALS
    inbox_dims = CHANNEL_DIMS
    return [
        Metric("conversations_opened", "inbox", "Conversations opened", "count",
               inbox.conversations_opened, conv, inbox_dims, default_dimension="channel"),
        Metric("conversations_resolved", "inbox", "Conversations resolved", "count",
               inbox.conversations_resolved, conv, inbox_dims, default_dimension="channel"),
        Metric("conversations_reopened", "inbox", "Conversations reopened", "count",
               inbox.conversations_reopened, conv, inbox_dims, default_dimension="channel"),
        Metric("messages_received", "inbox", "Messages in", "count", inbox.messages_received,
               conv, ("channel", "channel_account"), default_dimension="channel"),
        Metric("messages_sent", "inbox", "Messages out", "count", inbox.messages_sent, conv,
               ("channel", "channel_account", "agent"),
               default_dimension="channel"),
        Metric("first_response_time", "inbox", "First response time", "seconds",
               inbox.first_response_time, conv, inbox_dims, default_dimension="channel",
               options=DURATION_OPTIONS, additive=False),
        Metric("resolution_time", "inbox", "Resolution time", "seconds", inbox.resolution_time,
               conv, inbox_dims, default_dimension="channel", options=DURATION_OPTIONS,
               additive=False),
        Metric("sla_hit_rate", "inbox", "SLA hit rate", "ratio", inbox.sla_hit_rate, conv,
               (*inbox_dims, "kind"), default_dimension="kind", additive=False),
        Metric("busiest_hours", "inbox", "Busiest hours (messages in)", "count",
               inbox.busiest_hours, conv, (), visualizations=frozenset({"heatmap"})),
        # team: per agent
        Metric("conversations_handled", "team", "Conversations handled", "count",
               inbox.conversations_handled, conv, ("agent",), default_dimension="agent",
               team=True),
        Metric("replies", "team", "Replies", "count", inbox.replies, conv, ("agent",),
               default_dimension="agent", team=True),
        Metric("open_load", "team", "Open conversations", "count", inbox.open_load, conv,
               ("agent", "channel", "channel_account"), visualizations=NOW, timed=False,
               default_dimension="agent", team=True),
        # pipeline
        Metric("open_deal_value", "pipeline", "Open deal value", "amount",
               pipeline.open_deal_value, deal, ("pipeline", "stage", "agent"),
               visualizations=NOW, timed=False, default_dimension="stage"),
        Metric("weighted_forecast", "pipeline", "Weighted forecast", "amount",
               pipeline.weighted_forecast, deal, ("pipeline", "stage", "agent")),
        Metric("win_rate", "pipeline", "Win rate", "ratio", pipeline.win_rate, deal,
               ("pipeline", "agent"), default_dimension="pipeline", additive=False),
        Metric("stage_funnel", "pipeline", "Stage funnel", "count", pipeline.stage_funnel, deal,
               ("stage",), visualizations=frozenset({"funnel", "bar", "table"}),
               default_dimension="stage"),
        Metric("deal_age_by_stage", "pipeline", "Average deal age", "days",
               pipeline.deal_age_by_stage, deal, ("stage", "pipeline", "agent"),
               visualizations=NOW, timed=False, default_dimension="stage", additive=False),
        Metric("deals_won_lost", "pipeline", "Won and lost by reason", "count",
               pipeline.deals_won_lost, deal, ("reason", "outcome", "pipeline", "agent"),
               default_dimension="reason"),
        # campaigns
        *[
            Metric(name, "campaigns", name.removeprefix("campaign_").replace("_", " ").capitalize(),
                   "ratio", audience.campaign_rate(name), None, ("campaign",),
                   default_dimension="campaign", additive=False)
            for name in audience.RATES
        ],
        # contacts
        Metric("new_contacts", "contacts", "New contacts", "count", audience.new_contacts,
               CONTACTS, ("source", "channel", "agent"), default_dimension="source"),
    ]  # fmt: skip


METRICS: dict[str, Metric] = {m.name: m for m in _metrics()}
