"""A widget's definition, checked whole, and its data.

`check` refuses a bad definition with a 422 naming the problem (an unknown metric,
visualization, dimension or option, a filter the filter language refuses, a range
over two years at day grain). `data` runs the metric under the caller's RLS and
shapes the rows for the visualization.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from pydantic import Field, ValidationError

from shared.crm.inputs import Strict
from shared.crm.records import catalog_of
from shared.dashboards.ranges import GRAINS, Window, resolve, today_in, whole_hour_offsets
from shared.dashboards.registry import METRICS, Metric
from shared.dashboards.sql import Query, Spec
from shared.db import Connection
from shared.errors import NotFound, Unprocessable
from shared.filters import parse_filter

Visualization = Literal["kpi", "timeseries", "bar", "funnel", "leaderboard", "table", "heatmap"]
Grouping = Literal["day", "week", "month"]
OPTION_KEYS = ("dimension", "statistic", "basis", "pipeline_id", "limit")
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


class WidgetQuestion(Strict):
    """What a widget shows (also `/v1/metrics/{metric}`'s parameters)."""

    metric: str = Field(max_length=63, description="A metric's name: GET …/metrics lists them")
    visualization: Visualization
    filter: dict[str, Any] | None = Field(
        default=None, description="The filter language, on the metric's `filter_on` records"
    )
    date_range: dict[str, Any] = Field(
        default_factory=lambda: {"preset": "last_30_days"},
        description='{"preset": "last_30_days"} or {"from": "2026-01-01", "to": "2026-03-31"}'
        " (local dates of the organization's timezone, inclusive)",
    )
    grouping: Grouping = "day"
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="dimension (bar, leaderboard, table, series), statistic (median, p90,"
        " average) and basis (wall, business) for times, pipeline_id (funnel), limit",
    )


def question_of(raw: dict[str, Any]) -> WidgetQuestion:
    """A widget's question from a stored row or query parameters; a 422 naming the first
    problem (a row written through PostgREST can hold anything)."""
    try:
        return WidgetQuestion.model_validate(
            {k: raw[k] for k in WidgetQuestion.model_fields if k in raw}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"]) or "widget"
        raise _bad(place, first["msg"]) from exc


def _bad(field: str, message: str, code: str = "validation_error") -> Unprocessable:
    return Unprocessable(
        f"{field}: {message}", details=[{"field": field, "message": message}], code=code
    )


@dataclass(frozen=True)
class Plan:
    metric: Metric
    visualization: str
    spec: Spec
    previous: Spec | None  # the KPI's comparison
    caller_role: str | None = None  # a member's role (None: the owner or a key)
    agents_see_team: bool = True


async def _organization(conn: Connection, organization_id: UUID) -> dict[str, Any]:
    # the caller's role comes along: a round trip less for an agent's team figures
    row = await conn.fetchrow(
        "select o.timezone, o.agents_see_team_metrics, (select m.role::text"
        "   from public.organization_members m where m.organization_id = o.id"
        "   and m.user_id = (select auth.uid())) as caller_role"
        " from public.organizations o where o.id = $1",
        organization_id,
    )
    if row is None:
        raise NotFound("No such organization")
    return dict(row)


def _options(metric: Metric, visualization: str, raw: dict[str, Any]) -> dict[str, Any]:
    for key in raw:
        if key not in OPTION_KEYS:
            raise _bad(f"options.{key}", f"unknown option; known: {', '.join(OPTION_KEYS)}")
    options = dict(raw)
    for key, allowed in (metric.options or {}).items():
        if key in options and options[key] not in allowed:
            raise _bad(f"options.{key}", f"one of {', '.join(allowed)}")
    for key in ("statistic", "basis"):
        if key in options and key not in (metric.options or {}):
            raise _bad(f"options.{key}", f"{metric.name} takes no {key}")
    if "limit" in options and not (
        isinstance(options["limit"], int) and 1 <= options["limit"] <= 100
    ):
        raise _bad("options.limit", "a whole number from 1 to 100")
    if "pipeline_id" in options:
        try:
            options["pipeline_id"] = UUID(str(options["pipeline_id"]))
        except ValueError:
            raise _bad("options.pipeline_id", "a pipeline's id") from None
    dimension = options.get("dimension")
    if dimension is not None and dimension not in metric.dimensions:
        known = ", ".join(metric.dimensions) or "none"
        raise _bad(
            "options.dimension", f"{metric.name} has no dimension {dimension!r}; known: {known}"
        )
    if visualization in ("bar", "leaderboard", "table", "funnel") and dimension is None:
        options["dimension"] = metric.default_dimension
    if visualization == "leaderboard" and options["dimension"] != "agent":
        if "agent" not in metric.dimensions:
            raise _bad("visualization", f"{metric.name} has no per-agent figures to rank")
        options["dimension"] = "agent"
    return options


async def check(
    *, conn: Connection, organization_id: UUID, question: WidgetQuestion, today: date | None = None
) -> Plan:
    """The widget's plan, or a 422 naming what is wrong with its definition."""
    metric = METRICS.get(question.metric)
    if metric is None:
        raise _bad(
            "metric",
            f"unknown metric {question.metric!r}; known: {', '.join(METRICS)}",
            "unknown_metric",
        )
    if question.visualization not in metric.visualizations:
        raise _bad(
            "visualization",
            f"{metric.name} is shown as {', '.join(sorted(metric.visualizations))}",
        )
    options = _options(metric, question.visualization, question.options)
    org = await _organization(conn, organization_id)
    timezone = org["timezone"]
    grain = question.grouping if question.visualization == "timeseries" else None
    window = resolve(
        question.date_range,
        today=today or today_in(timezone),
        grain=question.grouping if question.visualization == "timeseries" else None,
    )
    parsed, catalog = None, None
    if question.filter is not None:
        if metric.entity is None:
            raise _bad("filter", f"{metric.name} takes no filter")
        catalog = await catalog_of(conn=conn, organization_id=organization_id, entity=metric.entity)
        parsed = parse_filter(question.filter, catalog)
    dimension = options.get("dimension")
    if question.visualization == "kpi":
        dimension = None
    spec = Spec(
        organization_id=organization_id,
        timezone=timezone,
        window=window,
        grain=grain,
        dimension=dimension,
        filter=parsed,
        catalog=catalog,
        options=options,
        rollups=whole_hour_offsets(timezone, window),
    )
    previous = None
    if question.visualization == "kpi" and metric.timed:
        back = window.previous()
        previous = replace(spec, window=back, rollups=whole_hour_offsets(timezone, back))
    return Plan(
        metric,
        question.visualization,
        spec,
        previous,
        org["caller_role"],
        org["agents_see_team_metrics"],
    )


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


async def _kpi(conn: Connection, plan: Plan) -> dict[str, Any]:
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
    row = await conn.fetchrow(sql, *query.params.values)
    assert row is not None
    empty = 0 if plan.metric.additive else None
    value, previous = (
        (_number(row[f"v{i}"]) if row[f"n{i}"] else empty) if i < len(parts) else None
        for i in range(2)
    )
    change = (value - previous) / previous if value is not None and previous else None
    return {"value": value, "previous": previous, "change": change}


def _number(value: Any) -> float | int | None:
    if value is None:
        return None
    return int(value) if isinstance(value, int) else float(value)


def _total(rows: list[Any]) -> float | int | None:
    values = [r["value"] for r in rows if r["value"] is not None]
    return _number(sum(values)) if values else None


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


__all__ = ["GRAINS", "Plan", "WidgetQuestion", "check", "data"]
