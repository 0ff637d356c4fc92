from __future__ import annotations

import pytest

from shared.db import Connection
from shared.runtime import Runtime
from tests.security.world import World, build_world


@pytest.fixture
async def world(db: Connection, runtime: Runtime) -> World:
    return await build_world(db, runtime)
