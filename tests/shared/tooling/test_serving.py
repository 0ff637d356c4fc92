"""`connectgain serve` runs the stack chosen by measurement (bench/README.md): uvicorn
on uvloop and httptools, one process, without the access log; `connectgain dev` the
same stack, logging every request; --workers N processes that each build the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.settings import get_settings
from shared.tooling import cli
from shared.tooling.cluster import free_port
from shared.tooling.gateway import Gateway


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Any, dict[str, Any]]]]:
    """What `connectgain serve` hands to uvicorn, instead of serving forever."""
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))
    # cmd_serve hands the port to its workers through the environment; put it back after.
    monkeypatch.setenv("CONNECTGAIN_API_PORT", "54321")
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def loaded(app: Any, options: dict[str, Any]) -> uvicorn.Config:
    """The configuration uvicorn builds from these arguments, loaded as a worker loads it."""
    get_settings.cache_clear()  # a worker process reads the environment afresh
    config = uvicorn.Config(app, **options)
    config.load()
    return config


def runs_on_uvloop(config: uvicorn.Config) -> bool:
    loop_factory = config.get_loop_factory()
    assert loop_factory is not None
    loop = loop_factory()
    try:
        return isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_serve_runs_uvicorn_on_uvloop_and_httptools_without_the_access_log(served):
    port = free_port()
    assert cli.main(["serve", "--port", str(port)]) == 0
    ((app, options),) = served
    assert isinstance(app, Gateway)
    assert app.settings.api_port == port
    config = loaded(app, options)
    assert config.http_protocol_class is HttpToolsProtocol
    assert runs_on_uvloop(config)
    assert (config.workers, config.access_log, config.port) == (1, False, port)


def test_dev_serves_the_same_stack_and_logs_every_request(served):
    args = cli.build_parser().parse_args(["dev"])
    cli.cmd_serve(args, get_settings())  # what `connectgain dev` serves once migrated
    ((app, options),) = served
    assert isinstance(app, Gateway)
    config = loaded(app, options)
    assert config.http_protocol_class is HttpToolsProtocol
    assert runs_on_uvloop(config)
    assert (config.workers, config.access_log) == (1, True)


def test_serve_in_several_workers_gives_each_the_port_and_the_same_stack(served):
    port = free_port()
    assert cli.main(["serve", "--port", str(port), "--workers", "2", "--access-log"]) == 0
    ((app, options),) = served
    config = loaded(app, options)  # as a worker loads it: by name, from the environment
    assert config.factory
    assert config.http_protocol_class is HttpToolsProtocol
    assert runs_on_uvloop(config)
    assert (config.workers, config.access_log, config.port) == (2, True, port)
    # Each worker builds its own gateway, on the port given on the command line.
    settings = get_settings()
    assert (settings.api_port, settings.supabase_url) == (port, f"http://127.0.0.1:{port}")
