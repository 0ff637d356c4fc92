"""/v1/dashboards (with widgets and their data) and /v1/metrics.

A key has no dashboards of its own: it reads the organization's shared dashboards
(each role's default among them), and write keys (which act as managers) change
them. `/v1/metrics/{metric}` answers a widget's question without saving one. Keys
are not members, so no agent restriction applies to them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from functions._api.common import READ, READ_ONE, WRITE, ReadKey, WriteKey, in_tx
from shared.crm.inputs import Strict
from shared.dashboards import definition, store, widgets
from shared.dashboards.defaults import ensure_defaults
from shared.dashboards.registry import METRICS
from shared.errors import Unprocessable
from shared.web import RuntimeDep

router = APIRouter(tags=["dashboards"])


class Widget(BaseModel):
    id: UUID
    dashboard_id: UUID
    title: str | None
    metric: str
    visualization: str
    filter: dict[str, Any] | None
    date_range: dict[str, Any]
    grouping: str
    options: dict[str, Any]
    x: int
    y: int
    w: int
    h: int
    created_at: datetime
    updated_at: datetime


class Dashboard(BaseModel):
    id: UUID
    organization_id: UUID
    shared: bool
    name: str
    default_for_role: str | None
    columns: int
    created_at: datetime
    updated_at: datetime


class DashboardWithWidgets(Dashboard):
    widgets: list[Widget]


class DashboardList(BaseModel):
    data: list[Dashboard]


class WidgetData(BaseModel):
    widget_id: UUID | None = None
    title: str | None = None
    metric: str
    visualization: str
    unit: str
    timezone: str
    range: dict[str, str] | None
    grouping: str | None
    dimension: str | None
    restricted_to_user: str | None
    data: Any


class NewDashboard(Strict):
    name: str = Field(min_length=1, max_length=120)
    columns: int = Field(default=12, ge=1, le=24, description="The grid's width in cells")


def _json(raw: str | None, what: str) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise Unprocessable(
            f"{what}: not JSON", details=[{"field": what, "message": "not JSON"}]
        ) from None


@router.get("/metrics", responses=READ, summary="List the metrics widgets can show")
async def list_metrics(key: ReadKey) -> dict[str, Any]:
    return {"data": [m.describe() for m in METRICS.values()]}


@router.get(
    "/metrics/{metric}", response_model=WidgetData, responses=READ, summary="A metric's figures"
)
async def metric_data(
    metric: str,
    key: ReadKey,
    runtime: RuntimeDep,
    visualization: definition.Visualization = "kpi",
    preset: Annotated[str | None, Query(max_length=40)] = None,
    date_from: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    date_to: Annotated[str | None, Query(alias="to", max_length=10)] = None,
    grouping: definition.Grouping = "day",
    filter: Annotated[str | None, Query(description="The filter language, as JSON")] = None,
    options: Annotated[
        str | None, Query(description='As JSON: {"dimension": "channel", "statistic": "p90"}')
    ] = None,
) -> Any:
    if date_from is not None or date_to is not None:
        date_range: dict[str, Any] = {"from": date_from, "to": date_to}
    else:
        date_range = {"preset": preset or "last_30_days"}
    question = definition.question_of(
        {
            "metric": metric,
            "visualization": visualization,
            "date_range": date_range,
            "grouping": grouping,
            "filter": _json(filter, "filter"),
            "options": _json(options, "options") or {},
        }
    )
    return await in_tx(
        runtime,
        key,
        lambda conn: widgets.data(
            conn=conn, organization_id=key.organization_id, question=question, user_id=None
        ),
    )


@router.get("/dashboards", response_model=DashboardList, responses=READ, summary="List dashboards")
async def list_dashboards(key: ReadKey, runtime: RuntimeDep) -> Any:
    async with runtime.db.service_conn() as service, service.transaction():
        await ensure_defaults(service=service, organization_id=key.organization_id)
    rows = await in_tx(
        runtime,
        key,
        lambda conn: store.list_dashboards(conn=conn, organization_id=key.organization_id),
    )
    return {"data": rows}


@router.post(
    "/dashboards",
    status_code=201,
    response_model=DashboardWithWidgets,
    responses=WRITE,
    summary="Create a shared dashboard",
)
async def create_dashboard(body: NewDashboard, key: WriteKey, runtime: RuntimeDep) -> Any:
    data = store.DashboardIn(name=body.name, shared=True, columns=body.columns)
    return await in_tx(
        runtime,
        key,
        lambda conn: store.create_dashboard(
            conn=conn, organization_id=key.organization_id, user_id=None, data=data
        ),
    )


@router.get(
    "/dashboards/{dashboard_id}",
    response_model=DashboardWithWidgets,
    responses=READ_ONE,
    summary="Get a dashboard with its widgets",
)
async def get_dashboard(dashboard_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: store.get_dashboard(
            conn=conn, dashboard_id=dashboard_id, organization_id=key.organization_id
        ),
    )


@router.patch(
    "/dashboards/{dashboard_id}",
    response_model=DashboardWithWidgets,
    responses=WRITE,
    summary="Rename a dashboard or change its grid's width",
)
async def update_dashboard(
    dashboard_id: UUID, body: store.DashboardChange, key: WriteKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: store.update_dashboard(
            conn=conn, dashboard_id=dashboard_id, user_id=None, change=body,
            organization_id=key.organization_id,
        ),
    )  # fmt: skip


@router.delete(
    "/dashboards/{dashboard_id}", status_code=204, responses=WRITE, summary="Delete a dashboard"
)
async def delete_dashboard(dashboard_id: UUID, key: WriteKey, runtime: RuntimeDep) -> Response:
    await in_tx(
        runtime,
        key,
        lambda conn: store.delete_dashboard(
            conn=conn, dashboard_id=dashboard_id, user_id=None, organization_id=key.organization_id
        ),
    )
    return Response(status_code=204)


@router.post(
    "/dashboards/{dashboard_id}/widgets",
    status_code=201,
    response_model=Widget,
    responses=WRITE,
    summary="Add a widget",
    description="Checked whole: an unknown metric, visualization, dimension or option, a"
    " filter the filter language refuses, or more than two years at day grain is a 422"
    " naming it.",
)
async def add_widget(
    dashboard_id: UUID, body: store.WidgetIn, key: WriteKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: store.add_widget(
            conn=conn, dashboard_id=dashboard_id, user_id=None, widget=body,
            organization_id=key.organization_id,
        ),
    )  # fmt: skip


@router.patch(
    "/dashboards/{dashboard_id}/widgets/{widget_id}",
    response_model=Widget,
    responses=WRITE,
    summary="Change a widget",
)
async def update_widget(
    dashboard_id: UUID,
    widget_id: UUID,
    body: store.WidgetChange,
    key: WriteKey,
    runtime: RuntimeDep,
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: store.update_widget(
            conn=conn, dashboard_id=dashboard_id, widget_id=widget_id, user_id=None, change=body,
            organization_id=key.organization_id,
        ),
    )  # fmt: skip


@router.delete(
    "/dashboards/{dashboard_id}/widgets/{widget_id}",
    status_code=204,
    responses=WRITE,
    summary="Delete a widget",
)
async def delete_widget(
    dashboard_id: UUID, widget_id: UUID, key: WriteKey, runtime: RuntimeDep
) -> Response:
    await in_tx(
        runtime,
        key,
        lambda conn: store.delete_widget(
            conn=conn, dashboard_id=dashboard_id, widget_id=widget_id, user_id=None,
            organization_id=key.organization_id,
        ),
    )  # fmt: skip
    return Response(status_code=204)


@router.get(
    "/dashboards/{dashboard_id}/widgets/{widget_id}/data",
    response_model=WidgetData,
    responses=READ_ONE,
    summary="A widget's figures",
)
async def widget_data(
    dashboard_id: UUID, widget_id: UUID, key: ReadKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: store.widget_data(
            conn=conn, dashboard_id=dashboard_id, widget_id=widget_id, user_id=None,
            organization_id=key.organization_id,
        ),
    )  # fmt: skip
