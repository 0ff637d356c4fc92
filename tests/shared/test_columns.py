"""A PATCH body's nulls, by each entity's metadata, applied once (records.columns_of)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.crm.companies import Address, CompanyUpdate
from shared.crm.contacts import ContactUpdate
from shared.crm.deals import DealUpdate
from shared.crm.entities import COMPANIES, CONTACTS, DEALS, TAGS, TASKS, Entity
from shared.crm.inputs import changes
from shared.crm.records import columns_of
from shared.crm.tags import TagUpdate
from shared.crm.tasks import TaskUpdate


@pytest.mark.parametrize(
    ("entity", "body", "columns"),
    [
        # a NOT NULL column or custom_fields: null leaves it; an optional column: null clears it
        (
            CONTACTS,
            ContactUpdate(name=None, opted_out_channels=None, custom_fields=None, tags=["vip"]),
            {"name": None},
        ),
        (
            COMPANIES,
            CompanyUpdate(name=None, address=None, phone=None, custom_fields=None),
            {"address": {}, "phone": None},
        ),
        (
            COMPANIES,
            CompanyUpdate(address=Address(city="Lyon")),
            {"address": {"city": "Lyon"}},
        ),
        (
            DEALS,
            DealUpdate(title=None, stage_id=None, value=None, lost_reason=None, tags=None),
            {"value": None, "lost_reason": None},
        ),
        (DEALS, DealUpdate(value=Decimal("5")), {"value": Decimal("5")}),
        (TASKS, TaskUpdate(title=None, status=None, due_at=None), {"due_at": None}),
        (TAGS, TagUpdate(name=None, color=None), {}),
    ],
)
def test_nulls_follow_the_entity(entity: Entity, body, columns):
    assert columns_of(entity, changes(body)) == columns
