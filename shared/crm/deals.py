"""Deals: sales opportunities moving through a pipeline's stages on the kanban board.

The database keeps the board's rules (stage within the pipeline, status from
the stage, won/lost stamps, unique positions, history); these functions are the
API's way in, and `load_board` reads a whole board in a fixed number of queries.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from shared.crm.entities import DEALS, PIPELINES
from shared.crm.inputs import CustomFields, Strict, TagRefs, changes, fields_of
from shared.crm.records import delete_record, get_record
from shared.crm.tags import insert_tagged, update_tagged
from shared.db import Connection
from shared.errors import NotFound

DealStatus = Literal["open", "won", "lost"]
Money = Field(default=None, ge=0, max_digits=18, decimal_places=2)
CURRENCY = r"^[A-Z]{3}$"


class DealFields(Strict):
    value: Decimal | None = Money
    probability: int | None = Field(
        default=None, ge=0, le=100, description="Defaults to the stage's probability"
    )
    expected_close_date: date | None = None
    pipeline_id: UUID | None = None
    stage_id: UUID | None = None
    contact_id: UUID | None = None
    company_id: UUID | None = None
    assignee_id: UUID | None = None
    lost_reason: str | None = Field(default=None, max_length=500)
    custom_fields: CustomFields | None = None
    tags: TagRefs | None = Field(default=None, description="Tag names (created if new) or ids")


class DealCreate(DealFields):
    """Without stage_id the deal starts in the first stage of its pipeline (default: the
    organization's default pipeline); status won/lost starts it in a won/lost stage."""

    title: str = Field(min_length=1, max_length=200)
    currency: str = Field(default="USD", pattern=CURRENCY, description="ISO 4217, e.g. EUR")
    status: DealStatus = "open"


class DealUpdate(DealFields):
    """Only the fields sent change. status won/lost/open moves the deal to the pipeline's
    won/lost stage or back to its last open stage; pipeline_id alone moves it to that
    pipeline's first stage."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    currency: str | None = Field(default=None, pattern=CURRENCY, description="ISO 4217, e.g. EUR")
    status: DealStatus | None = None


class DealMove(Strict):
    stage_id: UUID | None = Field(default=None, description="Default: the deal's current stage")
    index: int = Field(ge=0, le=2**31 - 1, description="0 is the top of the column")


async def create_deal(
    *, conn: Connection, organization_id: UUID, data: DealCreate
) -> dict[str, Any]:
    return await insert_tagged(
        conn=conn,
        organization_id=organization_id,
        entity=DEALS,
        columns=fields_of(data),
        tags=data.tags,
    )


async def update_deal(
    *, conn: Connection, organization_id: UUID, deal_id: UUID, data: DealUpdate
) -> dict[str, Any]:
    sent = changes(data)
    return await update_tagged(
        conn=conn,
        organization_id=organization_id,
        entity=DEALS,
        record_id=deal_id,
        columns=sent,
        tags=(data.tags or []) if "tags" in sent else None,  # not sent: they stay
    )


async def move_deal(
    *, conn: Connection, organization_id: UUID, deal_id: UUID, move: DealMove
) -> dict[str, Any]:
    """Put a deal at `index` of a stage's column (public.move_deal locks the column)."""
    deal = await get_deal(conn=conn, organization_id=organization_id, deal_id=deal_id)
    await conn.execute(
        "select id from public.move_deal($1, $2, $3)",
        deal_id,
        move.stage_id or deal["stage_id"],
        move.index,
    )
    return await get_deal(conn=conn, organization_id=organization_id, deal_id=deal_id)


async def get_deal(*, conn: Connection, organization_id: UUID, deal_id: UUID) -> dict[str, Any]:
    return await get_record(
        conn=conn, entity=DEALS, organization_id=organization_id, record_id=deal_id
    )


async def delete_deal(*, conn: Connection, organization_id: UUID, deal_id: UUID) -> None:
    await delete_record(conn=conn, entity=DEALS, organization_id=organization_id, record_id=deal_id)


async def stage_history(
    *, conn: Connection, organization_id: UUID, deal_id: UUID
) -> list[dict[str, Any]]:
    await get_deal(conn=conn, organization_id=organization_id, deal_id=deal_id)
    rows = await conn.fetch(
        "select from_stage_id, to_stage_id, changed_by, api_key_id, changed_at"
        " from public.deal_stage_changes where organization_id = $1 and deal_id = $2"
        " order by id",
        organization_id,
        deal_id,
    )
    return [dict(r) for r in rows]


# ---- the kanban board ---------------------------------------------------------------------

# One index scan per column (deals_board_idx); names are the deals' own copies.
BOARD_CARDS = """
select s.id as column_id, d.id, d.title, d.value, d.currency, d.probability, d.position,
       d.expected_close_date, d.assignee_id, d.contact_id, d.contact_name,
       d.company_id, d.company_name
  from public.stages s
  cross join lateral (
    select * from public.deals d
     where d.organization_id = s.organization_id and d.pipeline_id = s.pipeline_id
       and d.stage_id = s.id and d.status = 'open'
     order by d.position
     limit $3) d
 where s.organization_id = $1 and s.pipeline_id = $2
 order by s.position, s.id, d.position
"""

BOARD_TOTALS = """
select d.stage_id, d.currency, count(*) as deals, coalesce(sum(d.value), 0) as value
  from public.deals d
 where d.organization_id = $1 and d.pipeline_id = $2 and d.status = 'open'
 group by d.stage_id, d.currency
"""


async def load_board(
    *, conn: Connection, organization_id: UUID, pipeline_id: UUID, per_stage: int | None = None
) -> dict[str, Any]:
    """A pipeline's board: each stage with its open deals in order (the first `per_stage`,
    or all), with contact and company names, and the count and value per currency of all
    its open deals. Three queries, whatever the size of the board."""
    pipeline = await conn.fetchrow(
        f"select {PIPELINES.columns} from public.pipelines p"
        " where p.organization_id = $1 and p.id = $2",
        organization_id,
        pipeline_id,
    )
    if pipeline is None:
        raise NotFound("No such pipeline")
    cards: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    for row in await conn.fetch(BOARD_CARDS, organization_id, pipeline_id, per_stage):
        card = dict(row)
        cards[card.pop("column_id")].append(card)
    totals: dict[UUID, dict[str, Any]] = defaultdict(lambda: {"deals": 0, "value": {}})
    for row in await conn.fetch(BOARD_TOTALS, organization_id, pipeline_id):
        total = totals[row["stage_id"]]
        total["deals"] += row["deals"]
        total["value"][row["currency"]] = row["value"]
    stages = []
    for stage in pipeline["stages"]:
        stage_id = UUID(stage["id"])
        column = totals[stage_id]
        stages.append(
            {
                **stage,
                "id": stage_id,
                "deals": cards.get(stage_id, []),
                "total_deals": column["deals"],
                "total_value": column["value"],
                "has_more": column["deals"] > len(cards.get(stage_id, [])),
            }
        )
    return {
        "pipeline": {k: v for k, v in dict(pipeline).items() if k != "stages"},
        "stages": stages,
    }


async def get_pipeline(
    *, conn: Connection, organization_id: UUID, pipeline_id: UUID
) -> dict[str, Any]:
    return await get_record(
        conn=conn, entity=PIPELINES, organization_id=organization_id, record_id=pipeline_id
    )
