"""The typed jsonb seam between the inbox and its SQL functions (shared/inbox/seam.py)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from shared.inbox.seam import SUMMARIES, Delivery, Processed, SendFailure, StoredEvent


def event(**changes: Any) -> StoredEvent:
    fields = {
        "provider_event_id": "wamid.1",
        "event_type": "message",
        "payload": {"a": None},
        "parsed": {"kind": "ignored", "reason": "test"},
        "parse_error": None,
    }
    return StoredEvent(**{**fields, **changes})


def test_raw_goes_in_only_when_kept_raw_since_sql_reads_its_presence():
    assert "raw" not in event().sql()
    assert event(raw="AAE=").sql()["raw"] == "AAE="
    account = uuid4()
    delivery = Delivery(account=account, version="7/8", events=[event()], nonce=None).sql()
    assert delivery == {
        "account": str(account),
        "version": "7/8",
        "events": [event().sql()],
        "nonce": None,
    }
    assert delivery["events"][0]["payload"] == {"a": None}  # a provider's nulls are kept


def test_a_summary_of_another_shape_fails_at_the_seam():
    summary = {"received": 1, "duplicates": 0, "processed": 1, "ignored": 0, "failed": 0}
    [read] = SUMMARIES.validate_python([summary])
    assert (read.received, read.processed) == (1, 1)
    with pytest.raises(ValidationError):
        SUMMARIES.validate_python([{**summary, "new_contacts": []}])  # a key the seam lacks
    with pytest.raises(ValidationError):
        SUMMARIES.validate_python([{k: v for k, v in summary.items() if k != "failed"}])
    with pytest.raises(ValidationError):
        Processed.model_validate({"status": "done"})


def test_one_retried_event_counts_as_a_delivery_of_one():
    read = Processed.model_validate({"status": "processed"}).as_received()
    assert (read.received, read.processed, read.failed) == (1, 1, 0)
    failed = Processed.model_validate({"status": "failed", "error": "boom"}).as_received()
    assert (failed.received, failed.processed, failed.failed) == (1, 0, 1)


def test_a_send_failure_stores_only_the_fields_it_was_given():
    failure = SendFailure(
        message="m", status=None, code="x", outcome="unknown", retryable=False, provider=None
    )
    assert "retry_after" not in failure.sql()
    with pytest.raises(ValidationError):
        SendFailure.model_validate({**failure.sql(), "outcome": "maybe"})
