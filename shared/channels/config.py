"""A channel's own settings (its provider's API base, …), a model in its package.

Read from the environment (and .env) like shared.settings.Settings, under the
channel's prefix (`CONNECTGAIN_TELEGRAM_API_URL`), once per process: the shared
Settings never lists a channel's fields, so a new channel adds none there.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Self

from pydantic_settings import BaseSettings, SettingsConfigDict


class ChannelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    @classmethod
    def current(cls) -> Self:
        loaded = _load(cls)
        assert isinstance(loaded, cls)
        return loaded


@cache
def _load(model: type[ChannelSettings]) -> Any:
    return model()
