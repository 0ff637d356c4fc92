"""A widget's definition, checked whole: the question it asks (`WidgetQuestion`) and its
plan (`check`).

`check` refuses a bad definition with a 422 naming the problem: an unknown metric,
visualization, dimension or option, a filter the filter language refuses, a range
over two years at day grain.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Literal
from uuid import UUID

from pydantic import Field, ValidationError

from shared.crm.inputs import Strict
from shared.crm.records import catalog_of
from shared.dashboards.ranges import resolve, today_in, whole_hour_offsets
from shared.dashboards.registry import METRICS, Metric
from shared.dashboards.sql import Spec
from shared.db import Connection
from shared.errors import NotFound, Unprocessable
from shared.filters import parse_filter

Visualization = Literal["kpi", "timeseries", "bar", "funnel", "leaderboard", "table", "heatmap"]
Grouping = Literal["day", "week", "month"]
OPTION_KEYS = ("dimension", "statistic", "basis", "pipeline_id", "limit")


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


__all__ = ["Grouping", "Plan", "Visualization", "WidgetQuestion", "check", "question_of"]
