"""The pass right after a webhook: exactly the delivery's own messages, and for an
organization without bots one cached question and nothing else."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import respx

import shared.webhooks as webhooks
from shared.bots import gate, inline
from shared.db import Connection, Database
from shared.inbox.accounts import load_account
from shared.runtime import Runtime
from tests.channels.kit import post
from tests.channels.whatsapp.kit import KIT as WHATSAPP
from tests.fixtures import load
from tests.shared.bots.flows import chain, node
from tests.shared.bots.kit import keyword, make_flow, mock_sends, run_worker, sent_texts, world

HELLO = chain(node("hi", "send_message", text="Hello {{ contact_name }}"))


class _Spy:
    """A pooled connection whose statements are written down."""

    def __init__(self, conn: Connection, seen: list[str]) -> None:
        self._conn, self._seen = conn, seen

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._conn, name)
        if name in ("execute", "fetch", "fetchrow", "fetchval", "executemany"):

            def spied(sql: str, *args: Any, **kwargs: Any) -> Any:
                self._seen.append(sql)
                return found(sql, *args, **kwargs)

            return spied
        return found


class Counting(Database):
    """The runtime's pool, every statement of every connection it hands out recorded."""

    def __init__(self, db: Database) -> None:
        super().__init__(db.pool)
        self.statements: list[str] = []

    @asynccontextmanager
    async def service_conn(self) -> AsyncIterator[Any]:
        async with self.pool.acquire() as conn:
            yield _Spy(conn, self.statements)

    @asynccontextmanager
    async def service_tx(self) -> AsyncIterator[Any]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield _Spy(conn, self.statements)


def delivery_of(w: Any, *messages: tuple[str, str, str]) -> Any:
    """One WhatsApp delivery holding several customers' messages: (sender, id, text)."""
    payload = copy.deepcopy(load("whatsapp", "text_message"))
    value = payload["entry"][0]["changes"][0]["value"]
    template = value["messages"][0]
    value["contacts"] = [{"profile": {"name": f"C {s}"}, "wa_id": s} for s, _, _ in messages]
    value["messages"] = [
        template | {"from": s, "id": i, "text": {"body": t}, "timestamp": str(int(time.time()))}
        for s, i, t in messages
    ]
    return WHATSAPP._signed(w.account, payload)


async def test_a_delivery_s_own_messages_are_handled_and_nothing_else(
    runtime: Runtime, client: httpx.AsyncClient, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = await world(db)
    await make_flow(db, w.org, HELLO, triggers=keyword("start"))
    with respx.mock as router:
        sends = mock_sends(router)
        # Stored without the pass, as if the process had died after its commit.
        monkeypatch.setattr(webhooks, "after_delivery", _nothing)
        other = delivery_of(w, ("15550009999", "wamid.other1", "start"))
        assert (await post(client, WHATSAPP, w.account.id, other)).status_code == 200
        monkeypatch.undo()
        assert not sends.called
        both = delivery_of(
            w, ("15550000001", "wamid.both1", "start"), ("15550000002", "wamid.both2", "START")
        )
        response = await post(client, WHATSAPP, w.account.id, both)
        assert response.status_code == 200 and response.json()["processed"] == 2
        assert sorted(sent_texts(sends)) == ["Hello C 15550000001", "Hello C 15550000002"]
        await run_worker(runtime)  # the safety net: the missed one, and the others not again
    assert sorted(sent_texts(sends)) == [
        "Hello C 15550000001",
        "Hello C 15550000002",
        "Hello C 15550009999",
    ]


async def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


async def test_an_organization_without_bots_pays_one_cached_question(
    runtime: Runtime, client: httpx.AsyncClient, db: Connection
) -> None:
    w = await world(db)
    with respx.mock as router:
        sends = mock_sends(router)
        delivery = delivery_of(w, ("15550000003", "wamid.nobot1", "start"))
        assert (await post(client, WHATSAPP, w.account.id, delivery)).status_code == 200
        account = await load_account(conn=db, account_id=w.account.id)
        counting = Counting(runtime.db)
        spied = dataclasses.replace(runtime, db=counting)
        gate.forget(w.org)
        for _ in range(3):
            await inline.after_delivery(spied, account=account, inbound=("wamid.nobot1",))
        assert counting.statements == [gate.HAS_BOTS]  # once, then from the cache
        # A flow published in this process is seen at once: the next delivery starts it.
        await make_flow(db, w.org, HELLO, triggers=keyword("start"))
        await inline.after_delivery(spied, account=account, inbound=("wamid.nobot1",))
    assert counting.statements[1] == gate.HAS_BOTS and len(counting.statements) > 2
    assert sent_texts(sends) == ["Hello C 15550000003"]


async def test_a_stale_answer_lasts_its_ttl_only(runtime: Runtime, db: Connection) -> None:
    """Another process's change (not forgotten here) is seen once the answer expires."""
    w = await world(db)
    counting = Counting(runtime.db)
    spied = dataclasses.replace(runtime, db=counting)
    assert await gate.has_bots(spied, w.org) is False
    await make_flow(db, w.org, HELLO, triggers=keyword("x"))
    gate._known[w.org] = (False, time.monotonic() + 60)  # as read before another's publish
    assert await gate.has_bots(spied, w.org) is False
    assert len(counting.statements) == 1
    gate._known[w.org] = (False, time.monotonic() - 0.001)  # its TTL ran out
    assert await gate.has_bots(spied, w.org) is True
    assert counting.statements == [gate.HAS_BOTS, gate.HAS_BOTS]
