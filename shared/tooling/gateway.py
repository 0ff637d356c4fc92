"""Serves every module of `functions/` on one port, with Supabase's URL layout.

`/functions/v1/<slug>/<rest>` goes to the app of module `<slug with - as _>`,
which sees `<rest>` as its path (root_path set as a proxy would set it); `/auth/v1` is
the local Auth (shared/tooling/local_auth.py) and `/realtime/v1/websocket` the local
Realtime (shared/tooling/realtime_server.py), in local mode only. In
production each function runs alone behind Supabase; here they share one
Runtime, opened and closed by the gateway's lifespan, which also runs the
scheduled functions it is given (shared/tooling/scheduler.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import pkgutil
import re
from collections.abc import Collection, Iterable
from typing import Any

from starlette.types import Receive, Scope, Send

import functions
from shared.errors import NotFound
from shared.guard import error_response
from shared.runtime import Runtime
from shared.schedule import ScheduledJob
from shared.settings import Settings
from shared.tooling.local_auth import LocalAuth
from shared.tooling.realtime_server import Realtime
from shared.tooling.scheduler import Scheduler, calling
from shared.web import Cors, function_app, prepare_heap_for_serving

_ROUTE = re.compile(r"^/functions/v1/(?P<slug>[a-z0-9][a-z0-9-]*)(?P<rest>/.*)?$")


def function_modules() -> dict[str, Any]:
    """slug → module, for every module in `functions/` that has a `router`, and the
    functions a module serves by slug in FUNCTIONS (each channel's webhook)."""
    modules: dict[str, Any] = {}
    for info in pkgutil.iter_modules(functions.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"functions.{info.name}")
        if hasattr(module, "router"):
            modules[info.name.replace("_", "-")] = module
        modules.update(getattr(module, "FUNCTIONS", {}))
    return modules


class Gateway:
    def __init__(
        self,
        settings: Settings,
        runtime: Runtime | None = None,
        schedule: Iterable[ScheduledJob] = (),
        only: Collection[str] | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self._owns_runtime = runtime is None
        self.auth = LocalAuth(settings, lambda: self.runtime)
        self.realtime = Realtime(settings, lambda: self.runtime)
        # `only`: the slugs to serve (a container of one function, shared/tooling/entry.py).
        self.modules = {
            slug: module
            for slug, module in function_modules().items()
            if only is None or slug in only
        }
        self.schedule = tuple(schedule)
        self._scheduler: asyncio.Task[None] | None = None
        self.apps = {
            slug: function_app(
                module.router,
                name=slug,
                runtime=runtime,
                openapi=getattr(module, "OPENAPI", True),
                max_body_bytes=getattr(module, "MAX_BODY_BYTES", None),
                streamed_bodies=getattr(module, "STREAMED_BODIES", None),
                cors_origins=settings.cors_origins,
                **(
                    {"error_statuses": module.ERROR_STATUSES}
                    if hasattr(module, "ERROR_STATUSES")
                    else {}
                ),
            )
            for slug, module in self.modules.items()
        }
        for slug, module in self.modules.items():  # calls a function makes, documented only
            if hasattr(module, "WEBHOOKS"):
                self.apps[slug].webhooks.include_router(module.WEBHOOKS)

    @property
    def slugs(self) -> list[str]:
        return sorted(self.apps)

    def _attach(self, runtime: Runtime) -> None:
        self.runtime = runtime
        for app in self.apps.values():
            app.state.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.realtime.serves(scope):
            await self.realtime(scope, receive, send)
            return
        if self.auth.serves(scope.get("path", "")):
            # supabase-js calls Auth from the browser, as it calls the functions.
            await self.auth.cors(scope, receive, send)
            return
        match = _ROUTE.match(scope.get("path", ""))
        app = self.apps.get(match["slug"]) if match else None
        if match is None or app is None:
            not_found = error_response(NotFound("No such function"))
            await Cors(not_found, self.settings.cors_origins)(scope, receive, send)
            return
        prefix = f"/functions/v1/{match['slug']}"
        child = dict(scope)
        child["root_path"] = scope.get("root_path", "") + prefix
        child["path"] = prefix + (match["rest"] or "/")
        child["raw_path"] = child["path"].encode()
        await app(child, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.runtime is None:
                        self._attach(await Runtime.open(self.settings))
                    prepare_heap_for_serving()
                except Exception as exc:  # report to the server, which exits cleanly
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self.realtime.start()
                if self.schedule:
                    scheduler = Scheduler(self.schedule, calling(self, self.settings))
                    self._scheduler = asyncio.create_task(scheduler.run(), name="schedule")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.realtime.close()
                if self._scheduler is not None:
                    self._scheduler.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._scheduler
                    self._scheduler = None
                if self._owns_runtime and self.runtime is not None:
                    await self.runtime.close()
                    self.runtime = None
                await send({"type": "lifespan.shutdown.complete"})
                return
