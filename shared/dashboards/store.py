"""Dashboards and their widgets, inside the caller's RLS transaction.

A member's own dashboards are theirs alone; shared ones (owner_user_id null) are read
by every member and written by managers and up (and write keys, which act as
managers and have no dashboards of their own). The policies say the same; these
functions check it first so the answer says why. A widget is checked whole
(`definition.check`) before it is saved, and must fit the dashboard's grid.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field

from shared import members
from shared.crm.inputs import Strict
from shared.dashboards import definition, widgets
from shared.dashboards.definition import WidgetQuestion
from shared.db import Connection, fetch_found
from shared.errors import Unprocessable

DASHBOARD_COLUMNS = (
    "id, organization_id, owner_user_id, owner_user_id is null as shared, name,"
    " default_for_role::text as default_for_role, columns, created_at, updated_at"
)
WIDGET_COLUMNS = (
    "id, organization_id, dashboard_id, title, metric, visualization, filter, date_range,"
    " grouping, options, x, y, w, h, created_at, updated_at"
)
Role = str


class DashboardIn(Strict):
    name: str = Field(min_length=1, max_length=120)
    shared: bool = Field(
        default=False, description="Shared with the organization (managers+), else your own"
    )
    columns: int = Field(default=12, ge=1, le=24, description="The grid's width in cells")


class DashboardChange(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    columns: int | None = Field(default=None, ge=1, le=24)


class Place(Strict):
    x: int = Field(default=0, ge=0, le=23)
    y: int = Field(default=0, ge=0, le=999)
    w: int = Field(default=4, ge=1, le=24)
    h: int = Field(default=3, ge=1, le=24)


class WidgetIn(WidgetQuestion, Place):
    title: str | None = Field(default=None, min_length=1, max_length=120)


class WidgetChange(Strict):
    title: str | None = Field(default=None, min_length=1, max_length=120)
    metric: str | None = Field(default=None, max_length=63)
    visualization: definition.Visualization | None = None
    filter: dict[str, Any] | None = None
    date_range: dict[str, Any] | None = None
    grouping: definition.Grouping | None = None
    options: dict[str, Any] | None = None
    x: int | None = Field(default=None, ge=0, le=23)
    y: int | None = Field(default=None, ge=0, le=999)
    w: int | None = Field(default=None, ge=1, le=24)
    h: int | None = Field(default=None, ge=1, le=24)


async def require_member(conn: Connection, organization_id: UUID, user_id: UUID | None) -> None:
    """A member (any role) of the organization; an API key is bound to its own already."""
    if user_id is not None:
        await members.require_role(conn=conn, organization_id=organization_id, at_least="agent")


async def _may_write(conn: Connection, dashboard: dict[str, Any], user_id: UUID | None) -> None:
    if dashboard["shared"] and user_id is not None:
        await members.require_role(
            conn=conn, organization_id=dashboard["organization_id"], at_least="manager"
        )


async def list_dashboards(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"select {DASHBOARD_COLUMNS} from public.dashboards where organization_id = $1"
        " order by owner_user_id is not null, default_for_role nulls last, created_at, id",
        organization_id,
    )
    return [dict(r) for r in rows]


async def create_dashboard(
    *, conn: Connection, organization_id: UUID, user_id: UUID | None, data: DashboardIn
) -> dict[str, Any]:
    if user_id is None and not data.shared:
        raise Unprocessable(
            "shared: an API key has no dashboards of its own; create a shared one",
            details=[{"field": "shared", "message": "must be true for an API key"}],
        )
    if data.shared:
        await _may_write(conn, {"shared": True, "organization_id": organization_id}, user_id)
    else:
        await require_member(conn, organization_id, user_id)
    row = await conn.fetchrow(
        "insert into public.dashboards (organization_id, owner_user_id, name, columns)"
        f" values ($1, $2, $3, $4) returning {DASHBOARD_COLUMNS}",
        organization_id,
        None if data.shared else user_id,
        data.name,
        data.columns,
    )
    assert row is not None
    return {**dict(row), "widgets": []}


async def get_dashboard(
    *, conn: Connection, dashboard_id: UUID, organization_id: UUID | None = None
) -> dict[str, Any]:
    dashboard = await fetch_found(
        conn,
        "No such dashboard",
        f"select {DASHBOARD_COLUMNS} from public.dashboards"
        " where id = $1 and organization_id = coalesce($2, organization_id)",
        dashboard_id,
        organization_id,
    )
    rows = await conn.fetch(
        f"select {WIDGET_COLUMNS} from public.dashboard_widgets"
        " where organization_id = $1 and dashboard_id = $2 order by y, x, created_at, id",
        dashboard["organization_id"],
        dashboard_id,
    )
    return {**dashboard, "widgets": [dict(r) for r in rows]}


async def default_dashboard(
    *, conn: Connection, organization_id: UUID, role: str
) -> dict[str, Any]:
    dashboard_id = await conn.fetchval(
        "select id from public.dashboards where organization_id = $1"
        " and default_for_role = $2::public.member_role",
        organization_id,
        role,
    )
    if dashboard_id is None:
        raise Unprocessable(f"No default dashboard for the {role} role")
    return await get_dashboard(conn=conn, dashboard_id=dashboard_id)


async def update_dashboard(
    *, conn: Connection, dashboard_id: UUID, user_id: UUID | None, change: DashboardChange,
    organization_id: UUID | None = None,
) -> dict[str, Any]:  # fmt: skip
    current = await get_dashboard(
        conn=conn, dashboard_id=dashboard_id, organization_id=organization_id
    )
    await _may_write(conn, current, user_id)
    values = change.model_dump(exclude_unset=True)
    if values.get("columns") is not None:
        widest = max((w["x"] + w["w"] for w in current["widgets"]), default=0)
        if values["columns"] < widest:
            raise _grid(f"columns: a widget reaches column {widest}; move it first")
    await conn.execute(
        "update public.dashboards set name = coalesce($2, name), columns = coalesce($3, columns)"
        " where id = $1",
        dashboard_id,
        values.get("name"),
        values.get("columns"),
    )
    return await get_dashboard(conn=conn, dashboard_id=dashboard_id)


async def delete_dashboard(
    *,
    conn: Connection,
    dashboard_id: UUID,
    user_id: UUID | None,
    organization_id: UUID | None = None,
) -> None:
    current = await get_dashboard(
        conn=conn, dashboard_id=dashboard_id, organization_id=organization_id
    )
    await _may_write(conn, current, user_id)
    await conn.execute("delete from public.dashboards where id = $1", dashboard_id)


def _grid(message: str) -> Unprocessable:
    field = message.split(":", 1)[0]
    return Unprocessable(message, details=[{"field": field, "message": message}])


async def _checked(
    conn: Connection, dashboard: dict[str, Any], widget: dict[str, Any]
) -> dict[str, Any]:
    question = definition.question_of(widget)
    await definition.check(
        conn=conn, organization_id=dashboard["organization_id"], question=question
    )
    if widget["x"] + widget["w"] > dashboard["columns"]:
        raise _grid(f"w: x + w must be at most the dashboard's {dashboard['columns']} columns")
    return question.model_dump(mode="json")


async def add_widget(
    *, conn: Connection, dashboard_id: UUID, user_id: UUID | None, widget: WidgetIn,
    organization_id: UUID | None = None,
) -> dict[str, Any]:  # fmt: skip
    dashboard = await get_dashboard(
        conn=conn, dashboard_id=dashboard_id, organization_id=organization_id
    )
    await _may_write(conn, dashboard, user_id)
    body = widget.model_dump(mode="json")
    question = await _checked(conn, dashboard, body)
    row = await conn.fetchrow(
        "insert into public.dashboard_widgets (organization_id, dashboard_id, title, metric,"
        " visualization, filter, date_range, grouping, options, x, y, w, h)"
        " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        f" returning {WIDGET_COLUMNS}",
        dashboard["organization_id"],
        dashboard_id,
        body["title"],
        *(
            question[k]
            for k in ("metric", "visualization", "filter", "date_range", "grouping", "options")
        ),
        *(body[k] for k in ("x", "y", "w", "h")),
    )
    assert row is not None
    return dict(row)


async def _widget(conn: Connection, dashboard: dict[str, Any], widget_id: UUID) -> dict[str, Any]:
    for widget in dashboard["widgets"]:
        if widget["id"] == widget_id:
            return dict(widget)
    return await fetch_found(conn, "No such widget", "select 1 where false")


async def update_widget(
    *, conn: Connection, dashboard_id: UUID, widget_id: UUID, user_id: UUID | None,
    change: WidgetChange, organization_id: UUID | None = None,
) -> dict[str, Any]:  # fmt: skip
    dashboard = await get_dashboard(
        conn=conn, dashboard_id=dashboard_id, organization_id=organization_id
    )
    current = await _widget(conn, dashboard, widget_id)
    await _may_write(conn, dashboard, user_id)
    merged = {**current, **change.model_dump(exclude_unset=True)}
    for key in ("metric", "visualization", "date_range", "grouping", "options", "x", "y", "w", "h"):
        if merged[key] is None:  # a null leaves the stored value
            merged[key] = current[key]
    question = await _checked(conn, dashboard, merged)
    row = await conn.fetchrow(
        "update public.dashboard_widgets set title = $3, metric = $4, visualization = $5,"
        " filter = $6, date_range = $7, grouping = $8, options = $9, x = $10, y = $11,"
        f" w = $12, h = $13 where organization_id = $1 and id = $2 returning {WIDGET_COLUMNS}",
        dashboard["organization_id"],
        widget_id,
        merged["title"],
        *(
            question[k]
            for k in ("metric", "visualization", "filter", "date_range", "grouping", "options")
        ),
        *(merged[k] for k in ("x", "y", "w", "h")),
    )
    assert row is not None
    return dict(row)


async def delete_widget(
    *, conn: Connection, dashboard_id: UUID, widget_id: UUID, user_id: UUID | None,
    organization_id: UUID | None = None,
) -> None:  # fmt: skip
    dashboard = await get_dashboard(
        conn=conn, dashboard_id=dashboard_id, organization_id=organization_id
    )
    await _widget(conn, dashboard, widget_id)
    await _may_write(conn, dashboard, user_id)
    await conn.execute(
        "delete from public.dashboard_widgets where organization_id = $1 and id = $2",
        dashboard["organization_id"],
        widget_id,
    )


async def widget_data(
    *, conn: Connection, dashboard_id: UUID, widget_id: UUID, user_id: UUID | None,
    organization_id: UUID | None = None,
) -> dict[str, Any]:  # fmt: skip
    dashboard = await get_dashboard(
        conn=conn, dashboard_id=dashboard_id, organization_id=organization_id
    )
    widget = await _widget(conn, dashboard, widget_id)
    question = definition.question_of(widget)
    answer = await widgets.data(
        conn=conn, organization_id=dashboard["organization_id"], question=question, user_id=user_id
    )
    return {"widget_id": widget_id, "title": widget["title"], **answer}
