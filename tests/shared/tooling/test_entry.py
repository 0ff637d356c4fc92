"""What the image serves: CONNECTGAIN_FUNCTION (or --function) picks one function, which
is served alone with health, at its gateway URL and with its CORS; the schedule runs
only when serving all functions, or where it is turned on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from shared.runtime import Runtime
from shared.schedule import SCHEDULE
from shared.settings import Settings, get_settings
from shared.tooling import cli, entry
from shared.tooling.gateway import Gateway

APP = "https://app.example.com"
EVERYWHERE = "0.0.0.0"  # noqa: S104  (a container listens on every interface)


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, apikey, content-type, x-client-info",
    }


@pytest.fixture
async def send_message_alone(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    settings = runtime.settings.model_copy(
        update={"function": "send-message", "cors_origins": (APP,)}
    )
    gateway = entry.build(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://functions.test") as c:
        yield c


async def test_one_function_is_served_alone_with_health_and_its_cors(
    send_message_alone: httpx.AsyncClient,
):
    health = await send_message_alone.get("/functions/v1/health")
    assert health.status_code == 200, health.text
    assert health.json() == {"status": "ok", "database": "ok"}

    spec = await send_message_alone.get("/functions/v1/send-message/openapi.json")
    assert spec.status_code == 200
    assert spec.json()["info"]["title"] == "ConnectGain send-message"

    unsigned = await send_message_alone.post(
        "/functions/v1/send-message", json={}, headers={"Origin": APP}
    )
    assert unsigned.status_code == 401
    assert unsigned.headers["access-control-allow-origin"] == APP

    for other in ("members", "api", "inbound-retry", "whatsapp-webhook/x"):
        gone = await send_message_alone.get(f"/functions/v1/{other}")
        assert gone.status_code == 404, other
        assert gone.json()["error"]["code"] == "not_found"

    allowed = await send_message_alone.options("/functions/v1/send-message", headers=preflight(APP))
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == APP
    refused = await send_message_alone.options(
        "/functions/v1/send-message", headers=preflight("https://evil.example")
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "cors_refused"


async def test_a_channel_webhook_is_served_alone_at_its_gateway_url(runtime: Runtime):
    gateway = entry.build(runtime.settings, function="telegram-webhook", runtime=runtime)
    assert gateway.slugs == ["health", "telegram-webhook"]
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://functions.test") as c:
        delivery = await c.post(
            "/functions/v1/telegram-webhook/00000000-0000-0000-0000-000000000000", json={}
        )
        other = await c.post("/functions/v1/whatsapp-webhook/x", json={})
    assert delivery.status_code == 404, "reached the webhook, which looks up the account"
    assert delivery.json()["error"]["message"] == "No such channel account"
    assert other.status_code == 404
    assert other.json()["error"]["message"] == "No such function"


def settings_with(**update: Any) -> Settings:
    return Settings(_env_file=None).model_copy(update=update)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("function", "schedule", "no_schedule", "slugs", "jobs"),
    [
        ("all", "auto", False, None, [job.slug for job in SCHEDULE]),
        ("all", "auto", True, None, []),
        ("all", "off", False, None, []),
        ("send-message", "auto", False, ("health", "send-message"), []),
        ("inbound-retry", "auto", False, ("health", "inbound-retry"), []),
        ("inbound-retry", "on", False, ("health", "inbound-retry"), ["inbound-retry"]),
        ("inbound-retry", "on", True, ("health", "inbound-retry"), []),
        ("send-message", "on", False, ("health", "send-message"), []),
        ("health", "on", False, ("health",), []),
    ],
)
def test_the_schedule_runs_when_serving_all_or_where_turned_on(
    function: str, schedule: str, no_schedule: bool, slugs: Any, jobs: list[str]
):
    chosen = entry.plan(
        settings_with(function=function, schedule=schedule), no_schedule=no_schedule
    )
    assert chosen.slugs == slugs
    assert [job.slug for job in chosen.schedule] == jobs


def test_an_unknown_function_is_refused_with_the_known_ones():
    with pytest.raises(entry.ServeError) as refused:
        entry.plan(settings_with(), function="no-such-thing")
    assert "'no-such-thing'" in str(refused.value)
    assert "send-message" in str(refused.value)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """What `connectgain serve` hands to uvicorn, instead of serving forever."""
    calls: list[dict[str, Any]] = []

    def run(app: Gateway, **options: Any) -> None:
        calls.append({"gateway": app, **options})

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", run)
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def test_serve_takes_the_function_from_the_setting_and_the_option(
    served: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("CONNECTGAIN_FUNCTION", " Inbound-Retry ")
    monkeypatch.setenv("CONNECTGAIN_SCHEDULE", "on")
    assert cli.main(["serve", "--host", EVERYWHERE, "--port", "8000"]) == 0
    gateway: Gateway = served[-1]["gateway"]
    assert (served[-1]["host"], served[-1]["port"]) == (EVERYWHERE, 8000)
    assert gateway.slugs == ["health", "inbound-retry"]
    assert [job.slug for job in gateway.schedule] == ["inbound-retry"]
    out = capsys.readouterr().out
    assert f"http://{EVERYWHERE}:8000/functions/v1/inbound-retry" in out
    assert "/functions/v1/send-message" not in out

    assert cli.main(["serve", "--function", "members", "--no-schedule"]) == 0
    assert served[-1]["gateway"].slugs == ["health", "members"]
    assert served[-1]["gateway"].schedule == ()

    assert cli.main(["serve", "--function", "all"]) == 0
    assert len(served[-1]["gateway"].slugs) > 10

    assert cli.main(["serve", "--function", "nope"]) == 1
    assert "error: No function 'nope'" in capsys.readouterr().err
    assert len(served) == 3


def test_a_bad_configuration_is_an_error_message_not_a_traceback(
    served: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("CONNECTGAIN_MODE", "production")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "a-project-service-key")
    monkeypatch.setenv("SUPABASE_JWT_SECRET", "a-project-secret-of-at-least-32-characters")
    monkeypatch.setenv("CONNECTGAIN_CORS_ORIGINS", "*")
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: configuration:")
    assert "CONNECTGAIN_CORS_ORIGINS must name the browser origins" in err
    assert served == []
