from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`kit` is every channel's here, and a channel's own in its folder
    (tests/channels/<name>/), so its tests share the fixtures below; another folder
    (meta) or a test that parametrizes `kit` says which itself."""
    marked = {
        name.strip()
        for mark in metafunc.definition.iter_markers("parametrize")
        for name in (mark.args[0].split(",") if isinstance(mark.args[0], str) else mark.args[0])
    }
    if "kit" not in metafunc.fixturenames or "kit" in marked:
        return
    folder = metafunc.definition.path.parent
    if folder.name in KITS:
        metafunc.parametrize("kit", [folder.name], indirect=True)
    elif folder == Path(__file__).parent:
        metafunc.parametrize("kit", sorted(KITS), indirect=True)


@pytest.fixture
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
