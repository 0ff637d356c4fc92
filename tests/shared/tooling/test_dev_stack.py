"""A dev stack on non-default ports: CONNECTGAIN_DB_PORT and CONNECTGAIN_API_PORT move
the database, the functions' database URL, `connectgain user create` and the server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared.settings import Settings, get_settings, local_database_url
from shared.tooling import cli
from shared.tooling.cluster import Cluster, free_port

ENVIRONMENT = ("DB_URL", "URL", "PUBLIC_BASE_URL", "DB_PORT", "API_PORT", "DATA_DIR")


@dataclass
class Stack:
    root: Path
    db_port: int
    api_port: int

    @property
    def url(self) -> str:
        return local_database_url(self.db_port)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="cg-dev-stack-"))
    os.chmod(root, 0o755)  # the server may run as an unprivileged user
    for name in ENVIRONMENT:
        monkeypatch.delenv(f"CONNECTGAIN_{name}", raising=False)
        monkeypatch.delenv(f"SUPABASE_{name}", raising=False)
    stack = Stack(root=root, db_port=free_port(), api_port=free_port())
    monkeypatch.setenv("CONNECTGAIN_DATA_DIR", str(root / "db"))
    monkeypatch.setenv("CONNECTGAIN_DB_PORT", str(stack.db_port))
    monkeypatch.setenv("CONNECTGAIN_API_PORT", str(stack.api_port))
    monkeypatch.chdir(root)  # no .env of the project is read
    get_settings.cache_clear()
    try:
        yield stack
    finally:
        get_settings.cache_clear()
        Cluster(data_dir=root / "db", port=stack.db_port).destroy()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What `connectgain serve` hands to uvicorn, instead of serving forever."""
    calls: list[dict[str, Any]] = []

    def run(app: Any, **options: Any) -> None:
        calls.append({"settings": app.settings, **options})

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", run)
    return calls


async def _users_in(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r["email"] for r in await conn.fetch("select email from auth.users")]
    finally:
        await conn.close()


def test_a_dev_stack_on_other_ports_is_one_stack(
    stack: Stack, served: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
):
    assert cli.main(["db", "start"]) == 0
    assert cli.main(["db", "url"]) == 0
    assert cli.main(["db", "migrate"]) == 0  # the functions' default URL: the same database
    capsys.readouterr()

    assert cli.main(["user", "create", "--email", "Ana@Example.com", "--org", "Acme"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert asyncio.run(_users_in(stack.url)) == ["ana@example.com"]
    assert created["user_id"]

    capsys.readouterr()
    assert cli.main(["dev"]) == 0
    (dev,) = served
    printed = capsys.readouterr().out.splitlines()
    block = printed[printed.index("Started ConnectGain local development setup.") :]
    assert f"         API URL: http://127.0.0.1:{stack.api_port}" in block
    assert f"          DB URL: {stack.url}" in block
    assert f"   Functions URL: http://127.0.0.1:{stack.api_port}/functions/v1" in block
    assert any(line.startswith("service_role key: ey") for line in block)
    settings: Settings = dev["settings"]
    assert dev["port"] == stack.api_port
    assert settings.database_url == stack.url
    assert settings.supabase_url == settings.public_base_url == f"http://127.0.0.1:{stack.api_port}"

    other = free_port()
    assert cli.main(["serve", "--port", str(other)]) == 0
    moved: Settings = served[-1]["settings"]
    assert served[-1]["port"] == other
    assert moved.supabase_url == f"http://127.0.0.1:{other}"
    assert moved.database_url == stack.url


def test_dev_refuses_a_database_url_that_is_not_its_database(
    stack: Stack,
    served: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("SUPABASE_DB_URL", local_database_url(54322))
    get_settings.cache_clear()
    assert cli.main(["dev"]) == 1
    assert "is not the local database" in capsys.readouterr().err
    assert served == []
    assert not (stack.root / "db").exists(), "nothing was started"
