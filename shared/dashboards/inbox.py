"""Inbox and team metrics: conversations, messages, response and resolution times, SLA.

Sources, and why each is fast:
  conversation_transitions   openings and status changes (a row each), by an index on
                             (organization_id, at) that holds every column read
  message_rollups,           messages per UTC hour, account and direction, and agents'
  reply_rollups              replies per UTC hour: a year is ~10⁴ rows per account or agent
                             however many messages; raw messages (the covering
                             messages_dashboard_idx) only with a filter, or in a zone whose
                             offset is not whole hours
  sla_clocks                 first-response and resolution clocks the SLA worker stopped,
                             with wall-clock and business-hours seconds (a covering index)
"""

from __future__ import annotations

from shared.dashboards.sql import Dim, Query, channel_dims

STATISTICS = {
    "median": "percentile_cont(0.5) within group (order by {x})",
    "p90": "percentile_cont(0.9) within group (order by {x})",
    "average": "avg({x})",
}
BASES = {"wall": "wall_seconds", "business": "business_seconds"}


def _agent(column: str) -> dict[str, Dim]:
    return {"agent": Dim(f"{column}::text")}


# ---- conversations ----------------------------------------------------------------------------

TRANSITION_DIMS = {**channel_dims("t"), **_agent("t.assignee_id")}


def _transitions(q: Query, condition: str, *, agent: bool = False) -> str:
    where = [
        "t.organization_id = $1::uuid",
        q.in_range("t.at"),
        condition,
        q.conversation_filter("t"),
    ]
    if agent or q.spec.dimension == "agent":
        where += ["t.assignee_id is not null", q.only_user("t.assignee_id")]
    return q.grouped(
        source="public.conversation_transitions t",
        where=where,
        ts="t.at",
        value="count(*)",
        dims=TRANSITION_DIMS,
    )


def conversations_opened(q: Query) -> str:
    return _transitions(q, "t.from_status is null")


def conversations_resolved(q: Query) -> str:
    return _transitions(q, "t.to_status = 'resolved'")


def conversations_reopened(q: Query) -> str:
    return _transitions(q, "t.from_status = 'resolved' and t.to_status <> 'resolved'")


def conversations_handled(q: Query) -> str:
    """Per agent: conversations resolved while assigned to them."""
    return _transitions(q, "t.to_status = 'resolved'", agent=True)


def open_load(q: Query) -> str:
    """Per agent, now: unresolved conversations assigned to them."""
    return q.grouped(
        source="public.conversations v",
        where=[
            "v.organization_id = $1::uuid",
            "v.assignee_id is not null",
            "v.status <> 'resolved'",
            q.only_user("v.assignee_id"),
            q.filter(),
        ],
        ts=None,
        value="count(*)",
        dims={**channel_dims("v"), **_agent("v.assignee_id")},
    )


# ---- messages ---------------------------------------------------------------------------------


def _rolled_up(q: Query, direction: str, agent: bool) -> str:
    """From the hourly rollups, summed straight into local buckets per account or agent
    (stripes merged): one aggregation over the hours, then the dimension's join over the
    few rows left."""
    column, table = (
        ("sender_id", "reply_rollups") if agent else ("channel_account_id", "message_rollups")
    )
    where = [
        "r.organization_id = $1::uuid",
        q.in_range("r.bucket"),
        q.only_user("r.sender_id") if agent else f"r.direction = '{direction}'",
    ]
    inner = (
        f"select {q.bucket('r.bucket')} as bucket, r.organization_id, r.{column},"
        f" sum(r.messages) as messages from public.{table} r where {' and '.join(where)}"
        " group by 1, 2, 3"
    )
    dims = {**channel_dims("r"), **_agent("r.sender_id")}
    dim = dims[q.spec.dimension] if q.spec.dimension else Dim("null::text")
    return (
        f"select r.bucket, {dim.key} as key, sum(r.messages)::bigint as value"
        f" from ({inner}) r {dim.join} group by 1, 2"
    )


