"""Hypothesis, per channel: correctly signed deliveries that are not what the provider
sends, made from its fixtures with a few values swapped for anything (NUL, lone
surrogates, numbers and times past any range, the wrong type where an object
belongs, nesting), are never a 5xx and never lost.

Every one is answered 200 and its every event is in inbound_events; where the
channel's delivery carries several entries (WhatsApp, Messenger, Instagram), a
good message is sent beside the mutated entries and must land. One database per
channel, the examples few and derandomized, so the run is the same every time.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any, cast

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.channels.registry import NAMES
from shared.db import Connection
from tests.channels.email.kit import EmailKit
from tests.channels.kit import Account, BodySigned, Delivery, Kit, post
from tests.channels.meta.kit import MetaSigned
from tests.channels.sms.kit import SmsKit
from tests.fixtures import CHANNELS, load
from tests.mutations import places, put

EXAMPLES = 25
SENDER = "16315550001"
ENTRIES = ("whatsapp", "messenger", "instagram")  # deliveries of several entries
# Fixtures of API answers and errors, not of deliveries.
NOT_DELIVERIES = re.compile(
    r"^(error_|send_|get_|set_|delete_|subscribed|profile|me$|page$|domain$|route_|webhook"
    r"|incoming_|no_incoming|chat_not_found|too_many|unauthorized)"
)
_ids = itertools.count(1)


def deliveries(channel: str) -> list[str]:
    return sorted(
        path.stem
        for path in (CHANNELS / channel / "fixtures").glob("*.json")
        if not NOT_DELIVERIES.match(path.stem)
    )


_text = st.text(max_size=12)
_form_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # URL-encodable
NASTY: list[Any] = [
    "\x00", "a\x00b", "\ud800", "x\udfff", 10**30, -(10**30), 2**63, 1e308, float("nan"),
    "99999999999999999999", "-1", "", "{}", {}, [], None, True,
    "9999-12-31T23:59:59-23:59", json.loads("[" * 40 + "]" * 40),
]  # fmt: skip
FORM_NASTY = ["\x00", "a\x00b", "99999999999999999999", "-1", "", "1e400", "\u202e", "x" * 5000]
values = st.one_of(
    st.sampled_from(NASTY),
    _text,
    st.integers(),
    st.floats(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(_text, st.integers(), max_size=2),
)


@st.composite
def mutated(draw: st.DrawFn, value: Any, *, roots: bool = True) -> Any:
    """`value` with one to three of its parts replaced by anything."""
    for _ in range(draw(st.integers(1, 3))):
        # an earlier replacement may have left nothing below the root: then the root
        where = [p for p in places(value) if roots or len(p) > 1] or places(value)
        value = put(value, draw(st.sampled_from(where)), draw(values))
    return value


@st.composite
def mutated_form(draw: st.DrawFn, fields: dict[str, str]) -> list[tuple[str, str]]:
    form = dict(fields)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from([*sorted(form), "Extra"]))
        if draw(st.booleans()) and name in form:
            del form[name]
        else:
            form[name] = draw(st.one_of(st.sampled_from(FORM_NASTY), _form_text))
    return list(form.items())


def good_payload(kit: Kit, account: Account, mid: str) -> Any:
    delivery = kit.text_message(account, sender=SENDER, message_id=mid, text="good")
    return json.loads(delivery.body)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False
    return True


@st.composite
def signed_delivery(draw: st.DrawFn, kit: Kit, account: Account) -> tuple[Delivery, str | None]:
    """A mutated, correctly signed delivery, and the provider id of a good message in it
    that must land (None when the delivery carries nothing else)."""
    fixture = draw(st.sampled_from(deliveries(kit.channel)))
    original = load(kit.channel, fixture)
    if isinstance(kit, SmsKit):
        return kit.signed_form(account, draw(mutated_form(original))), None
    if isinstance(kit, EmailKit):
        if "event-data" in original:
            return kit.event(account, draw(mutated(original["event-data"]))), None
        fields = {k: v for k, v in draw(mutated_form(original))}
        return kit.form(account, fields), None
    assert isinstance(kit, BodySigned), f"{kit.channel}: say here how to fuzz its deliveries"
    signer = cast(BodySigned, kit)
    if not isinstance(signer, MetaSigned):  # a JSON body signed whole (Telegram, a new channel)
        return signer.signed_raw(account, json.dumps(draw(mutated(original))).encode()), None
    # Meta: the mutated entries beside a good message's; where the mutation spares the
    # delivery's own shape (object, entry list), the good message lands.
    mid = f"FUZZ-{next(_ids)}"
    good = good_payload(kit, account, mid)
    bad = draw(mutated(original, roots=draw(st.booleans())))
    if isinstance(bad, dict) and bad.get("object") == good["object"]:
        entries = bad.get("entry")
        if isinstance(entries, list):
            body = {**bad, "entry": [*good["entry"], *entries]}
            # a NaN or infinity anywhere makes the whole body something other than JSON:
            # it is kept raw, and nothing in it lands
            return signer.signed_raw(account, json.dumps(body).encode()), (
                mid if _is_json(body) else None
            )
    return signer.signed_raw(account, json.dumps(bad).encode()), None


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
async def test_a_signed_delivery_is_never_a_5xx_and_never_lost(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection, data: st.DataObject
):
    delivery, good = data.draw(signed_delivery(kit, account), label="delivery")
    stored = await db.fetchval("select count(*) from inbound_events")
    response = await post(client, kit, account.id, delivery)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["received"] >= 1
    outcomes = summary["duplicates"] + summary["processed"] + summary["ignored"] + summary["failed"]
    assert outcomes == summary["received"]
    kept = await db.fetchval("select count(*) from inbound_events")
    assert kept == stored + summary["received"] - summary["duplicates"]
    if good is not None:
        landed = await db.fetchval(
            "select count(*) from messages where provider_message_id like '%' || $1", good
        )
        assert landed == 1, (good, summary, delivery.body[:2000])


def test_every_channel_has_deliveries_to_mutate():
    for channel in NAMES:
        assert len(deliveries(channel)) >= 5, channel
