"""Tasks: to-dos for a member, about a contact or a deal; completing one stamps completed_at."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, Field

from shared.crm.entities import TASKS
from shared.crm.inputs import Strict, changes, fields_of
from shared.crm.records import delete_record, get_record, insert_record, update_record
from shared.db import Connection
from shared.safejson import in_range

Priority = Literal["low", "medium", "high", "urgent"]
TaskStatus = Literal["open", "done", "cancelled"]


def _utc_if_naive(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# a moment; without an offset it is UTC; within the years PostgreSQL is given in
Moment = Annotated[datetime, AfterValidator(_utc_if_naive), AfterValidator(in_range)]


class TaskFields(Strict):
    description: str | None = Field(default=None, max_length=20000)
    due_at: Moment | None = None
    assignee_id: UUID | None = None
    contact_id: UUID | None = None
    deal_id: UUID | None = None


class TaskCreate(TaskFields):
    title: str = Field(min_length=1, max_length=500)
    priority: Priority = "medium"
    status: TaskStatus = "open"


class TaskUpdate(TaskFields):
    title: str | None = Field(default=None, min_length=1, max_length=500)
    priority: Priority | None = None
    status: TaskStatus | None = None


async def create_task(
    *, conn: Connection, organization_id: UUID, data: TaskCreate
) -> dict[str, Any]:
    task_id = await insert_record(
        conn=conn, entity=TASKS, organization_id=organization_id, values=fields_of(data)
    )
    return await get_task(conn=conn, organization_id=organization_id, task_id=task_id)


async def update_task(
    *, conn: Connection, organization_id: UUID, task_id: UUID, data: TaskUpdate
) -> dict[str, Any]:
    await update_record(
        conn=conn,
        entity=TASKS,
        organization_id=organization_id,
        record_id=task_id,
        values=changes(data),
    )
    return await get_task(conn=conn, organization_id=organization_id, task_id=task_id)


async def get_task(*, conn: Connection, organization_id: UUID, task_id: UUID) -> dict[str, Any]:
    return await get_record(
        conn=conn, entity=TASKS, organization_id=organization_id, record_id=task_id
    )


async def delete_task(*, conn: Connection, organization_id: UUID, task_id: UUID) -> None:
    await delete_record(conn=conn, entity=TASKS, organization_id=organization_id, record_id=task_id)
