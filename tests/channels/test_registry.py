"""The Python enumerations of channels and message statuses are the database's enums."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.channels.registry import CHANNELS, NAMES, ChannelName
from shared.crm import entities, inputs
from shared.db import Connection
from shared.inbox.statuses import STATUSES, MessageStatus
from shared.settings import Settings
from tests.channels.kits import KITS


async def _enum(db: Connection, name: str) -> list[str]:
    rows = await db.fetch(
        "select e.enumlabel from pg_enum e join pg_type t on t.oid = e.enumtypid"
        " join pg_namespace n on n.oid = t.typnamespace"
        " where n.nspname = 'public' and t.typname = $1 order by e.enumsortorder",
        name,
    )
    return [row["enumlabel"] for row in rows]


async def test_the_registered_channels_are_the_database_channel_enum(db: Connection):
    assert sorted(await _enum(db, "channel")) == sorted(CHANNELS) == list(NAMES)


async def test_the_message_statuses_are_the_database_message_status_enum(db: Connection):
    assert await _enum(db, "message_status") == list(STATUSES) == list(MessageStatus)


def test_every_channel_package_registers_the_channel_named_like_it_and_has_a_test_kit():
    assert {name: kit.channel for name, kit in KITS.items()} == {name: name for name in NAMES}
    for name, channel in CHANNELS.items():
        assert channel.name == name
        assert type(channel).__module__ == f"shared.channels.{name}.channel"


def test_the_crm_lists_channels_and_statuses_from_the_enumerations():
    assert entities.CHANNELS == NAMES
    assert inputs.Channel is ChannelName


def test_a_channel_name_is_checked_and_documented_from_the_registry():
    adapter = TypeAdapter(ChannelName)
    assert adapter.validate_python("telegram") == "telegram"
    with pytest.raises(ValidationError, match="whatsapp"):
        adapter.validate_python("viber")
    assert adapter.json_schema() == {"type": "string", "enum": list(NAMES)}


def test_every_registered_channel_has_its_webhook_function_and_nothing_else():
    from shared.tooling.gateway import function_modules

    webhooks = {slug for slug in function_modules() if slug.endswith("-webhook")}
    # stripe-webhook is billing's (Stripe's events), not a channel's
    assert webhooks - {"stripe-webhook"} == {f"{name}-webhook" for name in NAMES}


def test_a_channel_webhook_deploys_alone_from_the_registry():
    import functions.channel_webhooks as module

    app = module.telegram_webhook
    assert app.title.endswith("telegram-webhook")
    assert set(app.openapi()["paths"]["/{account_id}"]) == {"get", "post"}
    with pytest.raises(AttributeError):
        _ = module.viber_webhook


def test_a_channel_reads_its_provider_base_from_its_own_settings(
    monkeypatch: pytest.MonkeyPatch,
):
    from shared.channels.meta.graph import MetaSettings
    from shared.channels.telegram.channel import TelegramSettings

    monkeypatch.setenv("CONNECTGAIN_TELEGRAM_API_URL", "http://fake.test/telegram")
    monkeypatch.setenv("CONNECTGAIN_META_GRAPH_URL", "http://fake.test/graph")
    assert TelegramSettings().api_url == "http://fake.test/telegram"
    assert MetaSettings().graph_url == "http://fake.test/graph"
    assert "telegram_api_url" not in Settings.model_fields
