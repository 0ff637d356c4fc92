"""supabase-js, unchanged (`createClient(url, anonKey)`), against the dev gateway served
over real HTTP: Auth, a function with the user's token, and Realtime, from a page on
another origin (every request passes a browser's CORS checks).

One Node process for the module (tests/js/supabase_flow.mjs) runs the steps in
order and reports each as a JSON line; this side answers what it asks for (an
organization for the new user, a signed inbound WhatsApp message) and decides
pass or fail step by step. supabase-js is the version tests/js/package-lock.json
pins, installed by `make supabase-js` (a prerequisite of `make pytest`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
import uvicorn

from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import PROJECT_DIR, Settings
from shared.tooling.cluster import free_port
from shared.tooling.gateway import Gateway
from tests.channels.kit import post
from tests.channels.whatsapp.kit import KIT
from tests.support import make_org, module_runtime_fixtures

# One worker runs the whole module, so its module-wide setup runs once.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("test_supabase_js")]

SUPABASE_JS_DIR = PROJECT_DIR / ".connectgain" / "supabase-js"
SCRIPT = Path(__file__).resolve().parents[2] / "js" / "supabase_flow.mjs"
PAGE_ORIGIN = "http://localhost:5173"  # the SPA's dev server
EMAIL = "ada@example.com"
FLOW_SECONDS = 30  # the script's own waits are 5 s each; this only stops a hung process


@dataclass
class Flow:
    steps: dict[str, dict[str, Any]]
    stderr: str
    organization: UUID | None = None

    def step(self, name: str) -> dict[str, Any]:
        """A step that went through, or a failure that says what the script saw."""
        assert name in self.steps, f"the script never reported {name!r}: {self}"
        reported = self.steps[name]
        assert reported["ok"], f"{name}: {reported.get('error')}\nstderr: {self.stderr}"
        return reported


def exchanges(step: dict[str, Any]) -> list[tuple[str, str, int, str | None]]:
    """The HTTP requests a step made: method, path, status and a refusal's error code."""
    return [(x["method"], x["path"], x["status"], x.get("code")) for x in step["http"]]


