"""Every channel, discovered from its package: `shared/channels/<name>/` whose
`__init__` exposes `CHANNEL`, a Channel named like the package.

A new channel is its package plus the migration adding its name to the database's
`channel` enum (tests/channels/test_registry.py checks the two agree).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

import shared.channels
from shared.channels.base import Channel
from shared.errors import NotFound


def _discover() -> dict[str, Channel]:
    found: dict[str, Channel] = {}
    for info in sorted(pkgutil.iter_modules(shared.channels.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        package = importlib.import_module(f"shared.channels.{info.name}")
        channel = getattr(package, "CHANNEL", None)
        if channel is None:  # a shared kit, such as meta
            continue
        if not isinstance(channel, Channel) or channel.name != info.name:
            raise TypeError(f"shared.channels.{info.name}.CHANNEL is not a Channel named so")
        found[info.name] = channel
    return found


# name → channel, in name order: the one enumeration of channels in Python.
CHANNELS: dict[str, Channel] = _discover()
NAMES: tuple[str, ...] = tuple(CHANNELS)


def channel_named(name: str) -> Channel:
    try:
        return CHANNELS[name]
    except KeyError:
        raise NotFound(f"No channel called {name!r}") from None


def _known(name: str) -> str:
    if name not in CHANNELS:
        raise ValueError(f"Input should be one of {', '.join(NAMES)}")
    return name


# A channel's name in request and response models (validated, with its enum in OpenAPI).
ChannelName = Annotated[
    str,
    AfterValidator(_known),
    WithJsonSchema({"type": "string", "enum": list(NAMES)}),
]
