"""A dry run: the first `preview` records of a CSV upload staged and merged exactly as
the job would (the database's checks included), answered line by line as they would
be stored, or why they would be rejected; then everything is rolled back."""

from __future__ import annotations

from itertools import islice
from typing import IO, Any
from uuid import UUID, uuid4

from shared.crm.tags import resolve_tags
from shared.db import Connection, Database
from shared.imports import jobs
from shared.imports.merge import Merger
from shared.imports.plan import TANGLED, plan
from shared.imports.spec import SPECS, as_counts
from shared.imports.upload import (
    CsvImportOptions,
    names_companies,
    prepared,
    stage,
    staged_rows,
)


async def dry_run(
    *,
    db: Database,
    user_id: UUID,
    organization_id: UUID,
    file: IO[bytes],
    options: CsvImportOptions,
) -> dict[str, Any]:
    """The first `preview` rows as they would be stored; everything is rolled back."""
    job_id = uuid4()
    async with prepared(db, user_id, organization_id, file, options) as (conn, fmt, mapping):
        normalizer, keys = mapping.normalizer, options.keys()
        undo = conn.transaction()  # a savepoint: everything below is rolled back
        await undo.start()
        try:
            tag_ids = await resolve_tags(
                conn=conn, organization_id=organization_id, refs=options.tags
            )
            rows = staged_rows(file, fmt, normalizer, job_id, organization_id)
            await stage(conn, islice(rows, options.preview))
            batches, _ = await plan(
                conn=conn,
                job_id=job_id,
                organization_id=organization_id,
                entity=options.entity,
                keys=keys,
                companies=names_companies(mapping.mapping),
                batch_rows=2**30,  # one batch (and the tangled one)
            )
            merger = Merger(
                conn=conn,
                job_id=job_id,
                organization_id=organization_id,
                entity=options.entity,
                mode=options.dedupe,
                keys=keys,
                tag_ids=tag_ids,
                keep_lines=True,
            )
            for batch in range(TANGLED, batches):
                await merger.merge(batch)
            preview = await _preview(conn, job_id, organization_id, options.entity, merger)
        finally:
            await undo.rollback()
    rejected = sum(1 for p in preview if p["outcome"] == "rejected")
    return {
        "dry_run": True,
        "entity": options.entity,
        "columns": fmt.header,
        "encoding": fmt.encoding,
        "delimiter": fmt.delimiter,
        "mapping": mapping.as_json(),
        "counts": as_counts(merger.counts, rejected),
        "rows": preview,
    }


async def _preview(
    conn: Connection, job_id: UUID, org: UUID, entity: jobs.Entity, merger: Merger
) -> list[dict[str, Any]]:
    table = SPECS[entity].table
    staged = await conn.fetch(
        "select line, raw, error from private.import_rows where job_id = $1 order by line", job_id
    )
    ids = [rid for _, rid in merger.lines.values() if rid is not None]
    records_by_id = {
        r["id"]: dict(r)
        for r in await conn.fetch(
            f"select to_jsonb(t) - 'organization_id' as record, t.id from public.{table} t"
            " where t.organization_id = $1 and t.id = any($2::uuid[])",
            org,
            ids,
        )
    }
    preview = []
    for row in staged:
        outcome, record_id = merger.lines.get(row["line"], ("rejected", None))
        found = records_by_id.get(record_id) if record_id else None
        preview.append(
            {
                "line": row["line"],
                "outcome": "rejected" if row["error"] else outcome,
                "error": row["error"],
                "values": row["raw"],
                "record": found["record"] if found and not row["error"] else None,
            }
        )
    return preview