def _messages(q: Query, direction: str, *, replies: bool = False) -> str:
    agent = replies or q.spec.dimension == "agent"
    if q.spec.filter is None and q.spec.rollups:
        return _rolled_up(q, direction, agent)
    where = [
        "m.organization_id = $1::uuid",
        q.in_range("m.created_at"),
        f"m.direction = '{direction}'",
        q.conversation_filter("m"),
    ]
    if agent:
        where += ["m.sender_type = 'user'", "m.sender_id is not null", q.only_user("m.sender_id")]
    return q.grouped(
        source="public.messages m",
        where=where,
        ts="m.created_at",
        value="count(*)",
        dims={**channel_dims("m"), **_agent("m.sender_id")},
    )


def messages_received(q: Query) -> str:
    return _messages(q, "inbound")


def messages_sent(q: Query) -> str:
    return _messages(q, "outbound")


def replies(q: Query) -> str:
    """Per agent: messages they sent."""
    return _messages(q, "outbound", replies=True)


def busiest_hours(q: Query) -> str:
    """Messages received by local weekday (ISO, Monday 1) and hour: key "weekday:hour"."""
    if q.spec.filter is None and q.spec.rollups:
        hours = (
            "select r.bucket as at, sum(r.messages) as n from public.message_rollups r"
            f" where r.organization_id = $1::uuid and {q.in_range('r.bucket')}"
            " and r.direction = 'inbound' group by 1"
        )
    else:
        hours = (
            "select r.created_at as at, 1 as n from public.messages r"
            f" where r.organization_id = $1::uuid and {q.in_range('r.created_at')}"
            f" and r.direction = 'inbound' and {q.conversation_filter('r')}"
        )
    local = f"(h.at at time zone {q.tz})"
    key = f"extract(isodow from {local})::int || ':' || extract(hour from {local})::int"
    return (
        f"select null::timestamp as bucket, {key} as key, sum(h.n)::bigint as value"
        f" from ({hours}) h group by 2"
    )


# ---- clocks -----------------------------------------------------------------------------------


def _clock_dims() -> dict[str, Dim]:
    conversation = (
        "join public.conversations cv on cv.organization_id = k.organization_id"
        " and cv.id = k.conversation_id"
    )
    return {
        "channel": Dim(
            "a.channel::text",
            f"{conversation} join public.channel_accounts a"
            " on a.organization_id = cv.organization_id and a.id = cv.channel_account_id",
        ),
        "channel_account": Dim("cv.channel_account_id::text", conversation),
        "agent": Dim("cv.assignee_id::text", conversation),
        "kind": Dim("k.kind"),
    }


def _clocks(q: Query, kinds: str, value: str, extra: str = "true") -> str:
    where = [
        "k.organization_id = $1::uuid",
        f"k.kind in ({kinds})",
        "k.stopped_at is not null",
        q.in_range("k.stopped_at"),
        "k.outcome in ('met', 'breached')",
        extra,
        q.conversation_filter("k"),
    ]
    if q.spec.dimension == "agent":
        where += ["cv.assignee_id is not null", q.only_user("cv.assignee_id")]
    return q.grouped(
        source="public.sla_clocks k",
        where=where,
        ts="k.stopped_at",
        value=value,
        dims=_clock_dims(),
    )


def _duration(q: Query, kind: str) -> str:
    statistic = STATISTICS[q.spec.options.get("statistic", "median")]
    seconds = "k." + BASES[q.spec.options.get("basis", "wall")]
    return _clocks(q, f"'{kind}'", statistic.format(x=seconds) + "::float8")


def first_response_time(q: Query) -> str:
    """Seconds to the first answer (the first-response clocks an agent's reply stopped)."""
    return _duration(q, "first_response")


def resolution_time(q: Query) -> str:
    return _duration(q, "resolution")


def sla_hit_rate(q: Query) -> str:
    """Of the clocks with a target that ended (met or breached), the share met."""
    return _clocks(
        q,
        "'first_response', 'next_response', 'resolution'",
        "avg((k.outcome = 'met')::int)::float8",
        "k.due_at is not null",
    )
