"""/v1/tasks — to-dos about contacts and deals."""

from __future__ import annotations

from functions._api.crud import Resource, crud_router
from functions._api.schemas import Task
from shared.crm import tasks
from shared.crm.entities import TASKS

router = crud_router(
    Resource(
        collection="tasks",
        entity=TASKS,
        model=Task,
        create_input=tasks.TaskCreate,
        update_input=tasks.TaskUpdate,
        create=tasks.create_task,
        get=tasks.get_task,
        update=tasks.update_task,
        delete=tasks.delete_task,
    )
)
