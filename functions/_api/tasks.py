"""/v1/tasks — to-dos about contacts and deals."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from functions._api.common import (
    READ,
    READ_ONE,
    WRITE,
    IdempotencyKey,
    ListQuery,
    Page,
    ReadKey,
    WriteKey,
    idempotent,
    in_tx,
    list_of,
)
from functions._api.schemas import Task
from shared.crm import tasks
from shared.crm.entities import TASKS
from shared.web import RuntimeDep

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.get("", response_model=Page[Task], responses=READ, summary="List tasks")
async def list_tasks(key: ReadKey, runtime: RuntimeDep, query: ListQuery) -> Any:
    return await list_of(runtime, key, TASKS, query)


@router.post("", status_code=201, response_model=Task, responses=WRITE, summary="Create a task")
async def create_task(
    body: tasks.TaskCreate,
    key: WriteKey,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await idempotent(
        runtime,
        key,
        scope="tasks.create",
        idempotency_key=idempotency_key,
        request=body.model_dump(mode="json"),
        model=Task,
        work=lambda conn: tasks.create_task(
            conn=conn, organization_id=key.organization_id, data=body
        ),
    )


@router.get("/{task_id}", response_model=Task, responses=READ_ONE, summary="Get a task")
async def get_task(task_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: tasks.get_task(
            conn=conn, organization_id=key.organization_id, task_id=task_id
        ),
    )


@router.patch("/{task_id}", response_model=Task, responses=WRITE, summary="Update a task")
async def update_task(
    task_id: UUID, body: tasks.TaskUpdate, key: WriteKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: tasks.update_task(
            conn=conn, organization_id=key.organization_id, task_id=task_id, data=body
        ),
    )


@router.delete("/{task_id}", status_code=204, responses=WRITE, summary="Delete a task")
async def delete_task(task_id: UUID, key: WriteKey, runtime: RuntimeDep) -> Response:
    await in_tx(
        runtime,
        key,
        lambda conn: tasks.delete_task(
            conn=conn, organization_id=key.organization_id, task_id=task_id
        ),
    )
    return Response(status_code=204)
