"""The webhook catalog names every event the migrations emit that an external system
may subscribe to; the rest are named here as internal, so a new event is a choice."""

from __future__ import annotations

import re
from pathlib import Path

from shared.events.catalog import EVENT_TYPES

MIGRATIONS = Path(__file__).parents[3] / "supabase" / "migrations"
# Work orders between consumers, not facts about the organization's records.
INTERNAL = {"member.availability_changed", "member.removed"}


def emitted() -> set[str]:
    sql = "\n".join(p.read_text() for p in sorted(MIGRATIONS.glob("*.sql")))
    literal = set(re.findall(r"app\.emit\([^,]+,\s*'([a-z_]+\.[a-z_]+)'", sql))
    # app.tag_added_events builds `<entity>.tag_added` for each table it is on
    tagged = re.findall(
        r"on public\.([a-z]+)_tags\s+for each row execute function app\.tag_added", sql
    )
    return literal | {f"{entity}.tag_added" for entity in tagged}


def test_every_emitted_event_is_in_the_catalog_or_named_internal():
    found = emitted()
    assert {"message.received", "task.overdue", "deal.tag_added"} <= found  # the scan sees them
    assert found - INTERNAL <= set(EVENT_TYPES), found - INTERNAL - set(EVENT_TYPES)
    assert not INTERNAL & set(EVENT_TYPES)
