"""Every registered channel's test kit (tests/channels/<name>/kit.py, its KIT): the
contract tests run for each; a channel without a kit fails here."""

from __future__ import annotations

import importlib

from shared.channels.registry import NAMES
from tests.channels.kit import Kit

KITS: dict[str, Kit] = {
    name: importlib.import_module(f"tests.channels.{name}.kit").KIT for name in NAMES
}
