"""/functions/v1/dashboards — dashboards of widgets over the organization's metrics
(members' tokens).

GET    /metrics                          the metrics: units, dimensions, visualizations
GET    /?organization_id=…               your dashboards and the shared ones (each
                                         role's default is seeded on first use)
GET    /default?organization_id=…        your role's default dashboard, with its widgets
POST   /                                 {organization_id, name, shared?, columns?}
                                         own: any member; shared: managers+
GET    /{id}                             with its widgets
PATCH  /{id}, DELETE /{id}               own: its owner; shared: managers+
POST   /{id}/widgets                     {metric, visualization, filter?, date_range?,
                                          grouping?, options?, title?, x, y, w, h}
PATCH  /{id}/widgets/{widget_id}, DELETE /{id}/widgets/{widget_id}
GET    /{id}/widgets/{widget_id}/data    the widget's figures
POST   /data                             {organization_id, metric, visualization, …}:
                                         a widget's figures without saving it
PUT    /settings                         {organization_id, agents_see_team_metrics} admins

A bad widget (unknown metric, visualization or dimension, a filter the filter
language refuses, more than two years at day grain) is a 422 naming it, and nothing
is saved. Agents see their teammates' figures (team metrics, per-agent breakdowns)
only where the organization allows it; otherwise only their own.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import Field

from shared import members
from shared.crm.inputs import Strict
from shared.dashboards import definition, store, widgets
from shared.dashboards.defaults import ensure_defaults
from shared.dashboards.registry import METRICS
from shared.web import CurrentUser, RuntimeDep, function_app

router = APIRouter()


class NewDashboard(store.DashboardIn):
    organization_id: UUID


class AdHoc(definition.WidgetQuestion):
    organization_id: UUID


class TeamSetting(Strict):
    organization_id: UUID
    agents_see_team_metrics: bool = Field(
        description="Agents see every agent's figures; otherwise only their own"
    )


async def _seed(runtime: RuntimeDep, user: CurrentUser, organization_id: UUID) -> None:
    async with runtime.db.user_tx(user) as conn:
        await store.require_member(conn, organization_id, user.user_id)
    async with runtime.db.service_conn() as service, service.transaction():
        await ensure_defaults(service=service, organization_id=organization_id)


@router.get("/metrics")
async def metrics(user: CurrentUser) -> dict[str, Any]:
    return {"data": [m.describe() for m in METRICS.values()]}


@router.get("/")
async def list_dashboards(
    organization_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    await _seed(runtime, user, organization_id)
    async with runtime.db.user_tx(user) as conn:
        return {"data": await store.list_dashboards(conn=conn, organization_id=organization_id)}


@router.get("/default")
async def default_dashboard(
    organization_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    await _seed(runtime, user, organization_id)
    async with runtime.db.user_tx(user) as conn:
        role = await members.require_role(
            conn=conn, organization_id=organization_id, at_least="agent"
        )
        return await store.default_dashboard(conn=conn, organization_id=organization_id, role=role)


@router.post("/", status_code=201)
async def create(body: NewDashboard, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await store.create_dashboard(
            conn=conn, organization_id=body.organization_id, user_id=user.user_id, data=body
        )


@router.post("/data")
async def ad_hoc(body: AdHoc, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    question = definition.WidgetQuestion.model_validate(
        body.model_dump(exclude={"organization_id"})
    )
    async with runtime.db.user_tx(user) as conn:
        await store.require_member(conn, body.organization_id, user.user_id)
        return await widgets.data(
            conn=conn, organization_id=body.organization_id, question=question, user_id=user.user_id
        )


@router.put("/settings")
async def team_setting(body: TeamSetting, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        await members.require_role(
            conn=conn, organization_id=body.organization_id, at_least="admin"
        )
        await conn.execute(
            "update public.organizations set agents_see_team_metrics = $2 where id = $1",
            body.organization_id,
            body.agents_see_team_metrics,
        )
    return body.model_dump(mode="json")


@router.get("/{dashboard_id}")
async def get(dashboard_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await store.get_dashboard(conn=conn, dashboard_id=dashboard_id)


@router.patch("/{dashboard_id}")
async def update(
    dashboard_id: UUID, body: store.DashboardChange, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await store.update_dashboard(
            conn=conn, dashboard_id=dashboard_id, user_id=user.user_id, change=body
        )


@router.delete("/{dashboard_id}", status_code=204)
async def delete(dashboard_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> Response:
    async with runtime.db.user_tx(user) as conn:
        await store.delete_dashboard(conn=conn, dashboard_id=dashboard_id, user_id=user.user_id)
    return Response(status_code=204)


@router.post("/{dashboard_id}/widgets", status_code=201)
async def add_widget(
    dashboard_id: UUID, body: store.WidgetIn, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await store.add_widget(
            conn=conn, dashboard_id=dashboard_id, user_id=user.user_id, widget=body
        )


@router.patch("/{dashboard_id}/widgets/{widget_id}")
async def update_widget(
    dashboard_id: UUID,
    widget_id: UUID,
    body: store.WidgetChange,
    user: CurrentUser,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await store.update_widget(
            conn=conn, dashboard_id=dashboard_id, widget_id=widget_id, user_id=user.user_id,
            change=body,
        )  # fmt: skip


@router.delete("/{dashboard_id}/widgets/{widget_id}", status_code=204)
async def delete_widget(
    dashboard_id: UUID, widget_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> Response:
    async with runtime.db.user_tx(user) as conn:
        await store.delete_widget(
            conn=conn, dashboard_id=dashboard_id, widget_id=widget_id, user_id=user.user_id
        )
    return Response(status_code=204)


@router.get("/{dashboard_id}/widgets/{widget_id}/data")
async def widget_data(
    dashboard_id: UUID, widget_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await store.widget_data(
            conn=conn, dashboard_id=dashboard_id, widget_id=widget_id, user_id=user.user_id
        )


app = function_app(router, name="dashboards")
