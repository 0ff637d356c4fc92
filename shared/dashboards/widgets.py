"""A widget's data: its plan (shared/dashboards/definition.py) run under the caller's
RLS, and the rows shaped for the visualization."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from shared.dashboards.definition import Plan, WidgetQuestion, check
from shared.dashboards.ranges import Window
from shared.dashboards.registry import Metric
from shared.dashboards.sql import Query, Spec
from shared.db import Connection

LABELS = {
    "agent": "select id::text, coalesce(full_name, email, id::text) from public.profiles"
    " where id = any($2::uuid[]) and $1::uuid is not null",
    "channel_account": "select id::text, name from public.channel_accounts"
    " where organization_id = $1 and id = any($2::uuid[])",
    "pipeline": "select id::text, name from public.pipelines"
    " where organization_id = $1 and id = any($2::uuid[])",
    "stage": "select id::text, name, position from public.stages"
    " where organization_id = $1 and id = any($2::uuid[])",
    "campaign": "select id::text, name from public.campaigns"
    " where organization_id = $1 and id = any($2::uuid[])",
}


def _restrict(plan: Plan, user_id: UUID | None) -> Plan:
    """An agent sees team figures of others only where the organization allows it."""
    spec = plan.spec
    if user_id is None or not (plan.metric.team or spec.dimension == "agent"):
        return plan
    if plan.caller_role != "agent" or plan.agents_see_team:
        return plan
    previous = plan.previous and replace(plan.previous, only_user=user_id)
    return replace(plan, spec=replace(spec, only_user=user_id), previous=previous)


async def _rows(conn: Connection, spec: Spec, metric: Metric) -> list[Any]:
    query = Query(spec)
    sql = metric.build(query)
    return list(await conn.fetch(sql, *query.params.values))


def kpi_statement(plan: Plan) -> tuple[str, list[Any]]:
    """The figure and the previous period's in one statement: under RLS each statement
    pays the policies' membership lookups, a large share of a rollup KPI's cost."""
    query = Query(plan.spec)
    parts = [plan.metric.build(query)]
    if plan.previous is not None:
        parts.append(plan.metric.build(Query(plan.previous, query.params)))
    # a KPI's statement gives one row, or none where nothing happened (a count of 0)
    sql = "select * from " + " cross join ".join(
        f"(select count(*) as n{i}, (array_agg(value))[1] as v{i} from ({part}) r) a{i}"
        for i, part in enumerate(parts)
    )
    return sql, query.params.values


async def _kpi(conn: Connection, plan: Plan) -> dict[str, Any]:
    sql, params = kpi_statement(plan)
    row = await conn.fetchrow(sql, *params)
    assert row is not None
    empty = 0 if plan.metric.additive else None
    value, previous = (
        (_number(row[f"v{i}"]) if row[f"n{i}"] else empty) if 2 * i < len(row) else None
        for i in range(2)
    )
    change = (value - previous) / previous if value is not None and previous else None
    return {"value": value, "previous": previous, "change": change}


def _number(value: Any) -> float | int | None:
    if value is None:
        return None
    return int(value) if isinstance(value, int) else float(value)


def buckets(window: Window, grain: str) -> list[date]:
    """Every local bucket the window touches, in order."""
    if grain == "day":
        first = window.start
    elif grain == "week":
        first = window.start - timedelta(days=window.start.weekday())
    else:
        first = window.start.replace(day=1)
    out, current = [], first
    while current <= window.end:
        out.append(current)
        if grain == "day":
            current += timedelta(days=1)
        elif grain == "week":
            current += timedelta(days=7)
        else:
            current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
    return out


async def _labels(conn: Connection, spec: Spec, keys: list[str]) -> dict[str, dict[str, Any]]:
    sql = LABELS.get(spec.dimension or "")
    ids = [k for k in keys if k and len(k) == 36]
    if sql is None or not ids:
        return {}
    rows = await conn.fetch(sql, spec.organization_id, ids)
    return {r[0]: {"label": r[1], **({"position": r[2]} if len(r) > 2 else {})} for r in rows}


async def data(
    *, conn: Connection, organization_id: UUID, question: WidgetQuestion, user_id: UUID | None
) -> dict[str, Any]:
    plan = _restrict(
        await check(conn=conn, organization_id=organization_id, question=question), user_id
    )
    spec, metric = plan.spec, plan.metric
    answer: dict[str, Any] = {
        "metric": metric.name,
        "visualization": plan.visualization,
        "unit": metric.unit,
        "timezone": spec.timezone,
        "range": {"from": spec.window.start.isoformat(), "to": spec.window.end.isoformat()}
        if metric.timed
        else None,
        "grouping": spec.grain,
        "dimension": spec.dimension,
        "restricted_to_user": str(spec.only_user) if spec.only_user else None,
    }
    if plan.visualization == "kpi":
        answer["data"] = await _kpi(conn, plan)
        return answer
    rows = await _rows(conn, spec, metric)
    labels = await _labels(conn, spec, [r["key"] for r in rows])
    if plan.visualization == "timeseries":
        answer["data"] = _series(rows, spec, metric, labels)
    elif plan.visualization == "heatmap":
        counts = {r["key"]: _number(r["value"]) for r in rows}
        answer["data"] = [
            {"weekday": d, "hour": h, "value": counts.get(f"{d}:{h}", 0)}
            for d in range(1, 8)
            for h in range(24)
        ]
    else:
        answer["data"] = _ranked(rows, spec, plan.visualization, labels, metric)
    return answer


def _series(
    rows: list[Any], spec: Spec, metric: Metric, labels: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    assert spec.grain is not None
    by_key: dict[Any, dict[date, Any]] = {}
    for r in rows:
        bucket: datetime = r["bucket"]
        by_key.setdefault(r["key"], {})[bucket.date()] = _number(r["value"])
    if not by_key and metric.additive:
        by_key[None] = {}
    empty = 0 if metric.additive else None
    return [
        {
            "key": key,
            "label": labels.get(key, {}).get("label", key) if key else None,
            "points": [
                {"bucket": b.isoformat(), "value": values.get(b, empty)}
                for b in buckets(spec.window, spec.grain)
            ],
        }
        for key, values in sorted(by_key.items(), key=lambda kv: str(kv[0]))
    ]


def _ranked(
    rows: list[Any],
    spec: Spec,
    visualization: str,
    labels: dict[str, dict[str, Any]],
    metric: Metric,
) -> list[dict[str, Any]]:
    items = [
        {
            "key": r["key"],
            "label": labels.get(r["key"], {}).get("label", r["key"]),
            "value": _number(r["value"]),
        }
        for r in rows
    ]
    if visualization == "funnel" or (
        spec.dimension == "stage" and "won" in {i["key"] for i in items}
    ):
        items.sort(key=lambda i: labels.get(i["key"], {}).get("position", 1 << 30))
        for before, step in zip([None, *items], items, strict=False):
            step["conversion"] = (
                step["value"] / before["value"] if before and before["value"] else None
            )
        return items
    # the most first; for times the quickest first (no figure last either way)
    sign = 1 if metric.unit in ("seconds", "days") else -1
    items.sort(key=lambda i: (i["value"] is None, sign * (i["value"] or 0), str(i["key"])))
    if visualization == "leaderboard":
        items = items[: spec.options.get("limit", 10)]
    return items


__all__ = ["buckets", "data", "kpi_statement"]
