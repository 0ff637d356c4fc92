"""The consumers of domain events, explicitly: the worker delivers each event to
every consumer here that wants it. A new consumer (automation rules, SLA timers,
bots, campaigns) is a `shared.events.base.Consumer` subclass added to this tuple;
its name is stored with its deliveries, so it must stay the same once deployed.
Events are fanned out when dispatched: a consumer added later gets the events
dispatched from then on, not the earlier ones."""

from __future__ import annotations

from shared.automation.consumer import AutomationConsumer
from shared.bots.consumer import BotConsumer
from shared.events.base import Consumer
from shared.events.sender import WebhookConsumer
from shared.inbox.profiles import ProfileConsumer
from shared.sla.consumer import SlaConsumer

CONSUMERS: tuple[Consumer, ...] = (
    WebhookConsumer(),
    AutomationConsumer(),
    SlaConsumer(),
    ProfileConsumer(),
    BotConsumer(),
)
