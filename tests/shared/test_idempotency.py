from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from fastapi.encoders import jsonable_encoder

from shared import idempotency
from shared.auth import UserPrincipal
from shared.db import Connection
from shared.errors import Conflict, Unprocessable, UpstreamError
from shared.runtime import Runtime
from shared.safejson import jsonable

CALLER = UserPrincipal(user_id=uuid4(), claims={})


def counting_work(status: int = 201, body: Any = None):
    calls = []

    async def work() -> tuple[int, Any]:
        calls.append(1)
        return status, body if body is not None else {"n": len(calls)}

    return work, calls


async def run(runtime: Runtime, work, key: str | None = "k1", fingerprint: bytes = b"f1"):
    return await idempotency.once(
        runtime.db, principal=CALLER, scope="test", key=key, fingerprint=fingerprint, work=work
    )


async def test_a_retry_replays_the_first_answer_without_working_again(runtime: Runtime):
    work, calls = counting_work()
    first = await run(runtime, work)
    again = await run(runtime, work)
    assert len(calls) == 1
    assert first == idempotency.Answer(status=201, body={"n": 1}, replayed=False)
    assert again == idempotency.Answer(status=201, body={"n": 1}, replayed=True)


async def test_without_a_key_the_work_runs_every_time(runtime: Runtime):
    work, calls = counting_work()
    await run(runtime, work, key=None)
    await run(runtime, work, key=None)
    assert len(calls) == 2


async def test_the_same_key_for_another_request_is_refused(runtime: Runtime):
    work, _ = counting_work()
    await run(runtime, work)
    with pytest.raises(Unprocessable):
        await run(runtime, work, fingerprint=b"other")


async def test_a_concurrent_duplicate_gets_a_conflict(runtime: Runtime):
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> tuple[int, Any]:
        started.set()
        await release.wait()
        return 200, {"ok": True}

    first = asyncio.create_task(run(runtime, slow))
    await started.wait()
    with pytest.raises(Conflict):
        await run(runtime, slow)
    release.set()
    assert (await first).status == 200


async def test_a_server_side_failure_releases_the_key(runtime: Runtime):
    async def broken() -> tuple[int, Any]:
        raise UpstreamError("provider down")

    with pytest.raises(UpstreamError):
        await run(runtime, broken)
    work, calls = counting_work()
    assert (await run(runtime, work)).status == 201
    assert len(calls) == 1


async def test_a_client_error_is_remembered(runtime: Runtime):
    async def invalid() -> tuple[int, Any]:
        raise Unprocessable("bad input")

    with pytest.raises(Unprocessable):
        await run(runtime, invalid)
    work, calls = counting_work()
    replay = await run(runtime, work)
    assert replay.status == 422
    assert calls == []


async def test_a_key_older_than_a_day_may_be_used_again(runtime: Runtime, db: Connection):
    work, calls = counting_work()
    await run(runtime, work)
    await db.execute("update private.idempotency_keys set created_at = now() - interval '25 hours'")
    await run(runtime, work, fingerprint=b"new request")
    assert len(calls) == 2


async def test_a_claim_left_by_a_killed_request_expires(runtime: Runtime, db: Connection):
    # what a process killed mid-work leaves: a claim and no answer
    await db.execute(
        "insert into private.idempotency_keys (owner, scope, key, request_hash, claimed_until)"
        " values ($1, 'test', 'k1', $2, now() + interval '1 minute')",
        idempotency.owner_of(CALLER),
        b"f1",
    )
    work, calls = counting_work()
    with pytest.raises(Conflict):
        await run(runtime, work)
    await db.execute("update private.idempotency_keys set claimed_until = now() - interval '1s'")
    with pytest.raises(Unprocessable):  # still that request's key
        await run(runtime, work, fingerprint=b"another request")
    assert (await run(runtime, work)).status == 201
    assert len(calls) == 1


async def test_an_expired_claim_that_created_something_is_never_taken_over(
    runtime: Runtime, db: Connection
):
    begun = await idempotency.begin(
        runtime.db, principal=CALLER, scope="test", key="k1", fingerprint=b"f1"
    )
    assert isinstance(begun, idempotency.Claim)
    made = uuid4()
    async with runtime.db.service_tx() as conn:
        await begun.link(conn, made, 60)
    await db.execute("update private.idempotency_keys set claimed_until = now() - interval '1s'")
    again = await idempotency.begin(
        runtime.db, principal=CALLER, scope="test", key="k1", fingerprint=b"f1"
    )
    assert again == idempotency.Held(claim=begun, resource_id=made, expired=True)
    work, calls = counting_work()
    with pytest.raises(Conflict):
        await run(runtime, work)
    assert calls == []


def test_answers_encode_as_fastapi_did_so_stored_keys_still_match():
    value = {
        "id": uuid4(),
        "at": datetime(2026, 12, 2, 7, 0, tzinfo=UTC),
        "day": date(2026, 12, 2),
        "amount": [Decimal("12.50"), Decimal("3")],
        "tags": ("a", None, True, 1.5),
    }
    assert jsonable(value) == jsonable_encoder(value)
    assert idempotency.Answer.of(201, value).body == jsonable_encoder(value)
