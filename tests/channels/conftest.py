from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest
import respx

from shared.db import Connection
from tests.channels.kit import Account, Kit
from tests.channels.kits import KITS
from tests.functions.conftest import waits  # noqa: F401  (the provider backoffs, unslept)
from tests.support import make_org, make_user


@pytest.fixture
async def org(db: Connection) -> UUID:
    return await make_org(db, await make_user(db))


@pytest.fixture(params=sorted(KITS))
def kit(request: pytest.FixtureRequest) -> Kit:
    return KITS[request.param]


@pytest.fixture
def provider(kit: Kit) -> Iterator[respx.MockRouter]:
    """The provider APIs the inbox calls on its own (profiles), mocked; any other call
    to the outside fails the test."""
    with respx.mock(assert_all_called=False) as router:
        kit.mock_provider(router)
        yield router


@pytest.fixture
async def account(kit: Kit, db: Connection, org: UUID, provider: respx.MockRouter) -> Account:
    return await kit.create_account(db, org)
