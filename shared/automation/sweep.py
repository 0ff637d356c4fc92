"""The events no row change makes: a task becoming overdue (app.emit_overdue_tasks)."""

from __future__ import annotations

from shared.db import Database


async def emit_overdue_tasks(db: Database, *, limit: int) -> int:
    """Emits task.overdue for up to `limit` open tasks past due; how many."""
    async with db.service_tx() as conn:
        emitted: int = await conn.fetchval("select app.emit_overdue_tasks($1)", limit)
    return emitted
