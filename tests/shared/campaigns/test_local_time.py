"""Campaigns in each contact's local time: the wall-clock time of starts_at in the
contact's own zone (its `timezone` custom field, else the campaign's), across DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from pydantic import ValidationError

from shared.campaigns.manage import CampaignCreate, create_campaign
from shared.campaigns.runs import start_due
from shared.campaigns.snapshot import start_campaign
from shared.channels.whatsapp.templates import TemplateSend
from shared.db import Connection
from shared.errors import Unprocessable
from shared.runtime import Runtime
from tests.shared.campaigns.kit import GREETING, claim_now, finish_others, running
from tests.support import make_contact, module_runtime_fixtures

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.xdist_group("test_campaign_dispatch"),
]
runtime, db = module_runtime_fixtures()

# The day New York moves to summer time (Berlin two weeks later): 09:00 there is
# 13:00 UTC, not the 14:00 UTC of the day before.
WALL = datetime(2027, 3, 14, 9, 0)
ZONES = {"tokyo": "Asia/Tokyo", "new_york": "America/New_York", "berlin": None, "bad": "Mars/Base"}


def utc(hour: int, minute: int = 0, day: int = 14) -> datetime:
    return datetime(2027, 3, day, hour, minute, tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="module")
async def world(db: Connection) -> dict[str, Any]:
    await finish_others(db)
    world = await running(db, 0, start=False)
    await db.execute(
        "insert into public.custom_field_definitions (organization_id, entity, key, label, type)"
        " values ($1, 'contact', 'timezone', 'Timezone', 'text')",
        world["org"],
    )
    world["who"] = {
        await make_contact(
            db,
            world["org"],
            name=f"VIP {name}",
            phone=f"+4915100077{i:03d}",
            custom_fields={} if zone is None else {"timezone": zone},
        ): name
        for i, (name, zone) in enumerate(ZONES.items())
    }
    return world


def create(
    world: dict[str, Any], starts_at: datetime, timezone: str = "Europe/Berlin"
) -> CampaignCreate:
    return CampaignCreate(
        channel_account_id=world["account"],
        name="Local",
        template=TemplateSend.model_validate(GREETING),
        audience={"field": "name", "op": "starts_with", "value": "VIP"},
        starts_at=starts_at,
        timezone=timezone,
        local_time=True,
    )


async def claim(runtime: Runtime, campaign_id: UUID, at: datetime) -> list[UUID]:
    _, jobs = await claim_now(runtime, campaign_id, limit=10, at=at)
    return [j.contact_id for j in jobs]


async def test_each_contact_is_due_at_the_wall_clock_time_in_its_own_zone(
    runtime: Runtime, db: Connection, world: dict[str, Any]
) -> None:
    made = await create_campaign(
        conn=db, organization_id=world["org"], data=create(world, WALL), now=utc(0, day=1)
    )
    assert (made["status"], made["local_time"]) == ("scheduled", True)
    assert made["starts_at"] == utc(8)  # 09:00 in Berlin, the campaign's own zone

    # 09:00 comes first in UTC+14 (Kiribati), at 19:00 UTC the day before
    await start_due(runtime, now=utc(18, 59, day=13))
    status = "select status from public.campaigns where id = $1"
    assert await db.fetchval(status, made["id"]) == "scheduled"
    await start_due(runtime, now=utc(19, day=13))
    assert await db.fetchval(status, made["id"]) == "running"

    due = {
        world["who"][r["contact_id"]]: r["due_at"]
        for r in await db.fetch(
            "select contact_id, due_at from public.campaign_recipients where campaign_id = $1",
            made["id"],
        )
    }
    # Tokyo (no DST) 09:00 = 00:00 UTC; New York on its first summer-time day 13:00 UTC;
    # no zone, or not a zone: the campaign's Berlin, still on winter time, 08:00 UTC
    assert due == {"tokyo": utc(0), "new_york": utc(13), "berlin": utc(8), "bad": utc(8)}
    assert due["new_york"] == WALL.replace(tzinfo=ZoneInfo("America/New_York"))

    names = {v: k for k, v in world["who"].items()}
    assert await claim(runtime, made["id"], utc(0) - timedelta(seconds=1)) == []
    assert await claim(runtime, made["id"], utc(7)) == [names["tokyo"]]
    assert set(await claim(runtime, made["id"], utc(12))) == {names["berlin"], names["bad"]}
    assert await claim(runtime, made["id"], utc(13)) == [names["new_york"]]


async def test_a_wall_clock_time_that_daylight_saving_skips_is_read_in_winter_time(
    db: Connection, world: dict[str, Any]
) -> None:
    # 02:30 never happens in New York on 14 March 2027 (02:00 EST -> 03:00 EDT): it is
    # read with the offset before the change, -05:00, as Python's zoneinfo reads it
    await finish_others(db)
    skipped = create(world, datetime(2027, 3, 14, 2, 30), timezone="America/New_York")
    made = await create_campaign(
        conn=db, organization_id=world["org"], data=skipped, now=utc(0, day=1)
    )
    await start_campaign(conn=db, organization_id=world["org"], campaign_id=made["id"])
    due = await db.fetchval(
        "select due_at from public.campaign_recipients r join public.contacts c"
        "   on c.id = r.contact_id where r.campaign_id = $1 and c.name = 'VIP berlin'",
        made["id"],
    )
    skipped_wall = datetime(2027, 3, 14, 2, 30, tzinfo=ZoneInfo("America/New_York"))
    assert due == utc(7, 30) == skipped_wall.astimezone(UTC)


async def test_a_time_already_passed_in_a_contacts_zone_is_refused_and_nothing_saved(
    db: Connection, world: dict[str, Any]
) -> None:
    # 09:00 in Berlin still lies ahead at 06:00 UTC, but in Tokyo it passed at 00:00 UTC
    count = "select count(*) from public.campaigns where organization_id = $1"
    before = await db.fetchval(count, world["org"])
    with pytest.raises(Unprocessable, match=r"2027-03-14 09:00 has already passed in Asia/Tokyo"):
        await create_campaign(
            conn=db, organization_id=world["org"], data=create(world, WALL), now=utc(6)
        )
    assert await db.fetchval(count, world["org"]) == before
    with pytest.raises(ValidationError, match="local_time needs starts_at"):
        CampaignCreate(channel_account_id=world["account"], name="Now", text="Hi", local_time=True)