@contextlib.asynccontextmanager
async def serving(settings: Settings, runtime: Runtime) -> AsyncIterator[None]:
    """The gateway behind uvicorn on settings.api_port, as `connectgain dev` serves it."""
    gateway = Gateway(settings, runtime=runtime)
    config = uvicorn.Config(
        gateway, host="127.0.0.1", port=settings.api_port, lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn offers no event to wait on
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


def node_command() -> list[str]:
    node = shutil.which("node")
    assert node, "Node.js is missing: `make supabase-js` installs it"
    assert (SUPABASE_JS_DIR / ".installed").exists(), "`make supabase-js` installs supabase-js"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    assert major >= 20, f"supabase-js needs Node.js 20 or later, not {version.stdout}"
    # Node 20 has the WebSocket that Node 22 has built in, behind this flag.
    return [node, *(["--experimental-websocket"] if major < 22 else []), str(SCRIPT)]


class Driver:
    """Answers the script's questions: what a person or a provider does meanwhile."""

    def __init__(self, settings: Settings, db: Connection, web: httpx.AsyncClient) -> None:
        self.settings, self.db, self.web = settings, db, web
        self.organization: UUID | None = None
        self.account: Any = None

    async def answer(self, step: dict[str, Any]) -> dict[str, Any] | None:
        if step["step"] == "needs_organization":
            # The new user makes an organization in the SPA and connects WhatsApp.
            self.organization = await make_org(self.db, UUID(step["user_id"]), "Acme")
            self.account = await KIT.create_account(self.db, self.organization)
            return {"organization_id": str(self.organization)}
        if step["step"] == "needs_inbound_message":
            delivery = KIT.text_message(
                self.account, sender="351912345678", message_id="wamid.js-1", text="Olá!"
            )
            response = await post(self.web, KIT, self.account.id, delivery)
            assert response.status_code == 200, response.text
            return {}
        return None


async def run_flow(settings: Settings, driver: Driver) -> Flow:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SUPABASE_URL": settings.supabase_url,
        "SUPABASE_ANON_KEY": settings.local_key("anon"),
        "SUPABASE_JS_DIR": str(SUPABASE_JS_DIR),
        "PAGE_ORIGIN": PAGE_ORIGIN,
    }
    process = await asyncio.create_subprocess_exec(
        *node_command(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdin and process.stdout and process.stderr
    stderr = asyncio.create_task(process.stderr.read())
    steps: dict[str, dict[str, Any]] = {}
    try:
        async with asyncio.timeout(FLOW_SECONDS):
            while line := await process.stdout.readline():
                step = json.loads(line)
                steps[step["step"]] = step
                answer = await driver.answer(step)
                if answer is not None:
                    process.stdin.write(json.dumps(answer).encode() + b"\n")
                    await process.stdin.drain()
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Flow(steps, (await stderr).decode(), driver.organization)


def served_settings(database_url: str) -> Settings:
    """The gateway's own port in the URLs: SUPABASE_URL is this gateway, which the
    functions call back for Auth."""
    return Settings(
        mode="local",
        database_url=database_url,
        api_port=free_port(),
        db_pool_min=1,
        db_pool_max=5,
        _env_file=None,  # type: ignore[call-arg]
    )


runtime, db = module_runtime_fixtures(served_settings)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def flow(runtime: Runtime, db: Connection) -> Flow:
    settings = runtime.settings
    async with (
        serving(settings, runtime),
        httpx.AsyncClient(base_url=settings.supabase_url) as web,
    ):
        return await run_flow(settings, Driver(settings, db, web))


async def test_sign_up_makes_a_confirmed_user_with_a_session(flow: Flow, db: Connection):
    signed_up = flow.step("signUp")
    assert (signed_up["email"], signed_up["has_session"]) == (EMAIL, True)
    stored = await db.fetchrow(
        "select id, encrypted_password, email_confirmed_at from auth.users where email = $1", EMAIL
    )
    assert stored is not None and str(stored["id"]) == signed_up["user_id"]
    assert stored["encrypted_password"].startswith("$2a$10$")
    assert stored["email_confirmed_at"] is not None


async def test_sign_in_refresh_and_get_user(flow: Flow):
    user_id = flow.step("signUp")["user_id"]
    signed_in = flow.step("signInWithPassword")
    assert (signed_in["user_id"], signed_in["role"]) == (user_id, "authenticated")
    refreshed = flow.step("refreshSession")
    assert (refreshed["rotated"], refreshed["same_session"]) == (True, True)
    assert refreshed["spent_token_answers_current"] is True  # the reuse rules
    assert (
        exchanges(refreshed) == [("POST", "/auth/v1/token?grant_type=refresh_token", 200, None)] * 2
    )
    got = flow.step("getUser")
    assert (got["user_id"], got["email"], got["user_metadata"]) == (user_id, EMAIL, {"name": "Ada"})


async def test_a_function_answers_the_users_token(flow: Flow):
    members = flow.step("functions.invoke")["members"]
    listed = members["data"] if isinstance(members, dict) and "data" in members else members
    assert [(m["user_id"], m["email"], m["role"]) for m in listed] == [
        (flow.step("signUp")["user_id"], EMAIL, "owner")
    ]
    path = f"/functions/v1/members?organization_id={flow.organization}"
    assert exchanges(flow.step("functions.invoke")) == [("GET", path, 200, None)]
    anonymous = flow.step("functions.invoke without a session")
    assert exchanges(anonymous) == [("GET", path, 401, "unauthorized")]


async def test_a_function_takes_a_json_body(flow: Flow, db: Connection):
    invited = flow.step("functions.invoke with a body")
    assert exchanges(invited) == [("POST", "/functions/v1/members", 201, None)]
    invitation = invited["invitation"]
    assert (invitation["email"], invitation["role"]) == ("nina@example.com", "agent")
    stored = await db.fetchrow(
        "select organization_id, role from public.organization_invitations where email = $1",
        "nina@example.com",
    )
    assert stored is not None and tuple(stored) == (flow.organization, "agent")
    mail = await db.fetchval("select kind from auth.local_outbox where email = 'nina@example.com'")
    assert mail == "invite"  # the local Auth, called by the function over HTTP


async def test_every_request_passes_a_browsers_cors_checks(flow: Flow):
    assert flow.step("done")["blocked_by_cors"] == []
    paths = {x["path"].split("?")[0] for step in flow.steps.values() for x in step.get("http", [])}
    assert {"/auth/v1/signup", "/auth/v1/user", "/functions/v1/members"} <= paths


async def test_an_inbound_message_arrives_as_a_broadcast_on_the_private_channel(flow: Flow):
    flow.step("realtime.subscribe")
    broadcasts = flow.step("realtime.broadcast")["broadcasts"]
    # One broadcast per stored message, carrying the conversation as the message left it
    [message] = broadcasts
    assert (message["table"], message["event"], message["operation"]) == (
        "messages",
        "INSERT",
        "INSERT",
    )
    record = message["record"]
    assert (record["body"], record["direction"]) == ("Olá!", "inbound")
    assert record["organization_id"] == str(flow.organization)
    assert message["conversation"]["id"] == record["conversation_id"]
    assert message["conversation"]["unread_count"] == 1


async def test_a_stranger_cannot_join_the_organizations_channel(flow: Flow):
    stranger = flow.step("realtime.stranger")
    assert stranger["state"] == "CHANNEL_ERROR", stranger
    assert stranger["error"]["message"].startswith("Unauthorized"), stranger  # Supabase's words
    assert flow.step("realtime.broadcast")["overheard"] == 0


async def test_sign_out_ends_the_session_and_its_refresh_token(flow: Flow):
    signed_out = flow.step("signOut")
    assert signed_out["session_left"] is False
    assert signed_out["get_user_error"]["name"] == "AuthSessionMissingError"
    assert signed_out["refresh_error"]["code"] == "refresh_token_not_found"
    assert exchanges(signed_out) == [
        ("POST", "/auth/v1/logout?scope=global", 204, None),
        ("GET", "/auth/v1/user", 403, "session_not_found"),
        ("POST", "/auth/v1/token?grant_type=refresh_token", 400, "refresh_token_not_found"),
    ]
